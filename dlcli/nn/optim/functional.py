"""Optimizers: SGD (with momentum / Nesterov), RMSprop, Adam and AdamW.

Each algorithm is a pure module-level function in the style of PyTorch's functional
optimizers, ``*_update(param, grad, state, *, hyperparameters, scratch=None)``, that
updates ``param`` in place and creates its entries of ``state`` lazily at the first
call. The registered classes hold the hyperparameters and one state dict per
parameter key (``"dense1.weight"``) and call those functions.

The maths follows ``torch.optim`` exactly (names, defaults, order of the operations);
``g`` below is the gradient after ``maximize`` and L2 weight decay, ``t`` the step count.

How the formulas of the notes (chapter 2) map onto these:

* **SGD + momentum.** The notes write ``v_t = ρ v_{t-1} + α ∇J``, ``θ -= v_t``; torch
  (and we) write ``b_t = μ b_{t-1} + g``, ``θ -= lr · b_t``. With a constant learning
  rate the two are the same trajectory (``v_notes = lr · b_torch``, ``ρ = μ``,
  ``α = lr``). They differ once ``lr`` changes mid-run (a schedule): the notes' velocity
  keeps the old rate in the accumulated part, torch rescales the whole buffer at once.
  We follow torch. The registered ``momentum`` optimizer is SGD with ``momentum=0.9``,
  the notes' default ``ρ``.
* **RMSProp.** The notes use ``θ -= ε / (√g_t + 1e-5) · ∇J``; torch's ``eps`` defaults
  to ``1e-8``. Both add the constant *outside* the square root; set ``eps: 1.0e-5`` to
  get the notes' value. ``alpha`` is the notes' ``α`` (smoothing), ``lr`` their ``ε``.
* **Adam.** The notes' pseudocode is torch's, with one subtlety for ``amsgrad``: the
  pseudocode keeps the running maximum of the *bias-corrected* ``v̂_t``, while torch's
  code (and ours) keeps the maximum of the raw ``v_t`` and bias-corrects that maximum
  with the current step's ``1 - β₂ᵗ``. Without ``amsgrad`` they are identical.

Numerics: updates are done in the parameter's dtype (float32 stays float32, state
included); hyperparameters are Python floats, so NumPy keeps the array dtype. Step
counts are int64 0-d arrays so that ``state_dict()`` is a flat ``{str: ndarray}`` that
an ``.npz`` file stores exactly, and a resumed run continues bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from dlcli.nn import blas

__all__ = ["sgd_update", "rmsprop_update", "adam_update", "adamw_update"]


# ---- helpers ---------------------------------------------------------------------------


def _scratch(scratch: dict | None, name: str, like: np.ndarray) -> np.ndarray:
    """A work array shaped and typed like ``like``, reused from ``scratch`` when given."""
    if scratch is None:
        return np.empty_like(like)
    buf = scratch.get(name)
    if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
        buf = scratch[name] = np.empty_like(like)
    return buf


def _state_array(state: dict, name: str, param: np.ndarray) -> np.ndarray:
    """``state[name]``, created as zeros like ``param`` if missing, in ``param``'s dtype."""
    arr = state.get(name)
    if arr is None:
        arr = state[name] = np.zeros_like(param)
    elif arr.shape != param.shape:
        raise ValueError(
            f"optimizer state {name!r} has shape {arr.shape} but its parameter has shape {param.shape}"
        )
    elif arr.dtype != param.dtype:  # e.g. a float64 checkpoint resumed into a float32 model
        arr = state[name] = arr.astype(param.dtype)
    return arr


def _increment_step(state: dict) -> int:
    step = state.get("step")
    if step is None:
        step = state["step"] = np.zeros((), dtype=np.int64)
    step += 1  # in place on the 0-d array
    return int(step)


def _check_param(param, grad) -> None:
    if not isinstance(param, np.ndarray) or param.dtype.kind != "f":
        raise TypeError(f"parameters must be floating-point numpy arrays; got {type(param).__name__}"
                        + (f" of dtype {param.dtype}" if isinstance(param, np.ndarray) else ""))
    if np.shape(grad) != param.shape:
        raise ValueError(f"gradient shape {np.shape(grad)} does not match parameter shape {param.shape}")


def _effective_grad(param, grad, weight_decay, maximize, scratch) -> np.ndarray:
    """``g = (-grad if maximize else grad) + weight_decay * param``, in ``param``'s dtype.

    Returns ``grad`` itself when nothing changes it, so callers must never write into the
    result unless it is the scratch buffer.
    """
    if weight_decay == 0 and not maximize and grad.dtype == param.dtype:
        return grad
    g = _scratch(scratch, "grad", param)
    if weight_decay != 0:
        np.multiply(param, weight_decay, out=g)
        if maximize:
            np.subtract(g, grad, out=g, casting="same_kind")
        else:
            np.add(g, grad, out=g, casting="same_kind")
    elif maximize:
        np.negative(grad, out=g, casting="same_kind")
    else:
        np.copyto(g, grad, casting="same_kind")
    return g


# ---- functional updates ----------------------------------------------------------------


def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
    scratch: dict | None = None,
) -> None:
    """One SGD step on ``param`` in place (``torch.optim.SGD``).

    ::

        g   = (-∇ if maximize else ∇) + weight_decay · θ
        b_1 = g                                           (first step: no dampening)
        b_t = momentum · b_{t-1} + (1 - dampening) · g    (t > 1)
        d   = g + momentum · b_t   if nesterov   else   b_t       (d = g if momentum == 0)
        θ  -= lr · d

    ``state`` gains ``momentum_buffer`` (shaped like ``param``) when ``momentum != 0``.
    ``scratch`` optionally holds reusable work arrays between calls.

    The buffer update and ``θ -= lr · d`` are one BLAS ``axpby``/``axpy`` pass each when
    :mod:`dlcli.nn.blas` finds NumPy's OpenBLAS and the arrays are contiguous, of one
    dtype and of at least ``blas.MIN_SIZE`` values (four NumPy passes and a work array
    otherwise; equal up to fused multiply-add rounding).
    """
    _check_param(param, grad)
    lr, momentum, dampening, weight_decay = float(lr), float(momentum), float(dampening), float(weight_decay)
    g = _effective_grad(param, grad, weight_decay, maximize, scratch)
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            state["momentum_buffer"] = buf = np.array(g, dtype=param.dtype, copy=True)
        else:
            buf = _state_array(state, "momentum_buffer", param)
            if not blas.axpby(1.0 - dampening, g, momentum, buf):
                buf *= momentum
                if dampening == 0:
                    buf += g
                else:
                    tmp = _scratch(scratch, "tmp", param)
                    np.multiply(g, 1.0 - dampening, out=tmp, casting="same_kind")
                    buf += tmp
        if nesterov:
            direction = _scratch(scratch, "direction", param)
            np.multiply(buf, momentum, out=direction)
            np.add(direction, g, out=direction, casting="same_kind")
        else:
            direction = buf
    else:
        direction = g
    if blas.axpby(-lr, direction, 1.0, param):
        return
    tmp = _scratch(scratch, "tmp", param)
    np.multiply(direction, lr, out=tmp, casting="same_kind")
    np.subtract(param, tmp, out=param)


def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict,
    *,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
    scratch: dict | None = None,
) -> None:
    """One RMSprop step on ``param`` in place (``torch.optim.RMSprop``).

    ::

        g     = (-∇ if maximize else ∇) + weight_decay · θ
        v_t   = alpha · v_{t-1} + (1 - alpha) · g²                (square_avg, v_0 = 0)
        m_t   = alpha · m_{t-1} + (1 - alpha) · g                 (grad_avg, if centered)
        s     = √(v_t - m_t²) + eps   if centered   else   √v_t + eps
        b_t   = momentum · b_{t-1} + g / s                        (momentum_buffer, if momentum > 0)
        θ    -= lr · b_t   if momentum > 0   else   lr · g / s

    ``eps`` is added outside the square root (as in torch and the notes, unlike
    TensorFlow). In the centered form ``v_t - m_t²`` is clipped at 0 before the square
    root: it is never negative in exact arithmetic, and rounding must not make a NaN.
    ``state`` holds ``step``, ``square_avg`` and, as configured, ``grad_avg`` and
    ``momentum_buffer``.
    """
    _check_param(param, grad)
    lr, alpha, eps = float(lr), float(alpha), float(eps)
    weight_decay, momentum = float(weight_decay), float(momentum)
    g = _effective_grad(param, grad, weight_decay, maximize, scratch)
    _increment_step(state)
    tmp = _scratch(scratch, "tmp", param)

    square_avg = _state_array(state, "square_avg", param)
    square_avg *= alpha
    np.multiply(g, g, out=tmp, casting="same_kind")
    tmp *= 1.0 - alpha
    square_avg += tmp

    if centered:
        grad_avg = _state_array(state, "grad_avg", param)
        grad_avg *= alpha
        np.multiply(g, 1.0 - alpha, out=tmp, casting="same_kind")
        grad_avg += tmp
        np.multiply(grad_avg, grad_avg, out=tmp)
        np.subtract(square_avg, tmp, out=tmp)
        np.maximum(tmp, 0.0, out=tmp)
        np.sqrt(tmp, out=tmp)
    else:
        np.sqrt(square_avg, out=tmp)
    tmp += eps

    np.divide(g, tmp, out=tmp, casting="same_kind")  # tmp = g / s
    if momentum > 0:
        buf = _state_array(state, "momentum_buffer", param)
        buf *= momentum
        buf += tmp
        np.multiply(buf, lr, out=tmp)
    else:
        tmp *= lr
    np.subtract(param, tmp, out=param)


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict,
    *,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
    scratch: dict | None = None,
) -> None:
    """One Adam step on ``param`` in place (``torch.optim.Adam``; AdamW when decoupled).

    ::

        g     = -∇ if maximize else ∇
        g    += weight_decay · θ              (L2 penalty; Adam)
        θ    *= 1 - lr · weight_decay         (decoupled instead; AdamW)
        m_t   = β₁ m_{t-1} + (1 - β₁) g       (exp_avg, m_0 = 0)
        v_t   = β₂ v_{t-1} + (1 - β₂) g²      (exp_avg_sq, v_0 = 0)
        u_t   = max(u_{t-1}, v_t)  if amsgrad  else  v_t     (max_exp_avg_sq, u_0 = 0)
        θ    -= lr / (1 - β₁ᵗ) · m_t / (√u_t / √(1 - β₂ᵗ) + eps)

    i.e. ``θ -= lr · m̂_t / (√v̂_t + eps)`` with ``m̂ = m/(1-β₁ᵗ)``, ``v̂ = v/(1-β₂ᵗ)``. With
    ``amsgrad`` the maximum is over the raw ``v_t`` (torch's code), bias-corrected with
    the current step. ``state`` holds ``step``, ``exp_avg``, ``exp_avg_sq`` and, with
    ``amsgrad``, ``max_exp_avg_sq``.
    """
    _check_param(param, grad)
    lr, beta1, beta2 = float(lr), float(beta1), float(beta2)
    eps, weight_decay = float(eps), float(weight_decay)
    if decoupled_weight_decay:
        g = _effective_grad(param, grad, 0.0, maximize, scratch)
        if weight_decay != 0:
            param *= 1.0 - lr * weight_decay
    else:
        g = _effective_grad(param, grad, weight_decay, maximize, scratch)
    t = _increment_step(state)
    tmp = _scratch(scratch, "tmp", param)

    exp_avg = _state_array(state, "exp_avg", param)
    exp_avg *= beta1
    np.multiply(g, 1.0 - beta1, out=tmp, casting="same_kind")
    exp_avg += tmp

    exp_avg_sq = _state_array(state, "exp_avg_sq", param)
    exp_avg_sq *= beta2
    np.multiply(g, g, out=tmp, casting="same_kind")
    tmp *= 1.0 - beta2
    exp_avg_sq += tmp

    bias_correction1 = 1.0 - beta1**t
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**t)
    step_size = lr / bias_correction1

    if amsgrad:
        max_exp_avg_sq = _state_array(state, "max_exp_avg_sq", param)
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        np.sqrt(max_exp_avg_sq, out=tmp)
    else:
        np.sqrt(exp_avg_sq, out=tmp)
    tmp /= bias_correction2_sqrt
    tmp += eps
    np.divide(exp_avg, tmp, out=tmp)
    tmp *= step_size
    np.subtract(param, tmp, out=param)


def adamw_update(param, grad, state, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                 amsgrad=False, maximize=False, scratch=None) -> None:
    """One AdamW step (``torch.optim.AdamW``): ``θ *= 1 - lr·weight_decay``, then Adam
    without the L2 term. See :func:`adam_update` for the formula."""
    adam_update(param, grad, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True, scratch=scratch)


# ---- hyperparameter validation -------------------------------------------------------------

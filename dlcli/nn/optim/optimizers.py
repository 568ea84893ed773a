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

import inspect
import math
import numbers

import numpy as np

from dlcli.nn import blas
from dlcli.registry import OPTIMIZERS

__all__ = [
    "Optimizer",
    "SGD",
    "Momentum",
    "RMSprop",
    "Adam",
    "AdamW",
    "sgd_update",
    "rmsprop_update",
    "adam_update",
    "adamw_update",
]


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


def _number(name, value, *, low=0.0, high=None, high_open=False) -> float:
    """``value`` as a float in ``[low, high]`` (or ``[low, high)``), else ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number; got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if high is None:
        if value < low:
            raise ValueError(f"{name} must be >= {low:g}; got {value!r}")
    elif value < low or value > high or (high_open and value == high):
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low:g}, {high:g}{bracket}; got {value!r}")
    return value


def _flag(name, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false; got {value!r}")
    return bool(value)


def _betas(value) -> tuple[float, float]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"betas must be a list of two numbers [beta1, beta2]; got {value!r}")
    return (_number("betas[0]", value[0], high=1.0, high_open=True),
            _number("betas[1]", value[1], high=1.0, high_open=True))


# ---- optimizer classes ---------------------------------------------------------------------


def _registered(name: str):
    def add(cls):
        cls.type_name = name
        return OPTIMIZERS.register(name, cls)

    return add


class Optimizer:
    """Base class: hyperparameters plus one state dict per parameter key.

    The trainer calls ``step([(key, param, grad), ...])`` once per batch; ``param`` is
    updated in place and its state (``self.state[key]``) is created at its first step.
    ``lr`` is a plain attribute that a schedule may change between steps; the other
    hyperparameters are attributes of the same names. Subclasses implement ``_update``
    and list their state entries in ``state_names``; every hyperparameter is a
    keyword argument of ``__init__`` with its default (see :meth:`hyperparameters`).
    """

    type_name = "optimizer"
    state_names: tuple[str, ...] = ()

    def __init__(self, *, lr: float):
        self.lr = _number("lr", lr)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._scratch: dict[str, dict[str, np.ndarray]] = {}  # work arrays, not checkpointed
        self._packed = None  # see _step_packed: None (not yet), False (never) or its layout
        self._shared_step = None  # the 0-d step count all keys share while packed

    # ---- introspection --------------------------------------------------------------------
    @classmethod
    def hyperparameters(cls) -> dict:
        """``{name: default}`` for every hyperparameter, from ``__init__``'s signature."""
        return {
            name: p.default
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    def get_config(self) -> dict:
        """``{"type": name, **hyperparameters}``; ``OPTIMIZERS.get(type)(**rest)`` rebuilds it."""
        config = {"type": self.type_name}
        for name in self.hyperparameters():
            value = getattr(self, name)
            config[name] = list(value) if isinstance(value, tuple) else value
        return config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({args})"

    # ---- stepping -------------------------------------------------------------------------
    def step(self, params, flat=None) -> None:
        """Update every ``(key, param, grad)`` of ``params`` in place.

        ``flat``, optional, is ``(parameters, gradients, keys)`` (``Model.flat_buffers()``):
        two contiguous buffers that hold exactly the ``params`` and their gradients, laid end
        to end in ``keys`` order. When ``params`` are those views, in that order, the update
        runs once over the whole buffers, with the state kept in buffers of the same layout
        whose slices are each key's ``state`` arrays: the same arithmetic, element for
        element, as one call per parameter, without the per-call overhead (SGD alone may
        round differently: from ``blas.MIN_SIZE`` values an array goes through BLAS's fused
        multiply-adds, so a packed buffer and its smaller slices can take different routes).
        Anything else takes the per-parameter loop.
        """
        lr = float(self.lr)
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0; got {self.lr!r}")
        if flat is not None and self._step_packed(params, flat, lr):
            return
        if self._packed:
            self._packed = None
        if self._shared_step is not None:  # each key counts its own steps again
            self._shared_step = None
            for entries in self.state.values():
                if "step" in entries:
                    entries["step"] = np.array(entries["step"], copy=True)
        for key, param, grad in params:
            state = self.state.setdefault(key, {})
            scratch = self._scratch.setdefault(key, {})
            self._update(param, grad, state, scratch, lr)

    def _step_packed(self, params, flat, lr) -> bool:
        """One update over the packed buffers; False (nothing done) when ``params`` are not
        exactly the buffers' views in order, or when the state does not pack: keys whose
        state entries or step counts differ (e.g. a checkpoint made with other parameters)."""
        if self._packed is False:  # the state does not pack (until load_state_dict)
            return False
        flat_param, flat_grad, flat_keys = flat
        keys = tuple(key for key, _, _ in params)
        if keys != tuple(flat_keys):
            return False
        for _, param, grad in params:
            if param.base is not flat_param or grad.base is not flat_grad:
                return False  # e.g. a layer rebuilt after its model
        packed = self._packed
        if packed is None or packed["param"] is not flat_param or packed["keys"] != keys:
            packed = self._packed = self._pack(params, flat_param, keys)
        if packed["state"] is None:
            packed["state"] = self._pack_state(packed)
            if packed["state"] is None:
                self._packed = False
                return False
        state = packed["state"]
        self._update(flat_param, flat_grad, state, packed["scratch"], lr)
        if any(packed["shared"].get(name) is not arr for name, arr in state.items()):
            self._share_state(packed)
        return True

    @staticmethod
    def _pack(params, flat_param, keys) -> dict:
        """Where each parameter lies in the buffer."""
        slices = []
        origin = flat_param.__array_interface__["data"][0]
        for _, param, _ in params:
            start = (param.__array_interface__["data"][0] - origin) // param.itemsize
            slices.append((start, start + param.size, param.shape))
        return {"param": flat_param, "keys": keys, "slices": slices, "state": None,
                "shared": {}, "scratch": {}}

    def _pack_state(self, packed) -> dict | None:
        """Packed buffers holding the current per-key state (all zero where none yet)."""
        entries = [self.state.get(key, {}) for key in packed["keys"]]
        names = set(entries[0])
        if any(set(e) != names for e in entries):
            return None
        state = {}
        param = packed["param"]
        for name in names:
            if name == "step":
                steps = {int(e["step"]) for e in entries}
                if len(steps) != 1:
                    return None
                state["step"] = np.array(steps.pop(), dtype=np.int64)
                continue
            buf = np.zeros_like(param)
            for e, (start, stop, shape) in zip(entries, packed["slices"]):
                if e[name].shape != shape:
                    return None
                buf[start:stop] = e[name].ravel()
            state[name] = buf
        packed["shared"] = {}
        self._share_state(packed, state)
        return state

    def _share_state(self, packed, state=None) -> None:
        """Point each key's state entries at its slices of the packed state (``step`` is one
        0-d array shared by all keys, until the per-parameter loop runs again)."""
        state = packed["state"] if state is None else state
        for key, (start, stop, shape) in zip(packed["keys"], packed["slices"]):
            entries = self.state.setdefault(key, {})
            for name, arr in state.items():
                entries[name] = arr if name == "step" else arr[start:stop].reshape(shape)
        packed["shared"] = dict(state)
        self._shared_step = state.get("step")

    def _update(self, param, grad, state, scratch, lr) -> None:
        raise NotImplementedError

    def _required_state(self) -> set[str]:
        """State entries every stepped parameter has under the current hyperparameters."""
        return set()

    def kept_arrays(self, key: str) -> list[np.ndarray]:
        """The arrays kept for parameter ``key`` between steps of the per-parameter path: its
        state and the work arrays its updates reuse (what ``dlcli shapes`` counts)."""
        return [*self.state.get(key, {}).values(), *self._scratch.get(key, {}).values()]

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat copy of the state: ``{"<key>.<entry>": array}`` (steps as int64 0-d arrays)."""
        return {f"{key}.{name}": np.array(arr, copy=True)
                for key, entries in self.state.items() for name, arr in entries.items()}

    def load_state_dict(self, state_dict) -> None:
        """Replace the state with a copy of ``state_dict`` (as made by :meth:`state_dict`).

        Raises ValueError for an entry this optimizer does not know or a parameter whose
        state lacks an entry it needs.
        """
        state: dict[str, dict[str, np.ndarray]] = {}
        for flat_key, value in state_dict.items():
            key, sep, name = str(flat_key).rpartition(".")
            if not sep or not key or name not in self.state_names:
                raise ValueError(
                    f"unknown {self.type_name} state entry {flat_key!r}; expected '<parameter>.<entry>' "
                    f"with entry one of {', '.join(self.state_names) or '(none)'}"
                )
            arr = np.array(value, copy=True)
            if name == "step":
                if arr.shape != () or arr.dtype.kind not in "iuf" or arr != np.floor(arr) or arr < 0:
                    raise ValueError(f"{flat_key} must be a non-negative integer scalar; got {value!r}")
                arr = arr.astype(np.int64)
            elif arr.dtype.kind != "f":
                raise ValueError(f"{flat_key} must be a floating-point array; got dtype {arr.dtype}")
            state.setdefault(key, {})[name] = arr
        required = self._required_state()
        for key, entries in state.items():
            missing = sorted(required - entries.keys())
            if missing:
                raise ValueError(f"{self.type_name} state of {key!r} lacks {', '.join(missing)}")
        self.state = state
        self._packed = None
        self._shared_step = None


@_registered("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (``torch.optim.SGD``).

    Formula: see :func:`sgd_update`. Defaults are torch's except ``lr=0.01`` (torch
    has no default). ``nesterov`` needs ``momentum > 0`` and ``dampening == 0``.
    State per parameter: ``momentum_buffer`` when ``momentum != 0``.
    """

    state_names = ("momentum_buffer",)

    def __init__(self, *, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
                 maximize=False):
        super().__init__(lr=lr)
        self.momentum = _number("momentum", momentum)
        self.dampening = _number("dampening", dampening, high=1.0)
        self.nesterov = _flag("nesterov", nesterov)
        self.weight_decay = _number("weight_decay", weight_decay)
        self.maximize = _flag("maximize", maximize)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                f"nesterov requires momentum > 0 and dampening = 0; "
                f"got momentum={self.momentum:g}, dampening={self.dampening:g}"
            )

    def _update(self, param, grad, state, scratch, lr):
        sgd_update(param, grad, state, lr=lr, momentum=self.momentum, dampening=self.dampening,
                   nesterov=self.nesterov, weight_decay=self.weight_decay, maximize=self.maximize,
                   scratch=scratch)

    def _required_state(self):
        return {"momentum_buffer"} if self.momentum != 0 else set()


@_registered("momentum")
class Momentum(SGD):
    """SGD + momentum as in the notes (``ρ = 0.9``): :class:`SGD` with ``momentum=0.9``.

    ``v_t = ρ v_{t-1} + α∇J, θ -= v_t`` of the notes is this with ``lr = α`` while the
    learning rate is constant (see the module docstring for schedules).
    """

    def __init__(self, *, lr=0.01, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0,
                 maximize=False):
        super().__init__(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         weight_decay=weight_decay, maximize=maximize)


@_registered("rmsprop")
class RMSprop(Optimizer):
    """RMSprop (``torch.optim.RMSprop``, same defaults). Formula: see :func:`rmsprop_update`.

    ``alpha`` must lie in [0, 1]; the notes' RMSProp uses ``eps=1e-5``.
    State per parameter: ``step``, ``square_avg``, plus ``grad_avg`` (centered) and
    ``momentum_buffer`` (momentum > 0).
    """

    state_names = ("step", "square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, *, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        super().__init__(lr=lr)
        self.alpha = _number("alpha", alpha, high=1.0)
        self.eps = _number("eps", eps)
        self.weight_decay = _number("weight_decay", weight_decay)
        self.momentum = _number("momentum", momentum)
        self.centered = _flag("centered", centered)
        self.maximize = _flag("maximize", maximize)

    def _update(self, param, grad, state, scratch, lr):
        rmsprop_update(param, grad, state, lr=lr, alpha=self.alpha, eps=self.eps,
                       weight_decay=self.weight_decay, momentum=self.momentum, centered=self.centered,
                       maximize=self.maximize, scratch=scratch)

    def _required_state(self):
        required = {"step", "square_avg"}
        if self.centered:
            required.add("grad_avg")
        if self.momentum > 0:
            required.add("momentum_buffer")
        return required


@_registered("adam")
class Adam(Optimizer):
    """Adam (``torch.optim.Adam``, same defaults). Formula: see :func:`adam_update`.

    ``betas`` is ``[beta1, beta2]`` (list or tuple), each in [0, 1); ``weight_decay`` is
    an L2 penalty added to the gradient (use ``adamw`` for decoupled decay).
    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``, plus ``max_exp_avg_sq``
    with ``amsgrad``.
    """

    state_names = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(self, *, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        super().__init__(lr=lr)
        self.betas = _betas(betas)
        self.eps = _number("eps", eps)
        self.weight_decay = _number("weight_decay", weight_decay)
        self.amsgrad = _flag("amsgrad", amsgrad)
        self.maximize = _flag("maximize", maximize)

    def _update(self, param, grad, state, scratch, lr):
        adam_update(param, grad, state, lr=lr, beta1=self.betas[0], beta2=self.betas[1], eps=self.eps,
                    weight_decay=self.weight_decay, amsgrad=self.amsgrad, maximize=self.maximize,
                    decoupled_weight_decay=self._decoupled, scratch=scratch)

    def _required_state(self):
        required = {"step", "exp_avg", "exp_avg_sq"}
        if self.amsgrad:
            required.add("max_exp_avg_sq")
        return required


@_registered("adamw")
class AdamW(Adam):
    """AdamW (``torch.optim.AdamW``): Adam with decoupled weight decay, default 0.01.

    Formula: see :func:`adamw_update`.
    """

    _decoupled = True

    def __init__(self, *, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False,
                 maximize=False):
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)

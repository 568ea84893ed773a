"""Convolution maths on (N, C, H, W) batches: padding, im2col/col2im, conv and transposed conv.

Notation (notes, chapter 3): input ``n x n``, kernel ``f x f``, padding ``p``, stride ``s``.

* Cross-correlation (what ``conv2d`` computes, like every library):
  ``y[n, o, i, j] = b[o] + sum_{c, u, v} W[o, c, u, v] * xp[n, c, s*i + u, s*j + v]``
  where ``xp`` is the zero-padded input. ``flip_kernel=True`` uses ``W[o, c, f-1-u, f-1-v]``
  instead: the true convolution of the notes (kernel rotated by 180 degrees).
* Output size per spatial dimension: ``floor((n + p_before + p_after - f) / s) + 1``.
* Transposed convolution (notes 4.1.3) is the gradient of a convolution with respect to its
  input: output size ``s(n - 1) + f - 2p + output_padding``, PyTorch's ``conv_transpose2d``.

Speed: one im2col copy and one GEMM per pass. The column matrix is laid out
``(C*kh*kw, N*out_h*out_w)`` so the forward is ``W.reshape(F, -1) @ cols`` and the weight
gradient is ``dy2 @ cols.T`` — single large BLAS calls over the whole batch. col2im loops only
over the ``kh*kw`` kernel offsets, each adding one strided slice (``np.add.at`` is far slower).
Large buffers live in an optional ``workspace`` dict so a layer reuses them across batches.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

Pads = tuple[tuple[int, int], tuple[int, int]]


# ---- hyperparameter helpers -----------------------------------------------------------
def pair(value, what: str = "value") -> tuple[int, int]:
    """An int or a 2-sequence of ints -> ``(height, width)``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{what} must be an int or a pair of ints; got {value!r}")


def resolve_padding(padding, input_hw: tuple[int, int], kernel: tuple[int, int],
                    stride: tuple[int, int]) -> Pads:
    """Padding spec -> ``((top, bottom), (left, right))``.

    ``padding`` is an int, a ``(ph, pw)`` pair, ``"valid"`` (no padding) or ``"same"``
    (TensorFlow's rule: output size ``ceil(n / s)``; the total padding
    ``max((out - 1) * s + f - n, 0)`` is split with the odd pixel at the bottom/right).
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            pads = []
            for n, f, s in zip(input_hw, kernel, stride):
                out = -(-n // s)
                total = max((out - 1) * s + f - n, 0)
                pads.append((total // 2, total - total // 2))
            return pads[0], pads[1]
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same'; got {padding!r}")
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0; got {padding!r}")
    return (ph, ph), (pw, pw)


def conv_output_size(n: int, f: int, s: int, pad_before: int, pad_after: int) -> int:
    """``floor((n + p_before + p_after - f) / s) + 1`` (notes 3.3); <= 0 if the kernel does not fit."""
    padded = n + pad_before + pad_after
    if padded < f:
        return 0
    return (padded - f) // s + 1


def conv_transpose_output_size(n: int, f: int, s: int, p: int, output_padding: int = 0) -> int:
    """``s(n - 1) + f - 2p + output_padding`` (notes 4.1.3)."""
    return s * (n - 1) + f - 2 * p + output_padding


def flip(weight: np.ndarray) -> np.ndarray:
    """Rotate each kernel by 180 degrees (a view): turns cross-correlation into convolution."""
    return weight[..., ::-1, ::-1]


# ---- buffers -----------------------------------------------------------------------------
def _buffer(workspace: dict | None, key: str, shape: tuple, dtype, zero: bool = False) -> np.ndarray:
    """A reusable array from ``workspace`` (reallocated when the shape or dtype changes)."""
    if workspace is not None:
        buf = workspace.get(key)
        if buf is not None and buf.shape == shape and buf.dtype == dtype:
            return buf
    buf = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
    if workspace is not None:
        workspace[key] = buf
    return buf


def pad_into(x: np.ndarray, pads: Pads, workspace: dict | None = None, key: str = "padded") -> np.ndarray:
    """Zero-pad an (N, C, H, W) batch; reuses a buffer whose border is already zero."""
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    n, c, h, w = x.shape
    xp = _buffer(workspace, key, (n, c, h + pt + pb, w + pl + pr), x.dtype, zero=True)
    # Only the interior is ever written, so a reused buffer keeps its zero border.
    xp[:, :, pt:pt + h, pl:pl + w] = x
    return xp


# ---- im2col / col2im --------------------------------------------------------------------
def im2col(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
           out: np.ndarray | None = None) -> np.ndarray:
    """Padded (N, C, Hp, Wp) -> columns (C*kh*kw, N*out_h*out_w).

    Row ``(c, u, v)``, column ``(n, i, j)`` holds ``xp[n, c, s_h*i + u, s_w*j + v]``.
    """
    n, c, hp, wp = xp.shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    sn, sc, sy, sx = xp.strides
    windows = as_strided(xp, shape=(c, kh, kw, n, oh, ow),
                         strides=(sc, sy, sx, sn, sy * sh, sx * sw), writeable=False)
    if out is None:
        out = np.empty((c * kh * kw, n * oh * ow), xp.dtype)
    np.copyto(out.reshape(c, kh, kw, n, oh, ow), windows)
    return out


def col2im(cols: np.ndarray, padded_shape: tuple, kernel: tuple[int, int],
           stride: tuple[int, int]) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add columns back into a zeroed (N, C, Hp, Wp) array.

    The result is a transposed view of a (C, N, Hp, Wp) buffer: accumulating in the columns'
    own (c, n) order is ~1.5x faster than adding transposed blocks, and every caller copies
    the (cropped) result into a fresh contiguous array anyway.
    """
    n, c, hp, wp = padded_shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    out = np.zeros((c, n, hp, wp), cols.dtype)
    blocks = cols.reshape(c, kh, kw, n, oh, ow)
    # One strided slice per kernel offset: within a slice no two columns hit the same pixel,
    # so a plain += is an exact scatter-add (np.add.at would be far slower).
    for u in range(kh):
        rows = slice(u, u + sh * (oh - 1) + 1, sh)
        for v in range(kw):
            out[:, :, rows, v:v + sw * (ow - 1) + 1:sw] += blocks[:, u, v]
    return out.transpose(1, 0, 2, 3)


def _crop(xp: np.ndarray, pads: Pads, h: int, w: int) -> np.ndarray:
    (pt, _), (pl, _) = pads
    return xp[:, :, pt:pt + h, pl:pl + w]


def _to_channels_first(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(N, C, H, W) -> contiguous (C, N*H*W), the layout the GEMMs want."""
    n, c, h, w = a.shape
    if out is None:
        out = np.empty((c, n * h * w), a.dtype)
    np.copyto(out.reshape(c, n, h, w), a.transpose(1, 0, 2, 3))
    return out


# ---- convolution ------------------------------------------------------------------------
def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                   stride=1, padding=0, *, flip_kernel: bool = False,
                   workspace: dict | None = None) -> tuple[np.ndarray, dict]:
    """Cross-correlation (or convolution when ``flip_kernel``) of a batch.

    x: (N, C, H, W); weight: (F, C, kh, kw); bias: (F,) or None; padding as in
    :func:`resolve_padding`. Returns ``(y, cache)`` with y: (N, F, out_h, out_w).
    """
    n, c, h, w = x.shape
    f, wc, kh, kw = weight.shape
    if wc != c:
        raise ValueError(f"weight expects {wc} input channels; input has {c}")
    stride = pair(stride, "stride")
    pads = resolve_padding(padding, (h, w), (kh, kw), stride)
    oh = conv_output_size(h, kh, stride[0], *pads[0])
    ow = conv_output_size(w, kw, stride[1], *pads[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"kernel {kh}x{kw} is larger than the padded input "
                         f"{h + sum(pads[0])}x{w + sum(pads[1])}")
    xp = pad_into(x, pads, workspace, "padded")
    # Rows/cols of the padded input that no window reaches (floor division) are dropped.
    xp = xp[:, :, : (oh - 1) * stride[0] + kh, : (ow - 1) * stride[1] + kw]
    cols = _buffer(workspace, "cols", (c * kh * kw, n * oh * ow), x.dtype)
    im2col(xp, (kh, kw), stride, out=cols)
    w_eff = flip(weight) if flip_kernel else weight
    w2 = w_eff.reshape(f, c * kh * kw)  # copies only when flipped (small)
    y2 = _buffer(workspace, "y2", (f, n * oh * ow), x.dtype)
    np.matmul(w2, cols, out=y2)
    y = np.empty((n, f, oh, ow), x.dtype)
    y_cn = y2.reshape(f, n, oh, ow).transpose(1, 0, 2, 3)
    if bias is not None:  # fused with the transposing copy
        np.add(y_cn, bias.reshape(1, f, 1, 1), out=y)
    else:
        np.copyto(y, y_cn)
    cache = {"cols": cols, "w2": w2, "x_shape": x.shape, "pads": pads, "stride": stride,
             "kernel": (kh, kw), "out_hw": (oh, ow), "flip_kernel": flip_kernel,
             "has_bias": bias is not None}
    return y, cache


def conv2d_backward(dy: np.ndarray, cache: dict, *, need_input_grad: bool = True,
                    workspace: dict | None = None):
    """Gradients of :func:`conv2d_forward`.

    dy: (N, F, out_h, out_w). Returns ``(dx, dweight, dbias)``: dx (N, C, H, W) or None when
    not needed, dweight (F, C, kh, kw), dbias (F,) or None.
    ``dW = dy2 @ cols.T``; ``dx = col2im(W2.T @ dy2)`` with ``dy2`` = dy as (F, N*out_h*out_w).
    """
    n, c, h, w = cache["x_shape"]
    kh, kw = cache["kernel"]
    sh, sw = cache["stride"]
    oh, ow = cache["out_hw"]
    pads = cache["pads"]
    cols, w2 = cache["cols"], cache["w2"]
    f = w2.shape[0]
    dy2 = _to_channels_first(dy, _buffer(workspace, "dy2", (f, n * oh * ow), dy.dtype))
    dweight = (dy2 @ cols.T).reshape(f, c, kh, kw)
    if cache["flip_kernel"]:
        dweight = flip(dweight)
    dbias = dy.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
    if not need_input_grad:
        return None, dweight, dbias
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    if (sh, sw) == (1, 1):
        return _input_grad_stride1(w2, dy, cache["x_shape"], pads, (kh, kw), workspace), \
            dweight, dbias
    dcols = _buffer(workspace, "dcols", cols.shape, dy.dtype)
    np.matmul(w2.T, dy2, out=dcols)
    # The input rows/cols no window reached (floor division) get zero gradient.
    dxp = col2im(dcols, (n, c, hp, wp), (kh, kw), (sh, sw))
    dx = np.ascontiguousarray(_crop(dxp, pads, h, w))
    return dx, dweight, dbias


def _input_grad_stride1(w2, dy, x_shape, pads, kernel, workspace) -> np.ndarray:
    """dx of a stride-1 convolution, with col2im done as one long add per kernel offset.

    With stride 1 the window of offset (u, v) in a padded (Hp, Wp) plane is the run of
    out_h*Wp consecutive pixels from u*Wp + v, if each output row is taken at the full
    padded width Wp. So dy is laid out (F, N, out_h, Wp) with zeros in the columns
    out_w..Wp-1, the column matrix ``W2ᵀ dy`` gets exact zeros there, and col2im adds a
    (C, N, out_h*Wp) block per offset: kh*kw adds of long rows instead of kh*kw*C*N*out_h
    rows of out_w (measured for LeNet's conv2, 64x8x14x14, 5x5: 2.1 ms -> see
    benchmarks/RESULTS.md). The zero columns that run past a row's end add 0 to the next
    row (or, past the last plane, to ``slack`` spare values), so the sum is exact.
    """
    n, c, h, w = x_shape
    kh, kw = kernel
    _, f, oh, ow = dy.shape
    hp, wp = h + sum(pads[0]), w + sum(pads[1])  # = out_h + kh - 1, out_w + kw - 1
    length = oh * wp
    dy_wide = _buffer(workspace, "dy_wide", (f, n, oh, wp), dy.dtype, zero=True)
    np.copyto(dy_wide[:, :, :, :ow], dy.transpose(1, 0, 2, 3))  # columns >= ow stay 0
    dcols = _buffer(workspace, "dcols_wide", (c * kh * kw, n * length), dy.dtype)
    np.matmul(w2.T, dy_wide.reshape(f, n * length), out=dcols)
    plane = hp * wp
    size = c * n * plane
    flat = np.zeros(size + (kh - 1) * wp + kw - 1, dy.dtype)
    blocks = dcols.reshape(c, kh, kw, n, length)
    for u in range(kh):
        for v in range(kw):
            start = u * wp + v
            flat[start:start + size].reshape(c, n, plane)[:, :, :length] += blocks[:, u, v]
    dxp = flat[:size].reshape(c, n, hp, wp).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(_crop(dxp, pads, h, w))


def conv2d(x, weight, bias=None, stride=1, padding=0, flip_kernel: bool = False) -> np.ndarray:
    """Convenience wrapper: the output of :func:`conv2d_forward` only."""
    return conv2d_forward(x, weight, bias, stride, padding, flip_kernel=flip_kernel)[0]


# ---- transposed convolution ---------------------------------------------------------------
def conv_transpose2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                             stride=1, padding=0, output_padding=0, *,
                             workspace: dict | None = None) -> tuple[np.ndarray, dict]:
    """Transposed convolution, equal to PyTorch's ``conv_transpose2d``.

    x: (N, Cin, H, W); weight: (Cin, Cout, kh, kw); bias: (Cout,) or None.
    Each input pixel scatters ``x[n, c, i, j] * W[c, :, :, :]`` into the output at
    ``(s*i, s*j)``; the result (size ``s(n-1) + f + output_padding``) is then cropped by
    ``padding`` on each side. Returns ``(y, cache)``, y: (N, Cout, H_out, W_out) with
    ``H_out = s(H - 1) + kh - 2p + output_padding``.
    """
    n, cin, h, w = x.shape
    wcin, cout, kh, kw = weight.shape
    if wcin != cin:
        raise ValueError(f"weight expects {wcin} input channels; input has {cin}")
    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    oph, opw = pair(output_padding, "output_padding")
    ho = conv_transpose_output_size(h, kh, sh, ph, oph)
    wo = conv_transpose_output_size(w, kw, sw, pw, opw)
    if ho <= 0 or wo <= 0:
        raise ValueError(f"padding {ph}x{pw} leaves no output ({ho}x{wo})")
    x2 = _to_channels_first(x, _buffer(workspace, "x2", (cin, n * h * w), x.dtype))
    w2 = weight.reshape(cin, cout * kh * kw)
    cols = _buffer(workspace, "cols", (cout * kh * kw, n * h * w), x.dtype)
    np.matmul(w2.T, x2, out=cols)
    # The scatter covers s(n-1) + f pixels; output_padding pixels beyond it stay zero.
    full = (n, cout, ho + 2 * ph, wo + 2 * pw)
    yp = col2im(cols, full, (kh, kw), (sh, sw))[:, :, ph:ph + ho, pw:pw + wo]
    y = np.empty((n, cout, ho, wo), x.dtype)
    if bias is not None:  # fused with the copy out of the transposed buffer
        np.add(yp, bias.reshape(1, cout, 1, 1), out=y)
    else:
        np.copyto(y, yp)
    cache = {"x2": x2, "w2": w2, "x_shape": x.shape, "stride": (sh, sw), "pads": ((ph, ph), (pw, pw)),
             "kernel": (kh, kw), "has_bias": bias is not None}
    return y, cache


def conv_transpose2d_backward(dy: np.ndarray, cache: dict, *, need_input_grad: bool = True,
                              workspace: dict | None = None):
    """Gradients of :func:`conv_transpose2d_forward`: a strided convolution of ``dy``.

    Returns ``(dx, dweight, dbias)``: dx (N, Cin, H, W) or None, dweight (Cin, Cout, kh, kw),
    dbias (Cout,) or None.
    """
    n, cin, h, w = cache["x_shape"]
    kh, kw = cache["kernel"]
    stride = cache["stride"]
    x2, w2 = cache["x2"], cache["w2"]
    cout = w2.shape[1] // (kh * kw)
    dyp = pad_into(dy, cache["pads"], workspace, "dy_padded")
    # output_padding rows at the bottom/right are already part of dy; the rows beyond
    # the last window (never written by the forward) are dropped here.
    dyp = dyp[:, :, : stride[0] * (h - 1) + kh, : stride[1] * (w - 1) + kw]
    dcols = _buffer(workspace, "dcols", (cout * kh * kw, n * h * w), dy.dtype)
    im2col(dyp, (kh, kw), stride, out=dcols)
    dweight = (x2 @ dcols.T).reshape(cin, cout, kh, kw)
    dbias = dy.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
    if not need_input_grad:
        return None, dweight, dbias
    dx2 = w2 @ dcols
    dx = np.ascontiguousarray(dx2.reshape(cin, n, h, w).transpose(1, 0, 2, 3))
    return dx, dweight, dbias


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0) -> np.ndarray:
    """Convenience wrapper: the output of :func:`conv_transpose2d_forward` only."""
    return conv_transpose2d_forward(x, weight, bias, stride, padding, output_padding)[0]

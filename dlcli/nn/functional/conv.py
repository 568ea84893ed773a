"""Convolution maths on (N, C, H, W) batches: padding, im2col/col2im, conv and transposed conv.

Notation (notes, chapter 3): input ``n x n``, kernel ``f x f``, padding ``p``, stride ``s``.

* Cross-correlation (what ``conv2d`` computes, like every library):
  ``y[n, o, i, j] = b[o] + sum_{c, u, v} W[o, c, u, v] * xp[n, c, s*i + u, s*j + v]``
  where ``xp`` is the zero-padded input. ``flip_kernel=True`` uses ``W[o, c, f-1-u, f-1-v]``
  instead: the true convolution of the notes (kernel rotated by 180 degrees).
* Output size per spatial dimension: ``floor((n + p_before + p_after - f) / s) + 1``.
* Transposed convolution (notes 4.1.3) is the gradient of a convolution with respect to its
  input: output size ``s(n - 1) + f - 2p + output_padding``, PyTorch's ``conv_transpose2d``.

Speed: one im2col copy and one GEMM per pass, over the whole batch. Stride-1 convolutions
(:class:`_S1`) build their columns from long contiguous runs: each output row is computed at
the full padded width (the extra columns are garbage, dropped in the copy out or skipped by a
pooling's view), and R output
rows share a column so a layer with few filters still gets a product with ~32 output rows.
The bias rides in the product (a row of ones), and the input gradient puts the kernel's
horizontal offsets into its product's depth (:func:`_s1_input_grad`), leaving kh adds of
long runs. Other strides use the column matrix ``(C*kh*kw, N*out_h*out_w)``: the forward is
``W.reshape(F, -1) @ cols``, the weight gradient ``dy2 @ cols.T``, and col2im loops only over
the ``kh*kw`` kernel offsets, each adding one strided slice (``np.add.at`` is far slower).
Large buffers live in an optional ``workspace`` dict so a layer reuses them across batches.
A stride-1 output can also stay in its product's layout for a tiled max pooling to read
(:class:`WideOutput`).
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
                   workspace: dict | None = None, wide_for=None) -> tuple[np.ndarray, dict]:
    """Cross-correlation (or convolution when ``flip_kernel``) of a batch.

    x: (N, C, H, W); weight: (F, C, kh, kw); bias: (F,) or None; padding as in
    :func:`resolve_padding`. Returns ``(y, cache)`` with y: (N, F, out_h, out_w).
    ``wide_for=(ph, pw)``: a tiled max pooling of that window reads y next; y comes back as
    a :class:`WideOutput` when the stride-1 layout allows it (and a ``workspace`` is given).
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
    w_eff = flip(weight) if flip_kernel else weight
    common = {"x_shape": x.shape, "pads": pads, "stride": stride, "kernel": (kh, kw),
              "out_hw": (oh, ow), "flip_kernel": flip_kernel, "has_bias": bias is not None}
    if stride == (1, 1):
        y, cache = _s1_forward(x, w_eff, bias, pads, workspace,
                               wide_for if workspace is not None else None)
        cache.update(common)
        return y, cache
    xp = pad_into(x, pads, workspace, "padded")
    # Rows/cols of the padded input that no window reaches (floor division) are dropped.
    xp = xp[:, :, : (oh - 1) * stride[0] + kh, : (ow - 1) * stride[1] + kw]
    cols = _buffer(workspace, "cols", (c * kh * kw, n * oh * ow), x.dtype)
    im2col(xp, (kh, kw), stride, out=cols)
    w2 = w_eff.reshape(f, c * kh * kw)  # copies only when flipped (small)
    y2 = _buffer(workspace, "y2", (f, n * oh * ow), x.dtype)
    np.matmul(w2, cols, out=y2)
    y = np.empty((n, f, oh, ow), x.dtype)
    y_cn = y2.reshape(f, n, oh, ow).transpose(1, 0, 2, 3)
    if bias is not None:  # fused with the transposing copy
        np.add(y_cn, bias.reshape(1, f, 1, 1), out=y)
    else:
        np.copyto(y, y_cn)
    cache = {"cols": cols, "w2": w2, **common}
    return y, cache


def conv2d_backward(dy: np.ndarray, cache: dict, *, need_input_grad: bool = True,
                    workspace: dict | None = None):
    """Gradients of :func:`conv2d_forward`.

    dy: (N, F, out_h, out_w), or the :class:`WideGradient` of a :class:`WideOutput` forward.
    Returns ``(dx, dweight, dbias)``: dx (N, C, H, W) or None when not needed,
    dweight (F, C, kh, kw), dbias (F,) or None.
    ``dW = dy2 @ cols.T``; ``dx = col2im(W2.T @ dy2)`` with ``dy2`` = dy as (F, N*out_h*out_w)
    (stride 1: the same products in the layouts of :class:`_S1` and :func:`_s1_input_grad`).
    """
    if "s1" in cache:
        dweight, dbias, dx = _s1_backward(dy, cache, need_input_grad, workspace)
        if cache["flip_kernel"]:
            dweight = flip(dweight)
        return dx, dweight, dbias
    dbias = _bias_grad(dy) if cache["has_bias"] else None
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
    if not need_input_grad:
        return None, dweight, dbias
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    dcols = _buffer(workspace, "dcols", cols.shape, dy.dtype)
    np.matmul(w2.T, dy2, out=dcols)
    # The input rows/cols no window reached (floor division) get zero gradient.
    dxp = col2im(dcols, (n, c, hp, wp), (kh, kw), (sh, sw))
    dx = np.ascontiguousarray(_crop(dxp, pads, h, w))
    return dx, dweight, dbias


def _bias_grad(dy: np.ndarray) -> np.ndarray:
    """``dy.sum(axis=(0, 2, 3))``, summing contiguous rows first (pairwise, vectorised)."""
    n, f = dy.shape[:2]
    return np.ascontiguousarray(dy).reshape(n, f, -1).sum(axis=2).sum(axis=0)


# ---- stride-1 convolution: row-blocked "wide" columns -------------------------------------
def _gemm_rate(rows: int) -> float:
    """OpenBLAS's relative rate for a product with this many output rows (measured on
    LeNet's shapes: 8 rows run at about half the rate of 32, 16 rows at about 0.8)."""
    return 1.0 if rows >= 32 else 0.8 if rows >= 16 else 0.5 if rows >= 8 else 0.3


def _row_block(filters: int, kh: int, out_h: int) -> int:
    """Output rows R computed per column of the stride-1 path.

    A column of R rows reads ``A*R`` input rows, ``A = ceil((kh + R - 1) / R)``: per output
    pixel the products do ``filters * A*R`` multiply-adds per input channel and kernel column
    (at the rate of ``R*filters`` output rows), and the column matrix holds ``A`` values.
    R minimises ``filters * A*R / rate + 8*A`` (a copied value costing about 8 multiply-adds);
    on LeNet this picks R = 4 for conv1 (8 filters) and R = 2 for conv2 (16 filters), each
    measured faster in a training step than its neighbours (R = 2, 8 and R = 1, 4).
    """
    def cost(rows):
        a = -(-(kh + rows - 1) // rows)
        return filters * a * rows / _gemm_rate(rows * filters) + 8 * a
    return min((r for r in (1, 2, 4, 8) if r == 1 or r <= out_h), key=cost)


class _S1:
    """Geometry of the stride-1 path for one (input shape, filters, kernel, padding, R).

    The zero-padded input is stored as ``xr`` (N, C, R, Q, Wp): sub-plane ``r`` holds the
    padded rows ``R*q + r``. A GEMM column is one output position ``(n, i', j)`` of a block
    of R output rows ``R*i' .. R*i'+R-1``, taken at the full padded width ``j < Wp`` (the
    columns ``j >= out_w`` are garbage, computed and dropped). Its rows ``(c, a, r, v)`` hold
    padded pixel ``(R*i' + R*a + r, j + v)``, i.e. ``xr[n, c, r, i' + a, j + v]``: for fixed
    ``(n, c, a, r, v)`` the ``L = HB*Wp`` positions are one contiguous run of ``xr``, so the
    column matrix is a single copy of long runs (the plain im2col copies rows of only out_w
    values). Output row ``R*i' + s`` is then ``W_ext[s] @ column`` with
    ``W_ext[s, f, c, u', v] = W[f, c, u' - s, v]`` (zero outside the kernel), so one product
    with ``R*F`` output rows gives R output rows per column.
    """

    def __init__(self, x_shape, filters, kernel, pads, rows):
        self.n, self.c, self.h, self.w = x_shape
        self.f = filters
        self.kh, self.kw = kernel
        (self.pt, pb), (self.pl, pr) = pads
        hp, self.wp = self.h + self.pt + pb, self.w + self.pl + pr
        self.oh, self.ow = hp - self.kh + 1, self.wp - self.kw + 1
        self.r = rows
        self.hb = -(-self.oh // rows)              # row blocks; the last may hold garbage rows
        self.a = -(-(self.kh + rows - 1) // rows)  # input row blocks an output block reads
        self.q = self.hb + self.a - 1              # rows of each (c, r) sub-plane
        self.length = self.hb * self.wp            # columns per sample
        self.k = self.c * self.a * rows * self.kw  # rows of the column matrix
        self.size = self.n * self.c * rows * self.q * self.wp

    def row_split(self, sub: int):
        """``(first input row t, first sub-plane row q, count)`` of the input rows stored in
        sub-plane ``sub`` (padded row ``t + pt = R*q + sub``)."""
        r, pt = self.r, self.pt
        t0 = (sub - pt) % r
        return t0, (t0 + pt) // r, len(range(t0, self.h, r))

    def fill_input(self, x: np.ndarray, flat: np.ndarray) -> None:
        """Write x into the interior of the zero-bordered ``xr`` buffer ``flat``."""
        xr = flat[:self.size].reshape(self.n, self.c, self.r, self.q, self.wp)
        for sub in range(self.r):
            t0, q0, count = self.row_split(sub)
            if count:
                xr[:, :, sub, q0:q0 + count, self.pl:self.pl + self.w] = x[:, :, t0::self.r]

    def columns(self, flat: np.ndarray) -> np.ndarray:
        """Read-only (C, A, R, kw, N, L) view of ``xr`` whose copy is the column matrix."""
        it = flat.itemsize
        plane = self.q * self.wp
        return as_strided(flat, shape=(self.c, self.a, self.r, self.kw, self.n, self.length),
                          strides=(self.r * plane * it, self.wp * it, plane * it, it,
                                   self.c * self.r * plane * it, it), writeable=False)

    def copy_out(self, ext: np.ndarray, y: np.ndarray) -> None:
        """y (N, F, out_h, out_w) <- ext (R*F, N*L): drop the garbage, interleave the rows."""
        for dst, src in self._pairs(ext, y):
            np.copyto(dst, src)

    def copy_in(self, dy: np.ndarray, ext: np.ndarray) -> None:
        """ext (R*F, N*L) <- dy (N, F, out_h, out_w); garbage entries keep their zeros."""
        for src, dst in self._pairs(ext, dy):
            np.copyto(dst, src)

    def grad_buffer(self, workspace, dtype):
        """``(flat, ext)``: the zero-bordered buffer of dy in the product layout, and its
        (R*F, N*L) part (garbage entries stay zero: nothing ever writes them)."""
        lead = self.kw - 1
        flat = _buffer(workspace, "dy_ext", (lead + self.r * self.f * self.n * self.length,),
                       dtype, zero=True)
        return flat, flat[lead:].reshape(self.r * self.f, self.n * self.length)

    def pools_in_place(self, pool) -> bool:
        """Whether :meth:`pool_planes` can view the (ph, pw) windows that tile the output:
        they must cover it exactly, and each window row offset ``u`` must map to one row
        sub-block ``r``: R = 1, or R a multiple of ph with no garbage rows."""
        ph, pw = pool
        return (self.oh % ph == 0 and self.ow % pw == 0
                and (self.r == 1 or (self.r % ph == 0 and self.oh == self.hb * self.r)))

    def pool_planes(self, ext: np.ndarray, pool) -> np.ndarray:
        """View of ``ext`` (R*F, N*L) holding output pixel ``(ph*o + u, pw*o' + v)`` of
        sample n, filter f at ``[u, v, n, f, ..., o']``, where ``...`` is o itself (R = 1)
        or o split as ``(o // k, o % k)``, k = R / ph (row ``R*i' + r`` with r = ph*e + u
        is pixel row ``ph*(k*i' + e) + u``). Writable when ``ext`` is."""
        ph, pw = pool
        ow2 = self.ow // pw
        e5 = ext.reshape(self.r, self.f, self.n, self.hb, self.wp)[..., :ow2 * pw]
        if self.r == 1:
            return e5[0].reshape(self.f, self.n, self.oh // ph, ph, ow2, pw).transpose(3, 5, 1, 0, 2, 4)
        k = self.r // ph
        return e5.reshape(k, ph, self.f, self.n, self.hb, ow2, pw).transpose(1, 6, 3, 2, 4, 0, 5)

    def _pairs(self, ext, a):
        """``(view of a, matching view of ext)`` pairs covering every output pixel of the
        contiguous (N, F, out_h, out_w) array ``a``."""
        m, f, oh, ow, r = a.shape[0], self.f, self.oh, self.ow, self.r
        ext5 = ext.reshape(r, f, m, self.hb, self.wp)
        full, rem = divmod(oh, r)
        it = a.itemsize
        if full:
            blocks = as_strided(a, shape=(m, f, full, r, ow),
                                strides=(f * oh * ow * it, oh * ow * it, r * ow * it, ow * it, it))
            yield blocks, ext5[:, :, :, :full, :ow].transpose(2, 1, 3, 0, 4)
        if rem:
            yield a[:, :, full * r:], ext5[:rem, :, :, full, :ow].transpose(2, 1, 0, 3)


def _s1_geometry(x_shape, filters, kernel, pads) -> _S1:
    """The stride-1 layout of a convolution, with the row block :func:`_row_block` picks."""
    out_h = x_shape[2] + sum(pads[0]) - kernel[0] + 1
    return _S1(x_shape, filters, kernel, pads, _row_block(filters, kernel[0], out_h))


def pools_in_place(x_shape, filters, kernel, stride, padding, pool) -> bool:
    """Whether :func:`conv2d_forward` with ``wide_for=pool`` hands over a
    :class:`WideOutput` for an input batch of ``x_shape`` (and so never makes its y)."""
    kernel, stride = pair(kernel, "kernel_size"), pair(stride, "stride")
    if stride != (1, 1):
        return False
    pads = resolve_padding(padding, x_shape[2:], kernel, stride)
    return _s1_geometry(x_shape, filters, kernel, pads).pools_in_place(pair(pool, "pool_size"))


class WideOutput:
    """A stride-1 convolution's output y (N, F, out_h, out_w) left where its product wrote
    it, for a tiled max pooling to read directly (:class:`_S1` describes the layout).

    The pooling takes its window planes from :meth:`pool_planes` instead of from y, and
    writes its gradient through :meth:`grad_planes` into the buffer the convolution's
    backward reads, handing back :meth:`gradient`: the copy into y and the copy of dy into
    the product layout are never made (LeNet: about 0.4 ms of a 9 ms training step). Only
    :func:`conv2d_forward` with ``wide_for`` makes one, when the layout allows it.
    """

    def __init__(self, geometry: "_S1", ext: np.ndarray, cache: dict, workspace: dict):
        self._g, self._ext, self._cache, self._workspace = geometry, ext, cache, workspace
        self.shape = (geometry.n, geometry.f, geometry.oh, geometry.ow)
        self.ndim = 4
        self.dtype = ext.dtype

    def pool_planes(self, pool) -> np.ndarray:
        """Read-only view of window offset ``(u, v)`` of every ``pool`` window, shaped
        ``(ph, pw, N, F, ...)`` (see :meth:`_S1.pool_planes`)."""
        view = self._g.pool_planes(self._ext, pool)
        view.flags.writeable = False
        return view

    def grad_planes(self, pool) -> np.ndarray:
        """The same positions in the gradient buffer; whoever writes all of them then
        passes :meth:`gradient` to :func:`conv2d_backward`."""
        return self._g.pool_planes(self._g.grad_buffer(self._workspace, self.dtype)[1], pool)

    def gradient(self) -> "WideGradient":
        return WideGradient(self._cache)


class WideGradient:
    """dL/dy of a :class:`WideOutput`, already written in the convolution's gradient buffer."""

    def __init__(self, cache: dict):
        self.cache = cache
        self.dtype = cache["cols"].dtype


def _s1_forward(x, w_eff, bias, pads, workspace, wide_for=None):
    """Stride-1 forward: ``y`` (a :class:`WideOutput` when ``wide_for`` fits) and the cache
    (the column matrix is kept for dW)."""
    f, _, kh, kw = w_eff.shape
    g = _s1_geometry(x.shape, f, (kh, kw), pads)
    dt = x.dtype
    flat = _buffer(workspace, "xr", (g.size + g.kw - 1,), dt, zero=True)
    g.fill_input(x, flat)
    # A bias rides in the product: a row of ones in the columns, a column of biases in W_ext.
    kb = g.k + (bias is not None)
    w_ext = _buffer(workspace, "w_ext", (g.r * f, kb), dt, zero=True)
    taps = w_ext[:, :g.k].reshape(g.r, f, g.c, g.a * g.r, kw)
    for s in range(g.r):  # the same entries every call: the rest stays zero
        taps[s, :, :, s:s + kh] = w_eff
    if bias is not None:
        w_ext[:, g.k].reshape(g.r, f)[:] = bias
    cols = _buffer(workspace, "cols", (kb, g.n * g.length), dt)
    np.copyto(cols[:g.k].reshape(g.c, g.a, g.r, g.kw, g.n, g.length), g.columns(flat))
    cols[g.k:] = 1
    ext = _buffer(workspace, "y_ext", (g.r * f, g.n * g.length), dt)
    np.matmul(w_ext, cols, out=ext)
    cache = {"s1": g, "cols": cols, "w_eff": w_eff}
    if wide_for is not None and g.pools_in_place(wide_for):
        return WideOutput(g, ext, cache, workspace), cache
    y = np.empty((g.n, f, g.oh, g.ow), dt)
    g.copy_out(ext, y)
    return y, cache


def _s1_backward(dy, cache, need_input_grad, workspace):
    """Stride-1 backward: ``(dweight, dbias, dx)``; dW and db from one product with the
    forward's columns, ``dW[f, c, u, v] = sum_s dW_ext[s, f, c, u + s, v]``."""
    g = cache["s1"]
    dt = cache["cols"].dtype
    lead = g.kw - 1  # zeros before the first row, read by the input gradient's shifted rows
    flat, ext = g.grad_buffer(workspace, dt)
    if isinstance(dy, WideGradient):
        if dy.cache is not cache:  # the layer ran another forward in between
            raise ValueError("this gradient belongs to an earlier forward of the convolution")
        dy = None  # a max pooling wrote it into ext already
    else:
        dy = np.ascontiguousarray(dy)
        g.copy_in(dy, ext)
    # (R*F, K [+ 1 bias column]), computed transposed: with two BLAS threads OpenBLAS runs
    # LeNet's conv2 product 8-19% faster as cols @ extᵀ than as ext @ colsᵀ, conv1's within
    # -9..+7% (python -m benchmarks.orientation; RESULTS.md).
    products = (cache["cols"] @ ext.T).T
    dbias = products[:, g.k:].reshape(g.r, g.f).sum(axis=0) if cache["has_bias"] else None
    dw_ext = products[:, :g.k].reshape(g.r, g.f, g.c, g.a * g.r, g.kw)
    dweight = dw_ext[0, :, :, :g.kh].copy()
    for s in range(1, g.r):
        dweight += dw_ext[s, :, :, s:s + g.kh]
    if not need_input_grad:
        return dweight, dbias, None
    if g.r != 1:  # the input gradient wants dy in the one-row layout
        flat = _buffer(workspace, "dy_wide", (lead + g.f * g.n * g.oh * g.wp,), dt, zero=True)
        wide = flat[lead:].reshape(g.f, g.n, g.oh, g.wp)
        if dy is not None:
            np.copyto(wide[..., :g.ow], dy.transpose(1, 0, 2, 3))
        else:  # out_h = HB*R here; ext's garbage columns are zero, as wide's must be
            np.copyto(wide.reshape(g.f, g.n, g.hb, g.r, g.wp),
                      ext.reshape(g.r, g.f, g.n, g.hb, g.wp).transpose(1, 2, 3, 0, 4))
    return dweight, dbias, _s1_input_grad(flat, cache["w_eff"], g, workspace)


def _s1_input_grad(dy_flat, w_eff, g, workspace) -> np.ndarray:
    """dx of a stride-1 convolution from dy laid out wide: ``dy_flat[kw-1:]`` is
    (F, N, out_h, Wp) with zeros in the columns ``j >= out_w`` and ``kw-1`` zeros before it.

    With every output row taken at the padded width Wp, ``dxp[c, n, t] = sum_{u, v, f}
    W[f, c, u, v] dy[f, n, t - u*Wp - v]`` on the flattened (Hp*Wp) padded plane. The
    horizontal offsets go into the product: row ``(f, v)`` of ``B`` is dy shifted right by v
    (one contiguous run: a shift past a row's start reads the previous row's zero columns),
    ``G = W''(C*kh, F*kw) @ B`` sums over f and v, and only the kh vertical offsets are left
    as adds of long runs (``G[(c, u)]`` shifted by ``u*Wp``). The plain col2im instead
    forms ``W2ᵀ dy`` with F-deep products (memory-bound) and adds kh*kw blocks.
    """
    f, c, kh, kw = g.f, g.c, g.kh, g.kw
    dt = dy_flat.dtype
    length = g.oh * g.wp
    it = dy_flat.itemsize
    # Row (f, v') with v' = kw-1-v starts at f*N*L + v' of dy_flat: dy shifted right by v.
    shifted = as_strided(dy_flat, shape=(f, kw, g.n * length),
                         strides=(g.n * length * it, it, it), writeable=False)
    b = _buffer(workspace, "dy_shift", (f * kw, g.n * length), dt)
    np.copyto(b.reshape(f, kw, g.n * length), shifted)
    w3 = _buffer(workspace, "w_in", (c, kh, f, kw), dt)
    np.copyto(w3, w_eff[:, :, :, ::-1].transpose(1, 2, 0, 3))
    gm = _buffer(workspace, "g_in", (c * kh, g.n * length), dt)
    np.matmul(w3.reshape(c * kh, f * kw), b, out=gm)
    hp = g.oh + kh - 1
    plane = hp * g.wp
    dxp = _buffer(workspace, "dxp", (c, g.n, plane), dt)
    blocks = gm.reshape(c, kh, g.n, length)
    dxp[:, :, :length] = blocks[:, 0]
    dxp[:, :, length:] = 0
    for u in range(1, kh):  # rows u*Wp .. (u + out_h)*Wp - 1 of every (c, n) plane
        dxp[:, :, u * g.wp:u * g.wp + length] += blocks[:, u]
    dxp4 = dxp.reshape(c, g.n, hp, g.wp)
    dx = np.empty((g.n, c, g.h, g.w), dt)
    np.copyto(dx, dxp4[:, :, g.pt:g.pt + g.h, g.pl:g.pl + g.w].transpose(1, 0, 2, 3))
    return dx


def conv2d_workspace_sizes(x_shape, filters, kernel, stride=1, padding=0, *, has_bias=True,
                           need_input_grad=True) -> dict[str, int]:
    """Elements of every ``workspace`` buffer one training step of :func:`conv2d_forward` and
    :func:`conv2d_backward` keeps for a batch of ``x_shape`` (what ``dlcli shapes`` counts;
    a test checks these against the buffers a real step leaves)."""
    n, c, h, w = x_shape
    kh, kw = pair(kernel, "kernel_size")
    stride = pair(stride, "stride")
    pads = resolve_padding(padding, (h, w), (kh, kw), stride)
    f = filters
    if stride == (1, 1):
        g = _s1_geometry(x_shape, f, (kh, kw), pads)
        kb, cols = g.k + has_bias, g.n * g.length
        sizes = {"xr": g.size + kw - 1, "w_ext": g.r * f * kb, "cols": kb * cols,
                 "y_ext": g.r * f * cols, "dy_ext": kw - 1 + g.r * f * cols}
        if need_input_grad:
            wide = g.n * g.oh * g.wp
            if g.r != 1:
                sizes["dy_wide"] = kw - 1 + f * wide
            sizes.update(dy_shift=f * kw * wide, w_in=c * kh * f * kw, g_in=c * kh * wide,
                         dxp=c * g.n * (g.oh + kh - 1) * g.wp)
        return sizes
    oh = conv_output_size(h, kh, stride[0], *pads[0])
    ow = conv_output_size(w, kw, stride[1], *pads[1])
    sizes = {"cols": c * kh * kw * n * oh * ow, "y2": f * n * oh * ow, "dy2": f * n * oh * ow}
    if any(p for pair_ in pads for p in pair_):
        sizes["padded"] = n * c * (h + sum(pads[0])) * (w + sum(pads[1]))
    if need_input_grad:
        sizes["dcols"] = sizes["cols"]
    return sizes


def conv_transpose2d_workspace_sizes(x_shape, filters, kernel, stride=1, padding=0,
                                     output_padding=0) -> dict[str, int]:
    """Elements of the ``workspace`` buffers of one :func:`conv_transpose2d_forward` and
    backward step on a batch of ``x_shape``."""
    n, cin, h, w = x_shape
    kh, kw = pair(kernel, "kernel_size")
    ph, pw = pair(padding, "padding")
    sizes = {"x2": cin * n * h * w, "cols": filters * kh * kw * n * h * w}
    sizes["dcols"] = sizes["cols"]
    if ph or pw:
        sh, sw = pair(stride, "stride")
        oph, opw = pair(output_padding, "output_padding")
        ho = conv_transpose_output_size(h, kh, sh, ph, oph)
        wo = conv_transpose_output_size(w, kw, sw, pw, opw)
        sizes["dy_padded"] = n * filters * (ho + 2 * ph) * (wo + 2 * pw)
    return sizes


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

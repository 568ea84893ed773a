"""Stride-1 convolution from row-blocked "wide" columns (the fast path of
:func:`dlcli.nn.functional.conv.conv2d_forward`).

Each output row is computed at the full padded width (the extra columns are garbage, dropped
in the copy out or skipped by a pooling's view), and R output rows share a column so a layer
with few filters still gets a product with ~32 output rows. The bias rides in the product (a
row of ones), and the input gradient puts the kernel's horizontal offsets into its product's
depth (:func:`_s1_input_grad`), leaving kh adds of long runs. A stride-1 output can also stay
in its product's layout for a tiled max pooling to read (:class:`WideOutput`).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from dlcli.nn.functional.im2col import _buffer, pair, resolve_padding


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
    the product layout are never made. Only
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
    # (R*F, K [+ 1 bias column]), computed transposed: OpenBLAS runs this shape faster as
    # cols @ extᵀ than as ext @ colsᵀ (python -m benchmarks.orientation measures both).
    products = np.matmul(cache["cols"], ext.T).T
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

"""Max/average pooling and max-unpooling on (N, C, H, W) batches (notes 3.4.1, 3.4.2).

Window ``(ph, pw)``, stride ``(sh, sw)``, padding ``(pt, pl)`` on both sides; output size
``floor((n + 2p - f) / s) + 1`` per dimension, as for convolution.

* max pool: ``y[n, c, i, j] = max_{u, v} xp[n, c, sh*i + u, sw*j + v]``, padding with -inf.
  It also returns ``argmax``: the offset ``u * pw + v`` of each maximum inside its window
  (the first one in scan order on ties); :func:`argmax_to_indices` turns it into PyTorch's
  flat ``row * W + col`` indices.
* avg pool: the window mean with padded zeros counted (PyTorch's ``count_include_pad=True``).
* max unpool: each value goes back to the position its maximum came from, zeros elsewhere.

Every pass loops over the ``ph*pw`` window offsets, each step one elementwise operation on a
strided slice of the whole batch. That beats reshaping into (…, oh, ph, ow, pw) blocks and
reducing over two axes, which NumPy does far more slowly. When windows
do not overlap (stride >= pool, e.g. the usual 2x2/2), backward assigns instead of adding.
Max pooling with tiling windows (stride = pool, no padding) first copies each window offset
into its own contiguous plane: NumPy copies strided data fast but runs ufuncs on it several
times slower than on contiguous data, so all the comparisons then run on contiguous planes.
Its two halves, :func:`maxpool2d_planes` and :func:`maxpool2d_planes_backward`, take any
view of those planes, so a convolution's output can be pooled where its product left it
(:mod:`dlcli.nn.fusion`).
"""

from __future__ import annotations

import numpy as np

from .conv import conv_output_size, pair


def pool_output_hw(input_hw, pool, stride, padding) -> tuple[int, int]:
    """Pooled ``(out_h, out_w)``; a value <= 0 means the window does not fit."""
    return (conv_output_size(input_hw[0], pool[0], stride[0], padding[0], padding[0]),
            conv_output_size(input_hw[1], pool[1], stride[1], padding[1], padding[1]))


def pool_params(pool_size, stride=None, padding=0):
    """Normalise hyperparameters to ``(pool, stride, padding)`` pairs; stride defaults to pool."""
    pool = pair(pool_size, "pool_size")
    stride = pool if stride is None else pair(stride, "stride")
    return pool, stride, pair(padding, "padding")


def _check(x_hw, pool, stride, padding) -> tuple[int, int]:
    if padding[0] * 2 > pool[0] or padding[1] * 2 > pool[1]:
        # A window entirely in the padding would have no input maximum (PyTorch's rule too).
        raise ValueError(f"padding {padding[0]}x{padding[1]} must be at most half the pool "
                         f"size {pool[0]}x{pool[1]}")
    out_hw = pool_output_hw(x_hw, pool, stride, padding)
    if out_hw[0] <= 0 or out_hw[1] <= 0:
        raise ValueError(f"pool {pool[0]}x{pool[1]} is larger than the padded input "
                         f"{x_hw[0] + 2 * padding[0]}x{x_hw[1] + 2 * padding[1]}")
    return out_hw


def _padded(x: np.ndarray, padding, value) -> np.ndarray:
    pt, pl = padding
    if pt == 0 and pl == 0:
        return x
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * pt, w + 2 * pl), value, dtype=x.dtype)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    return xp


def _offsets(pool, stride, out_hw):
    """``(k, (row slice, col slice))`` of every window offset ``k = u * pw + v``."""
    (ph, pw), (sh, sw), (oh, ow) = pool, stride, out_hw
    for u in range(ph):
        rows = slice(u, u + sh * (oh - 1) + 1, sh)
        for v in range(pw):
            yield u * pw + v, (Ellipsis, rows, slice(v, v + sw * (ow - 1) + 1, sw))


def _argmax_dtype(pool):
    return np.uint8 if pool[0] * pool[1] <= 255 else np.int32


def _disjoint(pool, stride) -> bool:
    return stride[0] >= pool[0] and stride[1] >= pool[1]


def _tiled(pool, stride, padding) -> bool:
    """Windows that tile the input (stride = pool, no padding): the fast path's case."""
    return tuple(stride) == tuple(pool) and not any(padding)


def _buf(workspace, key, shape, dtype) -> np.ndarray:
    if workspace is not None:
        buf = workspace.get(key)
        if buf is not None and buf.shape == shape and buf.dtype == dtype:
            return buf
    buf = np.empty(shape, dtype)
    if workspace is not None:
        workspace[key] = buf
    return buf


def _planes_view(a: np.ndarray, pool, out_hw) -> np.ndarray:
    """(ph, pw, N, C, out_h, out_w) view of a's pixel ``(sh*i + u, sw*j + v)`` (stride = pool)."""
    (ph, pw), (oh, ow) = pool, out_hw
    n, c = a.shape[:2]
    return a[:, :, :oh * ph, :ow * pw].reshape(n, c, oh, ph, ow, pw).transpose(3, 5, 0, 1, 2, 4)


def _maxpool_tiled(x, pool, out_hw, workspace):
    """Max pooling of tiling windows: :func:`maxpool2d_planes` of x's window planes."""
    return maxpool2d_planes(_planes_view(x, pool, out_hw), (*x.shape[:2], *out_hw),
                            workspace)


def maxpool2d_planes(view: np.ndarray, out_shape, workspace: dict | None = None):
    """Max pooling of tiling windows given as planes: ``view[u, v, ...]`` holds offset
    ``(u, v)`` of every window, ``...`` in the row-major order of the output
    ``out_shape`` (N, C, out_h, out_w). Returns ``(y, argmax)`` as :func:`maxpool2d_forward`.

    One copy gathers offset ``k = u*pw + v`` of every window into contiguous plane k (a
    copy of strided data is fast in NumPy, a ufunc on it is not); every comparison after
    that runs on whole contiguous planes. 2x2 windows take the row-first form: max and
    first argmax of each row's pair, then of the two rows.
    """
    ph, pw = view.shape[:2]
    n, c, oh, ow = out_shape
    size = n * c * oh * ow
    planes = _buf(workspace, "planes", (ph * pw, size), view.dtype)
    np.copyto(planes.reshape(view.shape), view)
    y = np.empty((n, c, oh, ow), view.dtype)
    yf = y.reshape(size)
    if (ph, pw) == (2, 2):
        a, b, c_, d = planes
        # argmax = row1 ? 2 + (d > c) : (b > a), with row1 = max(c, d) > max(a, b): the
        # first maximum in scan order (a, b, c, d), as the general loop below picks.
        argmax = np.greater(b, a).view(np.uint8)
        np.maximum(a, b, out=yf)
        h1 = np.maximum(c_, d, out=a)  # plane a is no longer needed
        right = np.greater(d, c_, out=_buf(workspace, "right", (size,), np.bool_)).view(np.uint8)
        row1 = np.greater(h1, yf, out=_buf(workspace, "row1", (size,), np.bool_)).view(np.uint8)
        np.maximum(yf, h1, out=yf)
        right += np.uint8(2)
        right -= argmax
        right *= row1
        argmax += right  # uint8 arithmetic wraps, so this is exact
        return y, argmax.reshape(n, c, oh, ow)
    np.copyto(yf, planes[0])
    argmax = np.zeros(size, _argmax_dtype((ph, pw)))
    better = _buf(workspace, "better", (size,), np.bool_)
    for k in range(1, ph * pw):
        np.greater(planes[k], yf, out=better)  # strict: on ties the earlier offset stays
        np.maximum(yf, planes[k], out=yf)
        np.copyto(argmax, k, where=better)
    return y, argmax.reshape(n, c, oh, ow)


def _maxpool_tiled_backward(dy, argmax, input_hw, pool, workspace):
    n, c, oh, ow = dy.shape
    (ph, pw), (h, w) = pool, input_hw
    covered = (oh * ph, ow * pw) == (h, w)
    dx = np.empty((n, c, h, w), dy.dtype) if covered else np.zeros((n, c, h, w), dy.dtype)
    maxpool2d_planes_backward(dy, argmax, _planes_view(dx, pool, (oh, ow)), workspace)
    return dx


def maxpool2d_planes_backward(dy: np.ndarray, argmax: np.ndarray, targets: np.ndarray,
                              workspace: dict | None = None) -> None:
    """Write tiled max pooling's input gradient into ``targets``, a writable planes view
    laid out as :func:`maxpool2d_planes`'s ``view``: each window's ``dy`` at its argmax
    offset, zero at the others (windows are disjoint: each pixel is written once)."""
    ph, pw = targets.shape[:2]
    shape = targets.shape[2:]  # (N, C, out_h, out_w), or a split of it
    sel = _buf(workspace, "sel", dy.shape, np.bool_).reshape(shape)
    dy, argmax = dy.reshape(shape), argmax.reshape(shape)
    for k in range(ph * pw):
        np.multiply(dy, np.equal(argmax, k, out=sel), out=targets[k // pw, k % pw])


def maxpool2d_workspace_bytes(x_shape, pool_size, stride=None, padding=0, itemsize=4,
                              backward: bool = True) -> int:
    """Bytes of the ``workspace`` buffers one max-pooling forward and (when ``backward``)
    backward keep for a batch of ``x_shape``: the tiled path's planes and masks (the
    general path keeps none)."""
    pool, stride, padding = pool_params(pool_size, stride, padding)
    if not _tiled(pool, stride, padding):
        return 0
    n, c = x_shape[:2]
    oh, ow = pool_output_hw(x_shape[2:], pool, stride, padding)
    size = n * c * oh * ow
    masks = 2 if tuple(pool) == (2, 2) else 1  # right and row1, or better
    return pool[0] * pool[1] * size * itemsize + (masks + backward) * size  # sel: backward


# ---- max pooling ---------------------------------------------------------------------------
def maxpool2d_forward(x: np.ndarray, pool_size, stride=None, padding=0, *,
                      workspace: dict | None = None):
    """Max pooling. x: (N, C, H, W) -> ``(y, argmax)``, both (N, C, out_h, out_w).

    ``argmax`` holds the window offset ``u * pw + v`` of each maximum (uint8 for windows of
    up to 255 pixels). ``workspace``: optional dict of reusable scratch buffers.
    """
    pool, stride, padding = pool_params(pool_size, stride, padding)
    out_hw = _check(x.shape[2:], pool, stride, padding)
    if _tiled(pool, stride, padding):
        return _maxpool_tiled(x, pool, out_hw, workspace)
    xp = _padded(x, padding, -np.inf)
    offsets = _offsets(pool, stride, out_hw)
    _, first = next(offsets)
    y = xp[first].copy()
    argmax = np.zeros(y.shape, _argmax_dtype(pool))
    better = np.empty(y.shape, bool)
    for k, where in offsets:
        window = xp[where]
        np.greater(window, y, out=better)  # strict: on ties the earlier offset stays
        np.maximum(y, window, out=y)
        # argmax = better ? k : argmax, without the slow masked copy (k > argmax here).
        step = better.view(np.uint8) if argmax.dtype == np.uint8 else better.astype(argmax.dtype)
        argmax += step * (argmax.dtype.type(k) - argmax)
    return y, argmax


def argmax_to_indices(argmax: np.ndarray, input_hw, pool_size, stride=None, padding=0) -> np.ndarray:
    """Window offsets -> flat positions ``row * W + col`` in each (unpadded) input plane (int64),
    the ``indices`` of PyTorch's ``max_pool2d(..., return_indices=True)``."""
    (_, pw), (sh, sw), (pt, pl) = pool_params(pool_size, stride, padding)
    oh, ow = argmax.shape[2:]
    u, v = np.divmod(argmax.astype(np.int64), pw)
    rows = np.arange(oh).reshape(oh, 1) * sh - pt + u
    cols = np.arange(ow).reshape(1, ow) * sw - pl + v
    return rows * int(input_hw[1]) + cols


def max_unpool2d(values: np.ndarray, argmax: np.ndarray, output_hw, pool_size, stride=None,
                 padding=0) -> np.ndarray:
    """Place ``values`` (N, C, out_h, out_w) where their maxima came from, in zeroed
    (N, C, H, W) planes. ``argmax`` comes from :func:`maxpool2d_forward` with the same pool
    parameters. Where overlapping windows chose the same pixel the values are summed, which
    makes this exactly the transpose of max pooling's selection (PyTorch keeps only one).
    This is also max pooling's backward: ``dx = max_unpool2d(dy, argmax, ...)``.
    """
    pool, stride, padding = pool_params(pool_size, stride, padding)
    n, c = values.shape[:2]
    h, w = output_hw
    pt, pl = padding
    outp = np.zeros((n, c, h + 2 * pt, w + 2 * pl), values.dtype)
    disjoint = _disjoint(pool, stride)
    for k, where in _offsets(pool, stride, values.shape[2:]):
        if disjoint:  # each pixel is in at most one window: assign
            np.multiply(values, argmax == k, out=outp[where])
        else:
            outp[where] += values * (argmax == k)
    return outp[:, :, pt:pt + h, pl:pl + w].copy() if (pt or pl) else outp


def maxpool2d_backward(dy: np.ndarray, argmax: np.ndarray, input_hw, pool_size, stride=None,
                       padding=0, *, workspace: dict | None = None):
    """dx (N, C, H, W): each upstream gradient goes to the position its maximum came from."""
    pool, stride, padding = pool_params(pool_size, stride, padding)
    if _tiled(pool, stride, padding):
        return _maxpool_tiled_backward(dy, argmax, tuple(input_hw), pool, workspace)
    return max_unpool2d(dy, argmax, input_hw, pool_size, stride, padding)


def max_unpool2d_backward(dy: np.ndarray, argmax: np.ndarray, pool_size, stride=None,
                          padding=0) -> np.ndarray:
    """Gradient of :func:`max_unpool2d` w.r.t. its values: ``dy`` read where each value went."""
    pool, stride, padding = pool_params(pool_size, stride, padding)
    dyp = _padded(dy, padding, 0)
    dvalues = np.zeros(argmax.shape, dy.dtype)
    for k, where in _offsets(pool, stride, argmax.shape[2:]):
        dvalues += dyp[where] * (argmax == k)
    return dvalues


# ---- average pooling -------------------------------------------------------------------------
def avgpool2d_forward(x: np.ndarray, pool_size, stride=None, padding=0) -> np.ndarray:
    """Average pooling (padded zeros count). x: (N, C, H, W) -> (N, C, out_h, out_w)."""
    pool, stride, padding = pool_params(pool_size, stride, padding)
    out_hw = _check(x.shape[2:], pool, stride, padding)
    xp = _padded(x, padding, 0)
    offsets = _offsets(pool, stride, out_hw)
    _, first = next(offsets)
    y = xp[first].copy()
    for _, where in offsets:
        y += xp[where]
    y *= x.dtype.type(1.0 / (pool[0] * pool[1]))
    return y


def avgpool2d_backward(dy: np.ndarray, input_hw, pool_size, stride=None, padding=0) -> np.ndarray:
    """dx (N, C, H, W): each window's gradient spread evenly, ``dy / (ph * pw)``."""
    pool, stride, padding = pool_params(pool_size, stride, padding)
    n, c = dy.shape[:2]
    h, w = input_hw
    pt, pl = padding
    g = dy * dy.dtype.type(1.0 / (pool[0] * pool[1]))
    dxp = np.zeros((n, c, h + 2 * pt, w + 2 * pl), dy.dtype)
    disjoint = _disjoint(pool, stride)
    for _, where in _offsets(pool, stride, dy.shape[2:]):
        if disjoint:
            dxp[where] = g
        else:
            dxp[where] += g
    return dxp[:, :, pt:pt + h, pl:pl + w].copy() if (pt or pl) else dxp

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
build their columns from long contiguous runs (:mod:`dlcli.nn.functional.conv_stride1`).
Other strides use the column matrix ``(C*kh*kw, N*out_h*out_w)``: the forward is
``W.reshape(F, -1) @ cols``, the weight gradient ``dy2 @ cols.T``, and col2im loops only over
the ``kh*kw`` kernel offsets, each adding one strided slice (``np.add.at`` is far slower).
Large buffers live in an optional ``workspace`` dict so a layer reuses them across batches.
"""

from __future__ import annotations

import numpy as np

# Re-exported: the layers and tests reach the geometry and the stride-1 layouts through here.
from dlcli.nn.functional.conv_stride1 import (_s1_backward, _s1_forward,  # noqa: F401
                                              _s1_geometry, pools_in_place)
from dlcli.nn.functional.im2col import (Pads, _buffer, _crop, _to_channels_first,  # noqa: F401
                                        col2im, conv_output_size, conv_transpose_output_size,
                                        flip, im2col, pad_into, pair, resolve_padding)


# ---- convolution ------------------------------------------------------------------------
def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                   stride=1, padding=0, *, flip_kernel: bool = False,
                   workspace: dict | None = None, wide_for=None) -> tuple[np.ndarray, dict]:
    """Cross-correlation (or convolution when ``flip_kernel``) of a batch.

    x: (N, C, H, W); weight: (F, C, kh, kw); bias: (F,) or None; padding as in
    :func:`resolve_padding`. Returns ``(y, cache)`` with y: (N, F, out_h, out_w).
    ``wide_for=(ph, pw)`` (for :mod:`dlcli.nn.fusion`): a tiled max pooling of that window
    reads y next; y then comes back left in the stride-1 product's layout when that layout
    allows it and a ``workspace`` is given (:mod:`~dlcli.nn.functional.conv_stride1`).
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

    dy: (N, F, out_h, out_w), or the gradient handed back for a y left in the product's
    layout (``wide_for``).
    Returns ``(dx, dweight, dbias)``: dx (N, C, H, W) or None when not needed,
    dweight (F, C, kh, kw), dbias (F,) or None.
    ``dW = dy2 @ cols.T``; ``dx = col2im(W2.T @ dy2)`` with ``dy2`` = dy as (F, N*out_h*out_w)
    (stride 1: the same products in the layouts of :mod:`~dlcli.nn.functional.conv_stride1`).
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
    dweight = np.matmul(dy2, cols.T).reshape(f, c, kh, kw)
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
    dweight = np.matmul(x2, dcols.T).reshape(cin, cout, kh, kw)
    dbias = dy.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
    if not need_input_grad:
        return None, dweight, dbias
    dx2 = np.matmul(w2, dcols)
    dx = np.ascontiguousarray(dx2.reshape(cin, n, h, w).transpose(1, 0, 2, 3))
    return dx, dweight, dbias


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0) -> np.ndarray:
    """Convenience wrapper: the output of :func:`conv_transpose2d_forward` only."""
    return conv_transpose2d_forward(x, weight, bias, stride, padding, output_padding)[0]

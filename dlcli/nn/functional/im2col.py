"""Convolution geometry and its buffers on (N, C, H, W) batches: pairs, padding, output
sizes, kernel flips, reusable workspace buffers, and the im2col / col2im copies.

Output size per spatial dimension: ``floor((n + p_before + p_after - f) / s) + 1``;
transposed: ``s(n - 1) + f - 2p + output_padding`` (notes 3 and 4.1.3).
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
    own (c, n) order avoids adding transposed blocks, and every caller copies
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

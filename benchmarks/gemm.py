"""The true floor of a training step: the matrix products dlcli runs, timed alone.

:func:`recording` wraps ``np.matmul`` (every product in ``dlcli.nn`` is written as
``np.matmul``) and lists each call of one training step: its operands' shapes, strides and
dtype, its output's layout and its FLOPs. :func:`step_floor` then times each distinct
product alone on fresh operands of the same shapes and the same memory layout (a
transposed view stays transposed, so BLAS packs what it packs in the step), and sums them:
the step's time if the engine did nothing but its own products at the rate this machine
delivers right now. An epoch's fraction of that floor (floor / epoch) says how much of the
step is not matrix products. :func:`peak_gflops` is the other bound: a large square sgemm
on the same threads, what the hardware delivers at best.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import NamedTuple

import numpy as np


class Product(NamedTuple):
    """One ``np.matmul`` call: where it ran (``layer: function``), the operands' shapes and
    byte strides, dtype, the output's strides (None: matmul allocated it) and FLOPs
    (2 x output size x inner dimension)."""

    where: str
    shapes: tuple
    strides: tuple
    dtype: str
    out_strides: tuple | None
    out_shape: tuple
    flops: int

    def key(self) -> tuple:
        return self.shapes, self.strides, self.dtype, self.out_strides

    def operands(self, rng=None):
        """Fresh ``(a, b, out)`` in the recorded layouts (``out`` None when none was given)."""
        rng = rng or np.random.default_rng(0)
        a = _strided(self.shapes[0], self.strides[0], self.dtype, rng)
        b = _strided(self.shapes[1], self.strides[1], self.dtype, rng)
        out = (None if self.out_strides is None
               else _strided(self.out_shape, self.out_strides, self.dtype, rng))
        return a, b, out


def _strided(shape, strides, dtype, rng) -> np.ndarray:
    """An array of ``shape`` laid out with byte ``strides`` (C order if any is negative or
    not a multiple of the item size), filled with standard normal values."""
    dtype = np.dtype(dtype)
    size = dtype.itemsize
    if any(s < 0 or s % size for s in strides) or 0 in shape:
        return rng.standard_normal(shape).astype(dtype)
    extent = sum((n - 1) * s for n, s in zip(shape, strides)) // size + 1
    buffer = rng.standard_normal(extent).astype(dtype)
    return np.lib.stride_tricks.as_strided(buffer, shape, strides)


def _where(frame) -> str:
    """``layer name: method`` of the nearest caller that is a public method of a named
    object (a layer, a loss: ``fc3: backward``), else the caller's ``module.function``."""
    first = f"{frame.f_globals.get('__name__', '?').rsplit('.', 1)[-1]}.{frame.f_code.co_name}"
    while frame is not None:
        owner = frame.f_locals.get("self")
        if getattr(owner, "name", None) and not frame.f_code.co_name.startswith("_"):
            return f"{owner.name}: {frame.f_code.co_name}"
        frame = frame.f_back
    return first


@contextlib.contextmanager
def recording():
    """Within the block, every ``np.matmul`` call is appended to the yielded list as a
    :class:`Product` (and computed as usual)."""
    calls: list[Product] = []
    real = np.matmul

    def matmul(a, b, /, out=None, **kwargs):
        result = real(a, b, out=out, **kwargs)
        x, y = np.asarray(a), np.asarray(b)
        calls.append(Product(
            _where(sys._getframe(1)), (x.shape, y.shape), (x.strides, y.strides),
            np.result_type(x, y).name, None if out is None else out.strides,
            np.shape(result), 2 * int(np.size(result)) * int(x.shape[-1])))
        return result

    np.matmul = matmul
    try:
        yield calls
    finally:
        np.matmul = real


def time_product(product: Product, min_time: float = 0.03) -> float:
    """Best (minimum) seconds of ``product`` alone, on operands of its layout."""
    a, b, out = product.operands()
    for _ in range(2):
        np.matmul(a, b, out=out)
    samples: list[float] = []
    spent = 0.0
    while (spent < min_time or len(samples) < 5) and len(samples) < 200:
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        dt = time.perf_counter() - start
        samples.append(dt)
        spent += dt
    return float(min(samples))


def step_floor(products: list[Product]) -> dict:
    """``{"seconds", "gflop", "products"}`` of one step: every distinct product timed alone
    once, counted as often as the step ran it."""
    groups: dict[tuple, list] = {}
    for p in products:
        groups.setdefault(p.key(), [p, 0])[1] += 1
    rows = []
    for p, count in groups.values():
        seconds = time_product(p)
        rows.append({"where": p.where, "shapes": [list(s) for s in p.shapes],
                     "transposed": [_transposed(s, st) for s, st in zip(p.shapes, p.strides)],
                     "count": count, "seconds": seconds, "gflops": p.flops / seconds / 1e9})
    total = sum(r["seconds"] * r["count"] for r in rows)
    gflop = sum(p.flops for p in products) / 1e9
    return {"seconds": total, "gflop": gflop, "products": rows}


def _transposed(shape, strides) -> bool:
    """Whether a 2-D operand is a transposed view (column-major)."""
    return len(shape) == 2 and shape[0] > 1 and shape[1] > 1 and strides[0] < strides[1]


def peak_gflops(n: int = 2048, min_time: float = 0.5, dtype=np.float32) -> dict:
    """The best rate of an n x n x n product (sgemm by default) over at least ``min_time``
    seconds and 3 calls, on the threads the BLAS has now."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32).astype(dtype)
    b = rng.standard_normal((n, n), dtype=np.float32).astype(dtype)
    out = np.empty((n, n), dtype)
    np.matmul(a, b, out=out)
    best, spent, calls = float("inf"), 0.0, 0
    while spent < min_time or calls < 3:
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        dt = time.perf_counter() - start
        best, spent, calls = min(best, dt), spent + dt, calls + 1
    return {"n": n, "seconds": best, "gflops": 2.0 * n ** 3 / best / 1e9}

"""The GEMM floor: how long one training step's matrix products alone take.

Every forward and backward product of a step is listed with its exact (M, K) x (K, N)
shape (the layouts of ``dlcli.nn.layers.dense``; for convolutions the plain im2col products,
the least work a GEMM-based convolution does: the stride-1 path of
``dlcli.nn.functional.conv`` multiplies larger matrices on purpose, so this floor is stricter
than its own products), timed
with ``np.matmul`` into a preallocated output on contiguous float32 operands, and summed.
Times the steps of an epoch, that is the epoch time of an engine whose only cost is BLAS
at the rate this machine delivers on these shapes right now; the epoch's fraction of it
(floor / epoch) says how close the engine comes.
"""

from __future__ import annotations

import time

import numpy as np


def gemm_shapes(model, batch: int) -> list[tuple[str, int, int, int]]:
    """``(what, M, K, N)`` of every matrix product of one training step of ``model``."""
    products = []
    for layer, in_shape, out_shape in model.shapes():
        kind, name = layer.type_name, layer.name
        dx = layer.need_input_grad
        if kind == "dense":
            i, o = int(np.prod(in_shape)), layer.units
            products += [(f"{name} forward", batch, i, o), (f"{name} dW", o, batch, i)]
            if dx:
                products.append((f"{name} dx", batch, o, i))
        elif kind == "conv2d":
            c = in_shape[0]
            kh, kw = layer.kernel
            p = batch * out_shape[1] * out_shape[2]
            kc = c * kh * kw
            f = layer.filters
            products += [(f"{name} forward", f, kc, p), (f"{name} dW", f, p, kc)]
            if dx:
                products.append((f"{name} dx", kc, f, p))
        elif kind == "conv_transpose2d":
            cin, h, w = in_shape
            kh, kw = layer.kernel
            p = batch * h * w
            kc = layer.filters * kh * kw
            products += [(f"{name} forward", kc, cin, p), (f"{name} dW", cin, p, kc)]
            if dx:
                products.append((f"{name} dx", cin, kc, p))
    return products


def time_product(m: int, k: int, n: int, min_time: float = 0.05, dtype=np.float32) -> float:
    """Best (minimum) seconds of ``np.matmul`` of an (m, k) by a (k, n) array into ``out``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=dtype)
    b = rng.standard_normal((k, n), dtype=dtype)
    out = np.empty((m, n), dtype)
    for _ in range(3):
        np.matmul(a, b, out=out)
    samples = []
    spent = 0.0
    while spent < min_time or len(samples) < 5:
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        dt = time.perf_counter() - start
        samples.append(dt)
        spent += dt
        if len(samples) >= 200:
            break
    return float(min(samples))


def step_floor(model, batch: int) -> dict:
    """``{"seconds": per step, "gflop": per step, "products": [...]}``."""
    rows = []
    for what, m, k, n in gemm_shapes(model, batch):
        seconds = time_product(m, k, n)
        rows.append({"product": what, "shape": [m, k, n], "seconds": seconds,
                     "gflops": 2.0 * m * k * n / seconds / 1e9})
    total = sum(r["seconds"] for r in rows)
    gflop = sum(2.0 * r["shape"][0] * r["shape"][1] * r["shape"][2] for r in rows) / 1e9
    return {"seconds": total, "gflop": gflop, "products": rows}

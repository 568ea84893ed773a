"""``python -m benchmarks.orientation``: each product of a training step in both orientations.

A product ``C = A @ B`` can also be computed as ``Cᵀ = Bᵀ @ Aᵀ`` (the caller then reads the
transposed view); OpenBLAS splits the work between its threads differently in the two, so
on some shapes one is clearly faster. For the exact shapes of the benchmark MLP and LeNet
(the stride-1 convolution layouts of :mod:`dlcli.nn.functional.conv`), this times both in
interleaved pairs (10 calls per sample, 41 pairs, alternately first) and prints the
medians and the median and quartiles of the pair ratios (transposed / as written). Then the convolutions' weight
gradient as one product against R products that skip the zero taps. Asserts nothing.
"""

from __future__ import annotations

import time

import numpy as np

# (name, A shape, B shape, B is a transposed view): what dlcli multiplies per step
SHAPES = [
    ("conv1 weight grad", (32, 14336), (14336, 121), True),   # ext @ colsᵀ (R = 4)
    ("conv2 weight grad", (32, 4480), (4480, 241), True),     # (R = 2)
    ("conv1 forward", (32, 121), (121, 14336), False),        # W_ext @ cols
    ("conv2 forward", (32, 241), (241, 4480), False),
    ("conv2 input grad", (40, 80), (80, 8960), False),        # W'' @ shifted dy
    ("mlp dense1 forward", (128, 784), (784, 256), True),     # x @ Wᵀ
    ("mlp dense1 dW", (256, 128), (128, 784), False),         # dyᵀ @ x
    ("mlp dense2 dx", (128, 128), (128, 256), False),         # dy @ W
]


def _sample(fn, calls=10) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'product':20s} {'shape':>26s}  as written ms  transposed ms  ratio (q25-q75)")
    for name, a_shape, b_shape, b_transposed in SHAPES:
        a = rng.standard_normal(a_shape, dtype=np.float32)
        b = (rng.standard_normal(b_shape[::-1], dtype=np.float32).T if b_transposed
             else rng.standard_normal(b_shape, dtype=np.float32))
        out = np.empty((a_shape[0], b_shape[1]), np.float32)
        out_t = np.empty((b_shape[1], a_shape[0]), np.float32)

        def written():
            np.matmul(a, b, out=out)

        def transposed():
            np.matmul(b.T, a.T, out=out_t)

        written(), transposed()
        first, second = [], []
        for i in range(41):  # which goes first alternates, so neither gains from the order
            if i % 2:
                second.append(_sample(transposed))
                first.append(_sample(written))
            else:
                first.append(_sample(written))
                second.append(_sample(transposed))
        ratio = np.array(second) / np.array(first)
        q25, q50, q75 = np.quantile(ratio, [0.25, 0.5, 0.75])
        shape = f"{a_shape[0]}x{a_shape[1]} @ {b_shape[0]}x{b_shape[1]}"
        print(f"{name:20s} {shape:>26s}  {np.median(first):12.3f}  {np.median(second):13.3f}"
              f"  {q50:.2f} ({q25:.2f}-{q75:.2f})")


def zero_taps() -> None:
    """The stride-1 weight gradient as one product over the R-row column matrix (what dlcli
    does: rows (s, f) x (c, a, r, v), of which only taps a*R + r - s in [0, kh) are kept)
    against R products of the useful rows only, for LeNet's two convolutions. This needs
    the column rows ordered (a, r, c, v), so that each s's useful rows are one block."""
    rng = np.random.default_rng(1)
    # (name, R, F, C, kh*kw-rows per s block, row offset per s, columns)
    for name, r, f, c, cols_n in (("conv1", 4, 8, 3, 14336), ("conv2", 2, 16, 8, 4480)):
        a = -(-(5 + r - 1) // r)
        k = c * a * r * 5
        cols = rng.standard_normal((k + 1, cols_n), dtype=np.float32)
        ext = rng.standard_normal((r * f, cols_n), dtype=np.float32)
        useful, step = c * 25, c * 5

        def one():
            return cols @ ext.T

        def split():
            return [cols[s * step:s * step + useful] @ ext[s * f:(s + 1) * f].T
                    for s in range(r)]

        one(), split()
        whole, parts = [], []
        for i in range(41):
            for fn, into in ((one, whole), (split, parts))[::1 if i % 2 else -1]:
                into.append(_sample(fn))
        macs_whole, macs_split = r * f * (k + 1) * cols_n, r * f * useful * cols_n
        print(f"{name} weight grad: one product {np.median(whole):.3f} ms "
              f"({macs_whole / 1e6:.1f}M multiply-adds), {r} without the zero taps "
              f"{np.median(parts):.3f} ms ({macs_split / 1e6:.1f}M)")


if __name__ == "__main__":
    main()
    zero_taps()

"""``python -m benchmarks.elementwise``: ways of running an optimizer update in NumPy.

The SGD-momentum and Adam updates of dlcli (:func:`dlcli.nn.optim.sgd_update`,
:func:`~dlcli.nn.optim.adam_update`) on one packed buffer the size of the benchmark
MLP's parameters (235,146 float32), run three ways: whole (what the trainer does), in
cache-sized chunks (one call per chunk), and split over two Python threads (NumPy releases
the GIL inside each ufunc). SGD's whole-buffer update runs twice: through BLAS axpby/axpy
(:mod:`dlcli.nn.blas`, what dlcli does where NumPy bundles OpenBLAS) and through NumPy's
passes (its fallback); then both routes on buffers of 16 to 235,146 values, where BLAS
starts to pay. Prints the minimum and median microseconds of 300 calls each (the sizes:
2,000 calls, minimum); asserts nothing. The answer on the 2-core machine of
benchmarks/RESULTS.md: whole is fastest, through BLAS from ~32k values.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dlcli.nn import blas
from dlcli.nn.optim import adam_update, sgd_update

SIZE = 235_146


def _timed(fn, calls=300):
    for _ in range(20):
        fn()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[0] * 1e6, samples[len(samples) // 2] * 1e6


def main() -> None:
    rng = np.random.default_rng(0)
    param = rng.standard_normal(SIZE, dtype=np.float32)
    grad = rng.standard_normal(SIZE, dtype=np.float32)
    updates = {
        "sgd momentum": lambda p, g, state, scratch: sgd_update(
            p, g, state, lr=0.01, momentum=0.9, scratch=scratch),
        "adam": lambda p, g, state, scratch: adam_update(p, g, state, lr=1e-3, scratch=scratch),
    }
    pool = ThreadPoolExecutor(1)
    for label, update in updates.items():
        state, scratch = {}, {}
        update(param, grad, state, scratch)  # the state exists from here on

        def whole():
            update(param, grad, state, scratch)

        def chunked(size):
            pieces = [(slice(s, s + size), {}, {}) for s in range(0, SIZE, size)]
            for where, st, sc in pieces:
                update(param[where], grad[where], st, sc)

            def run():
                for where, st, sc in pieces:
                    update(param[where], grad[where], st, sc)
            return run

        half = SIZE // 2
        halves = [(slice(0, half), {}, {}), (slice(half, SIZE), {}, {})]
        for where, st, sc in halves:
            update(param[where], grad[where], st, sc)

        def two_threads():
            (a, sa, ca), (b, sb, cb) = halves
            future = pool.submit(update, param[b], grad[b], sb, cb)
            update(param[a], grad[a], sa, ca)
            future.result()

        rows = [("whole buffer", whole)]
        if label.startswith("sgd"):
            def numpy_route():
                saved, blas._FUNCS = blas._FUNCS, {}
                try:
                    update(param, grad, state, scratch)
                finally:
                    blas._FUNCS = saved
            rows = [("whole, BLAS" if blas.available else "whole (no BLAS)", whole),
                    ("whole, NumPy", numpy_route)]
        rows += [(f"chunks of {size}", chunked(size)) for size in (16_384, 32_768, 65_536)]
        rows.append(("two threads", two_threads))
        for name, fn in rows:
            low, mid = _timed(fn)
            print(f"{label:13s} {name:16s} min {low:7.1f} us  median {mid:7.1f} us")


def blas_threshold() -> None:
    """SGD momentum's update through BLAS and through NumPy on buffers of several sizes:
    where the ctypes call starts to pay (``dlcli.nn.blas.MIN_SIZE``)."""
    if not blas.available:
        print("no OpenBLAS bundled with NumPy here: SGD always takes NumPy's passes")
        return
    rng = np.random.default_rng(1)
    for size in (16, 1024, 8192, 32_768, 65_536, SIZE):
        param = rng.standard_normal(size, dtype=np.float32)
        grad = rng.standard_normal(size, dtype=np.float32)
        times = {}
        for route, (min_size, funcs) in {"BLAS": (0, blas._FUNCS), "NumPy": (0, {})}.items():
            saved = blas.MIN_SIZE, blas._FUNCS
            blas.MIN_SIZE, blas._FUNCS = min_size, funcs
            try:
                state, scratch = {}, {}
                sgd_update(param, grad, state, lr=0.01, momentum=0.9, scratch=scratch)
                times[route] = _timed(lambda: sgd_update(param, grad, state, lr=0.01,
                                                         momentum=0.9, scratch=scratch), 2000)
            finally:
                blas.MIN_SIZE, blas._FUNCS = saved
        print(f"sgd momentum  {size:7d} values  BLAS min {times['BLAS'][0]:7.1f} us   "
              f"NumPy min {times['NumPy'][0]:7.1f} us")


if __name__ == "__main__":
    main()
    blas_threshold()

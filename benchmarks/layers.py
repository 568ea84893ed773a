"""``python -m benchmarks.layers``: LeNet's convolutions and poolings, dlcli against PyTorch.

Each of LeNet's conv2d (stride-1 path) and 2x2 max-pooling layers on a batch of 64, forward
and backward, timed alone: dlcli's functional code (:mod:`dlcli.nn.functional`) with its
reused workspace, and ``torch.nn.functional`` (when torch imports) with the same thread
count, each library in phases of its own that alternate (see :func:`_phases`). dlcli's
layers run unfused here: the convolution's forward includes the copy into (N, F, H, W) and
the pooling reads that copy, which training skips (``ConvThenPool``). The convolution's
backward is timed as dlcli runs it: no input gradient for conv1 (the first layer). PyTorch's
backward figures are forward + backward less a forward under ``no_grad``; a forward that
records for autograd costs a little more, so they slightly overstate its backward. Prints
medians in ms; asserts nothing. ``--threads N`` pins both (threadpoolctl,
``torch.set_num_threads``).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

from benchmarks import settle
from dlcli.nn.functional import conv as F
from dlcli.nn.functional import pooling as P

# (name, input channels, filters, input size, whether the input gradient is needed)
CONVS = [("conv1", 3, 8, 32, False), ("conv2", 8, 16, 14, True)]
BATCH, KERNEL = 64, 5


def _median_ms(timings) -> float:
    return float(np.median(timings)) * 1e3


def _phases(groups: list[dict], rounds: int = 6, samples: int = 7) -> dict:
    """Median ms of each callable. Each library's calls run in phases of their own (its
    idle worker threads spin for a while after a call and would steal the cores from the
    other library's), after a pause that lets the other library's threads sleep; the
    phases alternate in order over ``rounds``, and inside a phase the callables are
    sampled in turn."""
    times = {name: [] for group in groups for name in group}
    for r in range(rounds):
        for group in (groups if r % 2 == 0 else groups[::-1]):
            settle()
            for fn in group.values():  # warm-up: buffers, thread wake-up
                fn()
            for _ in range(samples):
                for name, fn in group.items():
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
    return {name: _median_ms(t) for name, t in times.items()}


def _torch_side(torch, x, w, b, y, dy, need_input_grad, pooled_dy):
    tf = torch.nn.functional
    xt = torch.from_numpy(x).requires_grad_(need_input_grad)
    wt = torch.from_numpy(w).requires_grad_(True)
    bt = torch.from_numpy(b).requires_grad_(True)
    dyt = torch.from_numpy(dy)
    yt = torch.from_numpy(y).requires_grad_(True)
    pdy = torch.from_numpy(pooled_dy)

    def conv_forward():
        with torch.no_grad():
            tf.conv2d(xt, wt, bt)

    def conv_both():
        wt.grad = bt.grad = xt.grad = None
        tf.conv2d(xt, wt, bt).backward(dyt)

    def pool_forward():
        with torch.no_grad():
            tf.max_pool2d(yt, 2)

    def pool_both():
        yt.grad = None
        tf.max_pool2d(yt, 2).backward(pdy)

    return {"torch conv forward": conv_forward, "torch conv fwd+bwd": conv_both,
            "torch pool forward": pool_forward, "torch pool fwd+bwd": pool_both}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    limit = contextlib.nullcontext()
    if args.threads:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    elif torch is not None:
        from threadpoolctl import threadpool_info
        threads = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
        if threads:
            torch.set_num_threads(threads[0])
    rng = np.random.default_rng(0)
    with limit:
        print(f"{'layer':8s} {'pass':9s} {'dlcli ms':>9s} {'torch ms':>9s}")
        for name, c, f, size, need in CONVS:
            x = rng.standard_normal((BATCH, c, size, size)).astype(np.float32)
            w = (rng.standard_normal((f, c, KERNEL, KERNEL)) * 0.1).astype(np.float32)
            b = np.zeros(f, np.float32)
            conv_ws, pool_ws = {}, {}
            y, cache = F.conv2d_forward(x, w, b, workspace=conv_ws)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            pooled, argmax = P.maxpool2d_forward(y, 2, workspace=pool_ws)
            pooled_dy = rng.standard_normal(pooled.shape).astype(np.float32)
            fns = {
                "conv forward": lambda: F.conv2d_forward(x, w, b, workspace=conv_ws),
                "conv backward": lambda: F.conv2d_backward(dy, cache, need_input_grad=need,
                                                           workspace=conv_ws),
                "pool forward": lambda: P.maxpool2d_forward(y, 2, workspace=pool_ws),
                "pool backward": lambda: P.maxpool2d_backward(pooled_dy, argmax, y.shape[2:],
                                                              2, workspace=pool_ws),
            }
            groups = [fns]
            if torch is not None:
                groups.append(_torch_side(torch, x, w, b, y, dy, need, pooled_dy))
            ms = _phases(groups)
            for kind in ("conv", "pool"):
                fwd, bwd = ms[f"{kind} forward"], ms[f"{kind} backward"]
                t_fwd = ms.get(f"torch {kind} forward", float("nan"))
                t_bwd = ms.get(f"torch {kind} fwd+bwd", float("nan")) - t_fwd
                print(f"{name:8s} {kind + ' fwd':9s} {fwd:9.3f} {t_fwd:9.3f}")
                print(f"{name:8s} {kind + ' bwd':9s} {bwd:9.3f} {t_bwd:9.3f}")


if __name__ == "__main__":
    main()

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

``--parts`` times the pieces of dlcli's stride-1 convolution instead (see :func:`_parts`):
where a convolution's milliseconds go, against the plain im2col products of the same
convolution, which do only its multiply-adds.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

from benchmarks import settle
from dlcli.nn.functional import conv as F
from dlcli.nn.functional import conv_stride1 as S1
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


def _parts(x, w, b, dy, need_input_grad) -> list[dict]:
    """Two groups of callables for :func:`_phases`: the pieces of one training step of
    :func:`dlcli.nn.functional.conv.conv2d_forward` / ``conv2d_backward`` on the stride-1
    path, each run alone on the buffers a real call left in the workspace, one after another
    (so each starts with the caches the pieces before it left, roughly as in a step); and,
    in phases of their own so that their arrays do not disturb the first group, the plain
    im2col products of the same convolution on contiguous random operands ((F, C*kh*kw) x
    (C*kh*kw, N*out_h*out_w) forward, and the weight gradient's product of the same size).
    The plain layout's column copy is not timed."""
    ws = {}
    _, cache = F.conv2d_forward(x, w, b, workspace=ws)
    F.conv2d_backward(dy, cache, need_input_grad=need_input_grad, workspace=ws)
    g = cache["s1"]
    flat, cols, w_ext, ext = ws["xr"], ws["cols"], ws["w_ext"], ws["y_ext"]
    y = np.empty(dy.shape, dy.dtype)
    col_view = cols[:g.k].reshape(g.c, g.a, g.r, g.kw, g.n, g.length)
    pieces = {
        f"forward: input into the row-blocked buffer (R = {g.r})": lambda: g.fill_input(x, flat),
        f"forward: column copy ({cols.shape[0]} x {cols.shape[1]})":
            lambda: np.copyto(col_view, g.columns(flat)),
        f"forward: product ({w_ext.shape[0]} x {w_ext.shape[1]}) @ cols":
            lambda: np.matmul(w_ext, cols, out=ext),
        "forward: copy into (N, F, H, W) (skipped when a pooling is fused)":
            lambda: g.copy_out(ext, y),
        "backward: weight-gradient product (without the fold of the zero taps)":
            lambda: cols @ ext.T,
    }
    if need_input_grad:
        dy_flat = ws["dy_wide"] if g.r != 1 else ws["dy_ext"]
        pieces["backward: input gradient (shifted copy, product, adds, crop)"] = \
            lambda: S1._s1_input_grad(dy_flat, cache["w_eff"], g, ws)
    plain_k, plain_cols = g.c * g.kh * g.kw, g.n * g.oh * g.ow
    rng = np.random.default_rng(1)
    w2 = rng.standard_normal((g.f, plain_k)).astype(x.dtype)
    c2 = rng.standard_normal((plain_k, plain_cols)).astype(x.dtype)
    out2 = np.empty((g.f, plain_cols), x.dtype)
    dy2 = rng.standard_normal((g.f, plain_cols)).astype(x.dtype)
    plain = {
        f"plain im2col forward product ({g.f} x {plain_k}) @ ({plain_k} x {plain_cols})":
            lambda: np.matmul(w2, c2, out=out2),
        "plain im2col weight-gradient product": lambda: dy2 @ c2.T,
    }
    return [pieces, plain]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--parts", action="store_true",
                        help="time the pieces of dlcli's stride-1 convolutions instead")
    args = parser.parse_args()
    if args.parts:
        torch = None
    else:
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
        if args.parts:
            print("dlcli's stride-1 convolutions on LeNet's shapes, batch 64, median ms")
        else:
            print(f"{'layer':8s} {'pass':9s} {'dlcli ms':>9s} {'torch ms':>9s}")
        for name, c, f, size, need in CONVS:
            x = rng.standard_normal((BATCH, c, size, size)).astype(np.float32)
            w = (rng.standard_normal((f, c, KERNEL, KERNEL)) * 0.1).astype(np.float32)
            b = np.zeros(f, np.float32)
            if args.parts:
                out = size - KERNEL + 1
                dy = rng.standard_normal((BATCH, f, out, out)).astype(np.float32)
                for part, ms in _phases(_parts(x, w, b, dy, need)).items():
                    print(f"{name}  {part:75s} {ms:7.3f} ms")
                continue
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

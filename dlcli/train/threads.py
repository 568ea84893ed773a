"""The BLAS thread count of a training run: ``--threads auto`` (the default) measures.

A small model's matrix products are too short to share among threads: on a machine where
another process keeps a core busy, OpenBLAS's default of one thread per core made
``configs/mlp_digits.yaml``'s step 10-15 times slower than one thread (the threads spin and
wait for the busy core). Large products gain from more threads on an idle machine. Neither
rule holds everywhere, so before training dlcli times a few steps of the model itself, on
a copy (its own weights, optimizer and random generator: the run is untouched), with each
candidate count, and keeps the fastest; a count within 5% of a smaller one counts as no
faster (fewer threads leave the machine freer). ``--threads N`` forces N.

The thread count changes the last bits of the matrix products: the count chosen is printed
and recorded in ``summary.json`` (``threads``), and ``--threads N`` repeats a run exactly.
"""

from __future__ import annotations

import os
import time

import numpy as np

MIN_STEPS = 3
BUDGET_S = 0.25  # per candidate, after the warm-up step
TIE = 0.05


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def candidates(default: int) -> list[int]:
    """1, 2, 4, ... up to the library's default count, and that count."""
    out, n = [1], 2
    while n < default:
        out.append(n)
        n *= 2
    if default > 1:
        out.append(default)
    return out


def _step_function(config, x, y, task: str, seed: int):
    """A training step of a copy of ``config``'s model on the first batch of ``(x, y)``."""
    from dlcli.train.build import initialize, make_loss
    from dlcli.config.resolve import build_model
    from dlcli.train.trainer import Trainer

    model = build_model(config, tuple(x.shape[1:]))
    loss = make_loss(config, model)
    optimizer, rng = initialize(config, model, seed)
    size = config["training"]["batch_size"]
    batch = min(len(x), 1024 if size == "full" else int(size))
    xb, yb = np.ascontiguousarray(x[:batch]), np.ascontiguousarray(y[:batch])
    trainer = Trainer(model, loss, optimizer, task=task, batch_size=batch, epochs=1, rng=rng)
    params = model.parameters()
    flat = model.flat_buffers()
    grads = [g for _, _, g in params]

    def step():
        trainer.train_step(xb, yb, params, grads, flat, 0, 0)
    return step


def measure(step, threads: int, warm_up: bool = True, give_up: float | None = None) -> float:
    """Median seconds of ``step`` with ``threads`` BLAS threads (after a warm-up step when
    ``warm_up``), stopping early once a step is slower than ``give_up`` seconds: such a
    count cannot win, and under load a step can take a hundred times longer."""
    from dlcli.nn import blas
    blas.set_threads(threads)
    if warm_up:
        step()
    times, started = [], time.perf_counter()
    while len(times) < MIN_STEPS or time.perf_counter() - started < BUDGET_S:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
        if len(times) >= 50 or (give_up is not None and min(times) > give_up):
            break
    return float(np.median(times))


def previous_count(run_dir) -> int | None:
    """The thread count a run recorded (its summary.json), to resume it with the same."""
    import json
    import pathlib
    try:
        info = json.loads((pathlib.Path(run_dir) / "summary.json").read_text())["threads"]
        return int(info["threads"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def choose(config, x, y, task: str, seed: int, requested, resumed: int | None = None) -> dict:
    """Set the run's BLAS threads; returns what ``summary.json`` records under ``threads``:
    ``{"mode": "auto"|"forced"|"resumed"|"library", "threads": n, "step_ms": {n: ms}}``.
    ``resumed``: the count of the run being resumed, kept under auto so that the resumed
    run computes exactly as the interrupted one did."""
    from dlcli.nn import blas

    current = blas.get_threads()
    if requested == "library":  # not chosen here (e.g. data-parallel ranks)
        return {"mode": "library", "threads": current, "step_ms": {}}
    if requested not in (None, "auto"):
        return {"mode": "forced", "threads": int(requested), "step_ms": {}}
    if resumed is not None and current is not None and blas.set_threads(resumed):
        return {"mode": "resumed", "threads": resumed, "step_ms": {}}
    if current is None:  # the library cannot be asked or told: leave it alone
        return {"mode": "library", "threads": None, "step_ms": {}}
    options = candidates(min(current, cores()))
    if len(options) == 1:
        blas.set_threads(options[0])
        return {"mode": "auto", "threads": options[0], "step_ms": {}}
    try:
        step = _step_function(config, x, y, task, seed)
        timings = {}
        with np.errstate(all="ignore"):
            for n in options:
                fastest = min(timings.values(), default=None)
                timings[n] = measure(step, n, warm_up=not timings,
                                     give_up=None if fastest is None else 2 * fastest)
    except Exception:  # noqa: BLE001 - a failed measurement must not stop training
        blas.set_threads(current)
        return {"mode": "library", "threads": current, "step_ms": {}}
    best = options[0]
    for n in options[1:]:
        if timings[n] < timings[best] * (1 - TIE):
            best = n
    blas.set_threads(best)
    return {"mode": "auto", "threads": best,
            "step_ms": {str(n): round(t * 1000, 3) for n, t in timings.items()}}


def describe(info: dict) -> str:
    """One line for the console: the count and why."""
    if info["mode"] == "forced":
        return f"BLAS threads: {info['threads']} (--threads)"
    if info["mode"] == "resumed":
        return f"BLAS threads: {info['threads']} (as the run being resumed)"
    if info["mode"] == "library" or info["threads"] is None:
        return "BLAS threads: the library's default (not measured)"
    measured = ", ".join(f"{n}: {ms:.3g} ms" for n, ms in info["step_ms"].items())
    return (f"BLAS threads: {info['threads']} (auto; one step with "
            f"{measured or 'a single core'})")

"""``python -m benchmarks.threads_load [--configs NAME ...] [--epochs N] [--no-load]``

The shipped configs trained under load - another process spinning on one core, as when a
second job shares a 2-core machine - with ``--threads auto`` (dlcli's default) against the
BLAS library's default of one thread per core (``--threads <cores>``). Each run is a fresh
``python -m dlcli train CONFIG --set training.epochs=N -q`` into a temporary directory;
the figure is its ``wall_time_s`` from summary.json divided by the epochs (the start-up
measurement of auto included), and the count auto chose. Prints one line per config and
run; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = {"xor_mlp": 50, "mlp_digits": 3, "cnn_digits": 2, "conv_autoencoder": 2,
           "autoencoder_digits": 3, "softmax_regression": 50, "lenet": 1}


def _spin(core):  # pragma: no cover - the load, in its own process
    try:
        os.sched_setaffinity(0, {core})
    except (AttributeError, OSError):
        pass
    while True:
        pass


def train(config: str, epochs: int, threads: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = pathlib.Path(tmp) / "run"
        args = [sys.executable, "-m", "dlcli", "--threads", threads, "train",
                str(REPO / "configs" / f"{config}.yaml"), "--set",
                f"training.epochs={epochs}", "--run-dir", str(run), "-q"]
        started = time.perf_counter()
        subprocess.run(args, cwd=REPO, check=True, capture_output=True)
        total = time.perf_counter() - started
        summary = json.loads((run / "summary.json").read_text())
    return {"epoch_s": summary["wall_time_s"] / max(summary["epochs_done"], 1),
            "process_s": total, "threads": summary.get("threads")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, help="epochs per run (default: per config)")
    parser.add_argument("--no-load", action="store_true", help="no spinning process")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = None
    if not args.no_load:
        load = multiprocessing.Process(target=_spin, args=(cores - 1,), daemon=True)
        load.start()
    try:
        print(f"{cores} cores, {'one busy' if load else 'idle'}; seconds per epoch "
              f"(whole process in parentheses)", flush=True)
        for name in args.configs:
            epochs = args.epochs or CONFIGS[name]
            library = train(name, epochs, str(cores))
            auto = train(name, epochs, "auto")
            chosen = auto["threads"] or {}
            steps = ", ".join(f"{n} thr {ms:.3g} ms" for n, ms in
                              (chosen.get("step_ms") or {}).items())
            print(f"{name:>20} ({epochs} epochs): library default ({cores} threads) "
                  f"{library['epoch_s']:.3f} s ({library['process_s']:.1f} s); auto -> "
                  f"{chosen.get('threads')} threads {auto['epoch_s']:.3f} s "
                  f"({auto['process_s']:.1f} s); ratio "
                  f"{library['epoch_s'] / auto['epoch_s']:.1f}x  [{steps}]", flush=True)
    finally:
        if load is not None:
            load.terminate()
            load.join()


if __name__ == "__main__":
    main()

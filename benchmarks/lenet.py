"""One training epoch of the notes' LeNet (figure 3.5, ``configs/lenet.yaml``).

    python -m benchmarks.lenet [--samples 10000] [--batch-size 64] [--epochs 1] [--seed 0]

Trains on ``synthetic:images`` (3x32x32, 10 classes) with Adam through dlcli's own session
API (``prepare`` -> ``Model.build`` -> ``Trainer.fit``, the loop ``dlcli train`` runs, without
a run directory or callbacks), and prints seconds per epoch and samples per second, with the
BLAS library and its thread count. Data generation is timed apart from the epoch. A
benchmark prints figures; nothing asserts on time.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pathlib
import platform
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "lenet.yaml"


def blas_info() -> dict:
    """{"library", "threads"}: from threadpoolctl when installed, else numpy's build
    configuration and, for OpenBLAS, its ``*get_num_threads`` entry point via ctypes."""
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                return {"library": f"{pool.get('internal_api')} {pool.get('version')} "
                                   f"({pool.get('architecture')})",
                        "threads": pool.get("num_threads"), "source": "threadpoolctl"}
    except ImportError:
        pass
    library = None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        library = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - informational only
        pass
    return {"library": library, "threads": _openblas_threads(), "source": "numpy.show_config"}


def _openblas_threads() -> int | None:
    """Ask the OpenBLAS that numpy loaded for its thread count (None when not found)."""
    try:
        maps = pathlib.Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                       "openblas_get_num_threads"):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                return int(fn())
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lenet",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from dlcli.config import load_config
    from dlcli.registry import OPTIMIZERS
    from dlcli.train.session import prepare, targets
    from dlcli.train.trainer import Trainer

    overrides = [f"data.params.n_samples={args.samples}", "data.validation_split=0",
                 "data.test_split=0", f"training.batch_size={args.batch_size}",
                 f"training.epochs={args.epochs}", "training.optimizer.type=adam",
                 "training.optimizer.lr=0.001"]
    config = load_config(CONFIG, overrides)
    started = time.perf_counter()
    prep = prepare(config, args.seed)
    model, splits = prep.model, prep.splits
    model.build(np.random.default_rng([args.seed, 0]))
    rng = np.random.default_rng([args.seed, 1])
    model.set_rng(rng)
    x = splits.x_train.astype(model.dtype, copy=False)
    y = targets(splits, prep.task, model.dtype)[0]
    setup_s = time.perf_counter() - started
    opt = dict(config["training"]["optimizer"])
    optimizer = OPTIMIZERS.get(opt.pop("type"))(**opt)
    trainer = Trainer(model, prep.loss, optimizer, task=prep.task, batch_size=args.batch_size,
                      epochs=args.epochs, rng=rng, n_classes=len(splits.class_names))

    blas = blas_info()
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs, load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"BLAS {blas['library']}, {blas['threads'] if blas['threads'] is not None else '?'} "
          f"threads (via {blas['source']}); OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"LeNet ({CONFIG.relative_to(REPO)}, {model.param_count():,} parameters, "
          f"{model.dtype.__name__}): {len(x):,} samples of {x.shape[1:]} (N, C, H, W), "
          f"batch {args.batch_size}, Adam; data prepared in {setup_s:.2f} s")
    start = time.perf_counter()
    history = trainer.fit(x, y)
    total = time.perf_counter() - start
    for logs in history:
        print(f"epoch {logs['epoch']}: {logs['time']:.2f} s, "
              f"{len(x) / logs['time']:,.0f} samples/s, loss {logs['loss']:.4f}, "
              f"accuracy {logs.get('accuracy', float('nan')):.4f}")
    per_epoch = total / args.epochs
    print(f"seconds per epoch: {per_epoch:.2f}; samples per second: {len(x) / per_epoch:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m benchmarks.data_scale [--sizes 10000 100000 1000000] [--in-memory-up-to N]
[--dir DIR] [--keep]``: peak anonymous memory and epoch time of training against the
number of samples, streamed from a memory-mapped file and (up to ``--in-memory-up-to``
samples) read into memory as before.

The data: ``x.npy`` float32 (n, 784) and ``y.npy`` (10 classes) written a block at a time
into a folder (``--dir``, default a temporary one); the model: the benchmark MLP
(784-256-128-10, batch 128, SGD momentum, ``benchmarks/mlp.yaml``), one epoch, nothing held
out, 1 BLAS thread. Each run is a fresh ``dlcli train`` process whose RssAnon
(/proc/<pid>/status: the process's own pages, not the page cache's pages of the mapped
file) is sampled every 2 ms; its epoch time is the ``time`` of ``metrics.jsonl``. The
in-memory runs set ``dlcli.data.lazy.STREAM_BYTES`` above the file's size in the child.
The ratio streamed / in-memory is taken in the same run. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import yaml

from benchmarks.rss import communicate_with_peak

REPO = pathlib.Path(__file__).resolve().parents[1]
FEATURES, CLASSES = 784, 10
CHILD = ("import sys, dlcli.data.lazy as lazy; lazy.STREAM_BYTES = int(sys.argv[1]); "
         "from dlcli.cli import cli; cli(sys.argv[2:])")


def write_set(folder: pathlib.Path, n: int, block: int = 50_000) -> pathlib.Path:
    """x.npy (n, 784) float32 and y.npy (n,) int64 in ``folder``, a block at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "x.npy").is_file() and len(np.load(folder / "x.npy", mmap_mode="r")) == n:
        return folder
    x = np.lib.format.open_memmap(folder / "x.npy", "w+", np.float32, (n, FEATURES))
    y = np.lib.format.open_memmap(folder / "y.npy", "w+", np.int64, (n,))
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CLASSES, FEATURES)).astype(np.float32)
    for start in range(0, n, block):
        m = min(block, n - start)
        labels = rng.integers(0, CLASSES, m)
        x[start:start + m] = centres[labels] + rng.normal(size=(m, FEATURES)).astype(np.float32)
        y[start:start + m] = labels
    x.flush()
    y.flush()
    del x, y
    return folder


def train_once(folder: pathlib.Path, work: pathlib.Path, stream_bytes: int) -> dict:
    """One epoch in a fresh process: peak RssAnon, epoch time, wall time."""
    config = yaml.safe_load((REPO / "benchmarks" / "mlp.yaml").read_text())
    config["data"] = {"source": str(folder), "validation_split": 0.0, "test_split": 0.0,
                      "normalize": "standard"}
    cfg = work / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config))
    run_dir = work / f"run-{time.monotonic_ns()}"
    env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(stream_bytes), "train",
                             str(cfg), "--run-dir", str(run_dir), "-q"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, peak = communicate_with_peak(proc)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"dlcli train failed ({proc.returncode}):\n{output}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"peak_rss_anon_mb": peak / 2**20, "epoch_s": rows[-1]["time"], "wall_s": wall}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--in-memory-up-to", type=int, default=100_000,
                        help="also train in memory for sizes up to this (default 100000)")
    parser.add_argument("--dir", type=pathlib.Path, help="where the data sets are written "
                        "(default: a temporary folder, removed unless --keep)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args(argv)
    root = args.dir or pathlib.Path(tempfile.mkdtemp(prefix="dlcli-data-scale-"))
    rows = []
    try:
        print(f"{'samples':>10} {'file MB':>9} {'mode':>9} {'peak RssAnon MB':>16} "
              f"{'epoch s':>8} {'s/100k':>7} {'streamed/in-memory':>19}", flush=True)
        for n in args.sizes:
            folder = write_set(root / f"n{n}", n)
            size = (folder / "x.npy").stat().st_size
            modes = [("streamed", 0)] + ([("in-memory", 2**62)] if n <= args.in_memory_up_to
                                         else [])
            result = {}
            for mode, bar in modes:
                result[mode] = train_once(folder, root, bar)
                r = result[mode]
                ratio = ""
                if mode == "in-memory":
                    ratio = f"{result['streamed']['epoch_s'] / r['epoch_s']:.2f}x"
                print(f"{n:>10} {size / 2**20:>9.0f} {mode:>9} {r['peak_rss_anon_mb']:>16.0f} "
                      f"{r['epoch_s']:>8.2f} {r['epoch_s'] * 1e5 / n:>7.2f} {ratio:>19}",
                      flush=True)
                rows.append({"samples": n, "file_bytes": size, "mode": mode, **r})
    finally:
        if args.dir is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

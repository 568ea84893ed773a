"""``python -m benchmarks.io_share [--rev REV] [--config PATH] [--repeats R] [--set K=V ...]``

The share of a training run's time spent writing files (metrics and checkpoints), in the
working tree and at git revision ``REV`` (default: none, the working tree only). Each run
trains ``--config`` (default ``configs/xor_mlp.yaml``) in a fresh process into a temporary
directory and times every call of the callbacks that write (``MetricsLogger``,
``Checkpointer``; the hooks that write: train begin and end, epoch end, interrupt) against
the whole ``fit``; ``os.fsync`` calls are counted (in the whole run) and
timed (inside ``fit``: the part of the writing spent waiting for the disk). Prints one line per run and the medians; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]

# Run inside the tree being measured (its own dlcli), so an old revision needs no copy of
# this script: only dlcli.config.load_config, dlcli.train.session.train and Trainer._emit.
CHILD = r"""
import json, os, sys, tempfile, time
from dlcli.config import load_config
from dlcli.train import session, trainer as loop

config_path, overrides = sys.argv[1], sys.argv[2:]
spent = {"io": 0.0, "fit": 0.0, "fsync": 0, "fsync_s": 0.0}  # fsync_s: inside fit
inside = []
real_emit, real_fsync, real_fit = loop.Trainer._emit, os.fsync, loop.Trainer.fit

def emit(self, hook, *args):
    for callback in self.callbacks:
        started = time.perf_counter()
        getattr(callback, hook)(self, *args)
        if type(callback).__name__ in ("MetricsLogger", "Checkpointer") and hook in (
                "on_train_begin", "on_epoch_end", "on_train_end", "on_interrupt"):
            spent["io"] += time.perf_counter() - started

def fsync(fd):
    spent["fsync"] += 1
    started = time.perf_counter()
    try:
        return real_fsync(fd)
    finally:
        if inside:
            spent["fsync_s"] += time.perf_counter() - started

def fit(self, *args, **kw):
    started = time.perf_counter()
    inside.append(True)
    try:
        return real_fit(self, *args, **kw)
    finally:
        inside.pop()
        spent["fit"] += time.perf_counter() - started

loop.Trainer._emit, os.fsync, loop.Trainer.fit = emit, fsync, fit
config = load_config(config_path, overrides)
with tempfile.TemporaryDirectory() as tmp:
    summary = session.train(config, run_dir=os.path.join(tmp, "run"))
spent["epochs"] = summary["epochs_done"]
print(json.dumps(spent))
"""


def measure(root: pathlib.Path, config: pathlib.Path, overrides: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(config), *overrides], cwd=root,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def export(rev: str, into: pathlib.Path) -> pathlib.Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="also measure this git revision (e.g. main)")
    parser.add_argument("--config", default=str(REPO / "configs" / "xor_mlp.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    config = pathlib.Path(args.config).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        trees = [("working tree", REPO)]
        if args.rev:
            trees.insert(0, (args.rev, export(args.rev, pathlib.Path(tmp))))
        results = {name: [] for name, _ in trees}
        for repeat in range(args.repeats):
            for name, root in trees:  # alternate the trees, repeat by repeat
                r = measure(root, config, args.overrides)
                results[name].append(r)
                print(f"{name:>14}  run {repeat + 1}: fit {r['fit']:.2f}s, writing "
                      f"{r['io']:.2f}s ({r['io'] / r['fit']:.0%}), {r['fsync']} fsyncs "
                      f"({r.get('fsync_s', 0):.2f}s in fit) for {r['epochs']} epochs", flush=True)
    for name, runs in results.items():
        share = statistics.median(r["io"] / r["fit"] for r in runs)
        fit = statistics.median(r["fit"] for r in runs)
        fsyncs = statistics.median(r["fsync"] for r in runs)
        waiting = statistics.median(r.get("fsync_s", 0) / r["fit"] for r in runs)
        print(f"{name}: median fit {fit:.2f}s, writing {share:.0%} of it, {fsyncs:.0f} fsyncs "
              f"(those in fit waited {waiting:.0%} of it)")


if __name__ == "__main__":
    main()

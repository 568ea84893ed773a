"""``python -m benchmarks.ab REV [--only NAME ...] [--repeats R] [--threads T]``

Measures an engine change: the dlcli epochs of each workload at git revision ``REV`` (checked
out into a temporary worktree) and in the working tree, each in its own
:mod:`benchmarks.child` worker, asked for epochs in turn (old first on odd repeats, new
first on even ones, each after the pause of ``benchmarks.SETTLE_S``), so that each new/old
ratio compares two epochs run one after the other under the same machine conditions. Prints the epochs and the ratios; asserts nothing. ``REV``
must have ``benchmarks/child.py`` (any revision since the benchmarks exist).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile

from benchmarks import settle, workloads

REPO = pathlib.Path(__file__).resolve().parents[1]


class Worker:
    """One dlcli :mod:`benchmarks.child` process running the code found in ``root``."""

    def __init__(self, root, name, threads, limit):
        args = [sys.executable, "-m", "benchmarks.child", name, "dlcli", str(threads)]
        if limit:
            args.append("--limit-blas")
        self.proc = subprocess.Popen(args, cwd=root, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.ask(None)  # the "ready" line

    def ask(self, command):
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker for {command!r} exited with {self.proc.wait()}")
        return json.loads(line)

    def close(self):
        self.ask("quit")
        self.proc.wait()


def compare(old_root, name, repeats, threads, limit) -> dict:
    old, new = Worker(old_root, name, threads, limit), Worker(REPO, name, threads, limit)
    epochs = {"old": [], "new": []}
    try:
        for r in range(repeats):
            order = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
            for which, worker in order:
                settle()
                epochs[which].append(worker.ask("epoch")["epoch_s"])
    finally:
        old.close()
        new.close()
    ratios = [n / o for n, o in zip(epochs["new"], epochs["old"])]
    return {"name": name, **epochs, "ratio": ratios, "median_ratio": statistics.median(ratios)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split(
        "\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rev", help="the git revision to compare the working tree with")
    parser.add_argument("--only", nargs="+", choices=workloads.NAMES, default=list(workloads.NAMES))
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads (threadpoolctl); default: the BLAS's own")
    args = parser.parse_args(argv)
    threads = args.threads or 0
    with tempfile.TemporaryDirectory(prefix="dlcli-ab-") as tmp:
        root = pathlib.Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(root), args.rev], cwd=REPO,
                       check=True, capture_output=True)
        try:
            print(f"new = working tree, old = {args.rev}; dlcli epochs in seconds, "
                  f"{'BLAS default' if not threads else f'{threads} BLAS thread(s)'}")
            for name in args.only:
                if workloads.available(name) is not None:
                    continue
                row = compare(root, name, args.repeats, threads or 1, bool(threads))
                print(f"{name:17s} old {' '.join(f'{t:.3f}' for t in row['old'])}  "
                      f"new {' '.join(f'{t:.3f}' for t in row['new'])}  new/old "
                      f"{' '.join(f'{x:.2f}' for x in row['ratio'])} "
                      f"(median {row['median_ratio']:.2f})", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(root)], cwd=REPO,
                           check=False, capture_output=True)


if __name__ == "__main__":
    main()

"""dlcli in a child process with its peak anonymous memory (RssAnon; see benchmarks/rss.py)."""

import os
import pathlib
import subprocess
import sys

from benchmarks.rss import communicate_with_peak

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_measured(args, cwd, interval: float = 0.002) -> tuple[int, int, str]:
    """Run ``python -m dlcli <args>``; returns (exit code, peak RssAnon bytes, output)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "dlcli", *map(str, args)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    output, peak = communicate_with_peak(proc, interval)
    return proc.returncode, peak, output

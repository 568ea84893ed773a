"""Peak anonymous memory (RssAnon) of a child process, sampled from /proc/<pid>/status.

The pages of a memory-mapped file are the page cache's, not the process's: RssAnon counts
what the process itself allocated (VmHWM would count the mapped file too)."""

import os
import pathlib
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def rss_anon(pid: int) -> int | None:
    """The process's RssAnon in bytes (None once it has exited)."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def run_measured(args, cwd, interval: float = 0.002) -> tuple[int, int, str]:
    """Run ``python -m dlcli <args>``; returns (exit code, peak RssAnon bytes, output)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "dlcli", *map(str, args)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            value = rss_anon(proc.pid)
            if value is not None:
                peak[0] = max(peak[0], value)
            time.sleep(interval)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    output, _ = proc.communicate()
    watcher.join()
    return proc.returncode, peak[0], output

"""Peak anonymous memory (RssAnon) of a child process, sampled from /proc/<pid>/status.

The pages of a memory-mapped file are the page cache's, not the process's: RssAnon counts
what the process itself allocated (VmHWM would count the mapped file too). Used by
``benchmarks.data_scale`` and by the memory tests (``tests/helpers/memory.py``)."""

from __future__ import annotations

import pathlib
import subprocess
import threading
import time


def rss_anon(pid: int) -> int | None:
    """The process's RssAnon in bytes (None once it has exited)."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def communicate_with_peak(proc: subprocess.Popen, interval: float = 0.002) -> tuple[str, int]:
    """``proc.communicate()`` while sampling its RssAnon every ``interval`` seconds;
    returns (its output, the peak in bytes)."""
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
    return output, peak[0]

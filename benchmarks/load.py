"""What else ran on the machine while a benchmark timed something, and which samples to trust.

Each timed request (an epoch, a batch of forward passes) is bracketed by two reads of the
machine's CPU counters (``/proc/stat``, all CPUs) and of the load average. The worker reports
its own process CPU time for the request (``time.process_time``: every thread of it), so the
CPU the rest of the machine spent in that window is the busy time of all CPUs less the
worker's own. Its share of the machine's capacity (wall time x CPUs) is how much another
process competed for the cores; a VM's ``steal`` time (the hypervisor running someone else)
counts as busy. A pair of timings is *disturbed* when either side's share exceeds
:data:`DISTURBED_SHARE`; the medians the harness reports leave disturbed pairs out, and say
so when no pair was clean.

Everything here but :func:`read_cpu` and :func:`read_loadavg` is a pure function of its
arguments (tested on synthetic samples in ``tests/test_benchmark_load.py``).
"""

from __future__ import annotations

import os
import statistics
from typing import NamedTuple

# Other processes using more than this share of the machine's CPU capacity while a request
# ran make its timing untrustworthy (on 2 cores: a fifth of a core, on average).
DISTURBED_SHARE = 0.10


class CpuCounters(NamedTuple):
    """Seconds of CPU time since boot, summed over all CPUs: ``busy`` (user, nice, system,
    irq, softirq, steal) and ``total`` (busy plus idle and iowait), and the CPU count."""

    busy: float
    total: float
    cpus: int


def parse_proc_stat(text: str, hz: float = 100.0) -> CpuCounters:
    """:class:`CpuCounters` from the text of ``/proc/stat`` (its ``cpu`` and ``cpuN`` lines;
    ticks of ``1/hz`` seconds)."""
    busy = total = None
    cpus = 0
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "cpu":
            ticks = [float(v) for v in fields[1:9]] + [0.0] * max(0, 9 - len(fields))
            user, nice, system, idle, iowait, irq, softirq, steal = ticks[:8]
            busy = user + nice + system + irq + softirq + steal
            total = busy + idle + iowait
        elif fields[0].startswith("cpu") and fields[0][3:].isdigit():
            cpus += 1
    if busy is None:
        raise ValueError("no aggregate 'cpu' line in /proc/stat")
    return CpuCounters(busy / hz, total / hz, cpus or 1)


def read_cpu() -> CpuCounters | None:
    """The machine's counters now; None where ``/proc/stat`` is absent (not Linux)."""
    try:
        with open("/proc/stat") as f:
            text = f.read()
    except OSError:
        return None
    return parse_proc_stat(text, os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def read_loadavg() -> float | None:
    """The 1-minute load average (runnable processes), or None."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def others_share(before: CpuCounters | None, after: CpuCounters | None, wall_s: float,
                 own_cpu_s: float) -> float | None:
    """The share of the machine's CPU capacity (``wall_s`` x CPUs) that processes other than
    the timed one used between ``before`` and ``after``: all CPUs' busy time less
    ``own_cpu_s``, clipped to [0, 1]. None without counters or time."""
    if before is None or after is None or wall_s <= 0:
        return None
    busy = after.busy - before.busy
    capacity = wall_s * after.cpus
    return min(max((busy - own_cpu_s) / capacity, 0.0), 1.0)


def sample(before: CpuCounters | None, after: CpuCounters | None, wall_s: float,
           seconds: float, cpu_s: float, load: float | None) -> dict:
    """One timed request as the harness records it: its ``seconds`` (timed by the worker),
    the worker's ``cpu_s``, the 1-minute ``load`` average when it started, the ``others``
    share (:func:`others_share` over the parent's ``wall_s`` window) and ``disturbed``."""
    share = others_share(before, after, wall_s, cpu_s)
    return {"seconds": seconds, "cpu_s": cpu_s, "load": load, "others": share,
            "disturbed": disturbed(share)}


def disturbed(share: float | None, threshold: float = DISTURBED_SHARE) -> bool:
    """Whether other processes' ``share`` makes a timing untrustworthy (unknown: no)."""
    return share is not None and share > threshold


def pair_flags(a: list[dict], b: list[dict]) -> list[bool]:
    """Per repeat, whether the pair (``a[i]``, ``b[i]``) is disturbed: either side is."""
    return [x["disturbed"] or y["disturbed"] for x, y in zip(a, b)]


def clean_median(values: list[float], flags: list[bool]) -> dict:
    """The median of ``values`` over the repeats not flagged; when every one is flagged,
    the median of all of them, marked ``all_disturbed`` (a figure taken under load, to be
    read as such). ``used`` counts the values the median came from."""
    clean = [v for v, f in zip(values, flags) if not f]
    if clean:
        return {"median": statistics.median(clean), "used": len(clean),
                "of": len(values), "all_disturbed": False}
    if not values:
        return {"median": None, "used": 0, "of": 0, "all_disturbed": False}
    return {"median": statistics.median(values), "used": len(values), "of": len(values),
            "all_disturbed": True}

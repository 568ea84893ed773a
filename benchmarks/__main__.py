"""``python -m benchmarks [--quick] [--json OUT] [--repeats R] [--threads T] [--only NAME ...]``

Runs every workload of :mod:`benchmarks.workloads` in dlcli and (when torch imports) in
PyTorch CPU twice: as it comes (``pytorch``) and as a competent user runs it (``pytorch
tuned``: fused optimizer, ``channels_last`` for convolutions). Each runs in a fresh worker
process of its own (:mod:`benchmarks.child`); the workers are asked for epochs in turn, the
order rotating per repeat, each after a pause that lets the others' idle threads stop
spinning (``benchmarks.SETTLE_S``). Every epoch records its wall and CPU time, the load
average and the share of the machine's CPU other processes used meanwhile
(:mod:`benchmarks.load`); a pair of epochs in which either was disturbed is flagged and left
out of the medians. Per workload it also measures the true floor (the matrix products one
dlcli step runs, recorded from the engine's own calls and timed alone,
:mod:`benchmarks.gemm`) and the hardware's peak (a large square sgemm on the same threads).
Then forward-only inference on 1 thread (:mod:`benchmarks.inference`), and the start-up
time of ``dlcli --help``. Benchmarks print figures; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import time

from benchmarks import load, settle, workloads

REPO = pathlib.Path(__file__).resolve().parents[1]
FRAMEWORKS = ("dlcli", "torch", "torch_tuned")
LABELS = {"dlcli": "dlcli", "torch": "pytorch", "torch_tuned": "pytorch tuned"}


class Worker:
    """A :mod:`benchmarks.child` process and its line protocol."""

    def __init__(self, name, framework, threads, quick, limit=False):
        args = [sys.executable, "-m", "benchmarks.child", name, framework, str(threads)]
        if quick:
            args.append("--quick")
        if limit:
            args.append("--limit-blas")
        self.proc = subprocess.Popen(args, cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.hello = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError(f"worker exited with status {self.proc.returncode}")
        return json.loads(line)

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def timed(self, command) -> dict:
        """``command`` after the settling pause, bracketed by the machine's counters:
        a :func:`benchmarks.load.sample`, with the worker's whole answer as ``reply``."""
        settle()
        start_load = load.read_loadavg()
        before, start = load.read_cpu(), time.perf_counter()
        answer = self.ask(command)
        wall, after = time.perf_counter() - start, load.read_cpu()
        return {**load.sample(before, after, wall, answer["seconds"], answer["cpu_s"],
                              start_load), "reply": answer}

    def close(self):
        result = self.ask("quit")
        self.proc.wait()
        return result


def machine() -> dict:
    cpu = None
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from dlcli.inspect.timing import blas_info
    import numpy as np
    blas = blas_info()
    if blas.get("threads") is None:
        blas["threads"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count()
    info = {"cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "blas": blas}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    info["load_average"] = load.read_loadavg()
    return info


def header(info: dict, threads: int, peak: float | None = None) -> str:
    """The line every table starts with: CPU, BLAS kernel, threads, peak and load."""
    blas = info["blas"]
    text = (f"CPU {info['cpu']} ({info['cores']} cores); BLAS {blas['library']} kernel "
            f"{blas.get('kernel')}, {threads} thread(s); numpy {info['numpy']}; "
            f"torch {info['torch'] or 'not installed'}")
    if peak:
        text += f"; peak sgemm {peak:.0f} GFLOP/s on {threads} thread(s)"
    loads = [v for v in (info.get("load_average"), info.get("load_average_after")) if v is not None]
    if loads:
        text += "; load average " + " -> ".join(f"{v:.1f}" for v in loads)
    return text


def _rotated(keys: list, r: int) -> list:
    return keys[r % len(keys):] + keys[:r % len(keys)]


def summarize(samples: dict, base: str = "dlcli") -> dict:
    """Per framework its epochs' clean median (its own disturbed epochs left out), min, CPU
    time and others' share; per other framework the ratio ``base`` / it per repeat and its
    clean median (pairs in which either epoch was disturbed left out)."""
    out = {}
    for key, rows in samples.items():
        seconds = [s["seconds"] for s in rows]
        shares = [s["others"] for s in rows if s["others"] is not None]
        out[key] = {"samples": rows, "seconds": load.clean_median(
                        seconds, [s["disturbed"] for s in rows]),
                    "min_s": min(seconds),
                    "cpu_s": statistics.median(s["cpu_s"] for s in rows),
                    "others": statistics.median(shares) if shares else None,
                    "disturbed": sum(s["disturbed"] for s in rows)}
        if key != base and base in samples:
            ratios = [b["seconds"] / s["seconds"] for b, s in zip(samples[base], rows)]
            out[key]["ratio"] = ratios
            out[key]["ratio_flags"] = load.pair_flags(samples[base], rows)
            out[key]["ratio_median"] = load.clean_median(ratios, out[key]["ratio_flags"])
            # CPU time is less sensitive to load than wall time (a descheduled thread does
            # not count), though not immune (cache sharing, spinning threads)
            out[key]["cpu_ratio"] = statistics.median(
                b["cpu_s"] / s["cpu_s"] for b, s in zip(samples[base], rows))
    return out


def run_workload(name, repeats, threads, quick, with_torch, limit=False) -> dict:
    frameworks = FRAMEWORKS if with_torch else ("dlcli",)
    workers = {k: Worker(name, k, threads, quick, limit) for k in frameworks}
    dl = workers["dlcli"]
    hello = dl.hello
    result = {"name": name, "description": workloads.DESCRIPTIONS[name],
              "source": hello["source"], "samples": hello["samples"], "batch": hello["batch"],
              "steps_per_epoch": hello["steps_per_epoch"],
              "flop_per_sample": hello["flop_per_sample"]}
    settle()
    result["peak"] = dl.ask("peak")
    samples = {k: [] for k in workers}
    floors = []
    for r in range(repeats):
        floors.append(dl.timed("floor"))
        for key in _rotated(list(workers), r):
            samples[key].append(workers[key].timed("epoch"))
    result["frameworks"] = summarize(samples)
    for key, worker in workers.items():
        result["frameworks"][key]["peak_rss_mb"] = worker.close()["peak_rss_mb"]
    # The floor: the least time the step's own products took alone, over the repeats in
    # which no other process disturbed their timing (over all of them if none was quiet).
    quiet = [f for f in floors if not f["disturbed"]]
    best = min(quiet or floors, key=lambda f: f["seconds"])["reply"]
    useful = hello["flop_per_sample"] * hello["batch"] / 1e9
    result["floor"] = {"step_s": best["seconds"],
                       "epoch_s": best["seconds"] * result["steps_per_epoch"],
                       "gflop_per_step": best["gflop"], "useful_gflop_per_step": useful,
                       "products": best["products"], "disturbed": not quiet,
                       "step_s_per_repeat": [f["seconds"] for f in floors],
                       "others": [f["others"] for f in floors]}
    epoch_flop = hello["flop_per_sample"] * hello["samples"]
    for key, part in result["frameworks"].items():
        median = part["seconds"]["median"]
        part["gflops"] = epoch_flop / median / 1e9
        part["of_peak"] = part["gflops"] / result["peak"]["gflops"]
    dlm = result["frameworks"]["dlcli"]["seconds"]["median"]
    result["floor"]["fraction"] = result["floor"]["epoch_s"] / dlm
    # On one thread an epoch's CPU time is its time without the waits for the core: the
    # floor's share of it holds up under load better than the share of the wall time.
    result["floor"]["fraction_of_cpu"] = (result["floor"]["epoch_s"]
                                          / result["frameworks"]["dlcli"]["cpu_s"])
    return result


def startup(repeats: int = 5) -> dict:
    exe = shutil.which("dlcli")
    base = [exe] if exe else [sys.executable, "-m", "dlcli"]
    out = {"command": " ".join(base)}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(base + ["--help"], cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    out["help"] = {"median_s": statistics.median(times), "min_s": min(times)}
    return out


def fmt(value, spec=".2f"):
    return "-" if value is None else format(value, spec)


def ratio_cell(part: dict) -> str:
    """``median (r1 r2* ...)``: the clean median, each repeat's ratio, * on disturbed pairs;
    ``!`` after the median when every pair was disturbed (a figure taken under load)."""
    if "ratio" not in part:
        return ""
    med = part["ratio_median"]
    per = " ".join(f"{r:.2f}{'*' if f else ''}" for r, f in zip(part["ratio"], part["ratio_flags"]))
    return (f"{fmt(med['median'])}{'!' if med['all_disturbed'] else ''} ({per}); "
            f"CPU {fmt(part['cpu_ratio'])}")


def render(head, rows) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(head, widths)).rstrip()]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return lines


def table(results, info, threads) -> str:
    head = ("workload", "framework", "epoch s", "min", "CPU s", "others' CPU", "disturbed",
            "GFLOP/s", "of peak", "peak RSS MB", "dlcli / this")
    rows = []
    peak = max((r["peak"]["gflops"] for r in results if "peak" in r), default=None)
    for res in results:
        if "skipped" in res:
            rows.append((res["name"], "skipped: " + res["skipped"]) + ("",) * 9)
            continue
        for i, (key, part) in enumerate(res["frameworks"].items()):
            sec = part["seconds"]
            rows.append((res["name"] if i == 0 else "", LABELS[key],
                         fmt(sec["median"], ".3f") + ("!" if sec["all_disturbed"] else ""),
                         fmt(part["min_s"], ".3f"), fmt(part["cpu_s"], ".2f"),
                         fmt(part["others"], ".0%"), f"{part['disturbed']}/{sec['of']}",
                         fmt(part["gflops"], ".1f"), fmt(part["of_peak"], ".0%"),
                         fmt(part["peak_rss_mb"], ".0f"), ratio_cell(part)))
        f = res["floor"]
        rows.append(("", "dlcli's products alone", fmt(f["epoch_s"], ".3f")
                     + ("!" if f["disturbed"] else ""), "", "",
                     fmt(statistics.median(s for s in f["others"] if s is not None)
                         if any(s is not None for s in f["others"]) else None, ".0%"), "",
                     "", "", "", f"floor/epoch {f['fraction']:.0%}"
                     + (f" (of CPU time {f['fraction_of_cpu']:.0%})" if threads == 1 else "")
                     + f"; products "
                     f"{f['gflop_per_step'] / f['useful_gflop_per_step']:.2f}x the useful FLOPs"))
    lines = [header(info, threads, peak)] + render(head, rows)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="a fifth of the samples, 1 repeat")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write the results here")
    parser.add_argument("--repeats", type=int, help="epochs per framework (default 3; quick 1)")
    parser.add_argument("--only", nargs="+", choices=workloads.NAMES, help="these workloads")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch runs")
    parser.add_argument("--no-inference", action="store_true",
                        help="skip the inference section (benchmarks.inference)")
    parser.add_argument("--no-parallel", action="store_true", help="skip the data-parallel "
                        "section (benchmarks.parallel: mpiexec -n 2 vs 2 threads vs PyTorch)")
    parser.add_argument("--threads", type=int, help="BLAS threads for both frameworks (set "
                        "with threadpoolctl and torch.set_num_threads; default: the BLAS's own)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    started = time.perf_counter()
    info = machine()
    threads = int(args.threads or info["blas"]["threads"])
    limit = args.threads is not None
    if limit:
        import importlib.util
        if importlib.util.find_spec("threadpoolctl") is None:
            parser.error("--threads needs threadpoolctl (pip install 'dlcli[bench]')")
        info["blas"]["threads"] = threads
    with_torch = info["torch"] is not None and not args.no_torch
    print(header(info, threads), flush=True)
    results = []
    for name in args.only or workloads.NAMES:
        why = workloads.available(name)
        if why:
            results.append({"name": name, "skipped": why})
            print(f"{name}: skipped ({why})", flush=True)
            continue
        print(f"{name}: {workloads.DESCRIPTIONS[name]} ...", flush=True)
        try:
            results.append(run_workload(name, repeats, threads, args.quick, with_torch, limit))
        except (RuntimeError, OSError, ValueError) as exc:
            results.append({"name": name, "skipped": f"failed: {exc}"})
            print(f"{name}: failed ({exc})", flush=True)
    inference = []
    if not args.no_inference and with_torch:
        from benchmarks.inference import section as inference_section
        print()
        inference = inference_section(info, repeats, args.quick, args.only)
    parallel = []
    if not args.no_parallel and not args.only:
        from benchmarks.parallel import section
        print()
        parallel = section(repeats, args.quick, with_torch)
    start = startup()
    info["load_average_after"] = load.read_loadavg()
    print()
    print(table(results, info, threads))
    elapsed = time.perf_counter() - started
    print(f"start-up `dlcli --help`: median {start['help']['median_s']:.3f} s, "
          f"min {start['help']['min_s']:.3f} s")
    print(f"\n{'quick ' if args.quick else ''}benchmark: {repeats} repeat(s), {elapsed:.0f} s "
          f"wall. epoch s: median over the epochs other processes left alone (! every epoch "
          f"was disturbed: a figure under load); CPU s: the worker's CPU time per epoch; "
          f"others' CPU: median share of the machine's CPU other processes used during an "
          f"epoch (over {load.DISTURBED_SHARE:.0%}: disturbed); GFLOP/s: the multiply-adds the "
          f"step needs (dlcli time's count) per second; dlcli / this: median over the "
          f"undisturbed pairs (* disturbed pair), then the median ratio of CPU times; products alone: the matrix products one "
          f"dlcli step runs, each timed alone (least over the repeats), x steps per epoch")
    if args.json_out:
        out = {"command": " ".join(["python -m benchmarks"] + sys.argv[1:]), "machine": info,
               "quick": args.quick, "repeats": repeats, "workloads": results,
               "inference": inference, "startup": start, "wall_s": elapsed,
               "data_parallel": parallel}
        pathlib.Path(args.json_out).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

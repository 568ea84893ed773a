"""``python -m benchmarks [--quick] [--json OUT] [--repeats R] [--threads T] [--only NAME ...]``

Runs every workload of :mod:`benchmarks.workloads` in dlcli and (when torch imports) in
PyTorch CPU, each framework in its own fresh worker process (:mod:`benchmarks.child`), and
prints one table: seconds per epoch (median and min over the repeats), samples/s, peak RSS,
the GEMM floor (:mod:`benchmarks.gemm`, timed at the start of each repeat) and the median
over the repeats of each dlcli epoch's fraction of its repeat's floor, and the ratio
dlcli / PyTorch per repeat, the two epochs of a pair run one after the other, each after a
pause that lets the other worker's idle threads stop spinning (``benchmarks.SETTLE_S``).
Then the start-up
wall time of ``dlcli --help`` and ``dlcli shapes configs/lenet.yaml``. ``--quick`` uses a
fifth of the samples and one repeat. Benchmarks print figures; nothing here asserts on time.
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

from benchmarks import settle, workloads

REPO = pathlib.Path(__file__).resolve().parents[1]


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
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def run_workload(name, repeats, threads, quick, with_torch, limit=False) -> dict:
    dl = Worker(name, "dlcli", threads, quick, limit)
    th = Worker(name, "torch", threads, quick, limit) if with_torch else None
    result = {"name": name, "description": workloads.DESCRIPTIONS[name],
              "source": dl.hello["source"], "samples": dl.hello["samples"],
              "batch": dl.hello["batch"], "steps_per_epoch": dl.hello["steps_per_epoch"],
              "dlcli": {"epoch_s": []}, "torch": {"epoch_s": []} if th else None,
              "ratio": []}
    floors = []
    for r in range(repeats):
        # The floor of this repeat, timed before the pair whichever goes first (just before
        # dlcli's epoch would warm the BLAS and caches for dlcli only).
        settle()
        floors.append(dl.ask("floor"))
        # Alternate which goes first so neither always runs on a warmer (or busier) machine.
        pair = [("dlcli", dl), ("torch", th)] if r % 2 == 0 else [("torch", th), ("dlcli", dl)]
        times = {}
        for key, worker in pair:
            if worker is not None:
                settle()
                times[key] = worker.ask("epoch")["epoch_s"]
                result[key]["epoch_s"].append(times[key])
        if th is not None:
            result["ratio"].append(times["dlcli"] / times["torch"])
    for key, worker in (("dlcli", dl), ("torch", th)):
        if worker is None:
            continue
        part = result[key]
        part["peak_rss_mb"] = worker.close()["peak_rss_mb"]
        part["median_s"] = statistics.median(part["epoch_s"])
        part["min_s"] = min(part["epoch_s"])
        part["samples_per_s"] = result["samples"] / part["median_s"]
    steps = result["samples"] / result["batch"]
    fractions = [f["seconds"] * steps / e for f, e in zip(floors, result["dlcli"]["epoch_s"])]
    middle = sorted(floors, key=lambda f: f["seconds"])[len(floors) // 2]
    result["gemm_floor"] = {"step_s": middle["seconds"], "epoch_s": middle["seconds"] * steps,
                            "gflop_per_step": middle["gflop"], "products": middle["products"],
                            "step_s_per_repeat": [f["seconds"] for f in floors],
                            "fraction_per_repeat": fractions,
                            "fraction": statistics.median(fractions)}
    if result["ratio"]:
        result["ratio_median"] = statistics.median(result["ratio"])
    return result


def startup(repeats: int = 5) -> dict:
    exe = shutil.which("dlcli")
    base = [exe] if exe else [sys.executable, "-m", "dlcli"]
    out = {"command": " ".join(base)}
    for label, args in (("help", ["--help"]), ("shapes_lenet", ["shapes", "configs/lenet.yaml"])):
        if label == "shapes_lenet" and not (REPO / "configs" / "lenet.yaml").is_file():
            continue
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(base + args, cwd=REPO, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        out[label] = {"median_s": statistics.median(times), "min_s": min(times)}
    return out


def fmt(value, spec=".2f"):
    return "-" if value is None else format(value, spec)


def table(results, start) -> str:
    head = ("workload", "framework", "epoch s (median)", "min", "samples/s", "peak RSS MB",
            "GEMM floor s", "floor/epoch", "dlcli/torch")
    rows = []
    for res in results:
        if "skipped" in res:
            rows.append((res["name"], "skipped: " + res["skipped"], "", "", "", "", "", "", ""))
            continue
        d, t, g = res["dlcli"], res["torch"], res["gemm_floor"]
        ratio = res.get("ratio_median")
        per = " ".join(f"{r:.2f}" for r in res["ratio"])
        rows.append((res["name"], "dlcli", fmt(d["median_s"], ".3f"), fmt(d["min_s"], ".3f"),
                     fmt(d["samples_per_s"], ".0f"), fmt(d["peak_rss_mb"], ".0f"),
                     fmt(g["epoch_s"], ".3f"), fmt(g["fraction"], ".0%"),
                     f"{ratio:.2f} ({per})" if ratio is not None else "-"))
        if t:
            rows.append(("", "pytorch", fmt(t["median_s"], ".3f"), fmt(t["min_s"], ".3f"),
                         fmt(t["samples_per_s"], ".0f"), fmt(t["peak_rss_mb"], ".0f"),
                         "", "", ""))
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(head, widths))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    for label in ("help", "shapes_lenet"):
        if label in start:
            lines.append(f"start-up `dlcli {'--help' if label == 'help' else 'shapes configs/lenet.yaml'}`"
                         f": median {start[label]['median_s']:.3f} s, min {start[label]['min_s']:.3f} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="a fifth of the samples, 1 repeat")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write the results here")
    parser.add_argument("--repeats", type=int, help="epochs per framework (default 3; quick 1)")
    parser.add_argument("--only", nargs="+", choices=workloads.NAMES, help="these workloads")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch runs")
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
    print(f"machine: {info['cpu']}, {info['cores']} cores; BLAS {info['blas']['library']} "
          f"kernel {info['blas'].get('kernel')} threads {threads}; numpy {info['numpy']}; "
          f"torch {info['torch'] or 'not installed'}"
          + (f" (torch.set_num_threads({threads}))" if with_torch else ""), flush=True)
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
    parallel = []
    if not args.no_parallel and not args.only:
        from benchmarks.parallel import section
        print()
        parallel = section(repeats, args.quick, with_torch)
    start = startup()
    info["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    print()
    print(table(results, start))
    elapsed = time.perf_counter() - started
    print(f"\n{'quick ' if args.quick else ''}benchmark: {repeats} repeat(s), {elapsed:.0f} s "
          f"wall; GEMM floor = the step's np.matmul products alone, timed at the start of each "
          f"repeat, x steps per epoch (median); floor/epoch = median over the repeats")
    if args.json_out:
        out = {"command": " ".join(["python -m benchmarks"] + sys.argv[1:]), "machine": info,
               "quick": args.quick, "repeats": repeats, "workloads": results,
               "startup": start, "wall_s": elapsed, "data_parallel": parallel}
        pathlib.Path(args.json_out).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

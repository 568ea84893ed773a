"""Forward-only inference, dlcli against PyTorch, on 1 thread: ``python -m benchmarks.inference``
(also a section of ``python -m benchmarks``).

For the MLP and LeNet workloads and batches of 64, 256 and 1024 samples, each framework's
worker (:mod:`benchmarks.child`, BLAS limited to 1 thread) runs the forward passes over a
fixed number of samples: dlcli's ``model.forward(x, training=False)`` with the output
activation, as ``dlcli predict`` does; PyTorch's module in ``eval()`` under
``torch.inference_mode()`` with the same softmax, and for LeNet also in ``channels_last``
(``pytorch tuned``). The requests alternate, the order rotating per repeat, and each is
recorded with its CPU time and the other processes' share of the machine
(:mod:`benchmarks.load`); disturbed pairs are left out of the medians.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from benchmarks import load

NAMES = ("mlp_sgd", "lenet_adam")
BATCHES = (64, 256, 1024)
SAMPLES = {"mlp_sgd": 16384, "lenet_adam": 4096}  # per request (quick: a quarter)


def run(name: str, repeats: int, quick: bool) -> dict:
    from benchmarks.__main__ import Worker, _rotated, summarize
    kinds = ("dlcli", "torch", "torch_tuned") if name == "lenet_adam" else ("dlcli", "torch")
    workers = {k: Worker(name, k, 1, quick, limit=True) for k in kinds}
    samples = SAMPLES[name] // (4 if quick else 1)
    out = {"name": name, "samples_per_request": samples, "batches": {}}
    try:
        for batch in BATCHES:
            times = {k: [] for k in workers}
            for r in range(repeats):
                for key in _rotated(list(workers), r):
                    times[key].append(workers[key].timed(f"infer {batch} {samples}"))
            out["batches"][batch] = summarize(times)
    finally:
        for worker in workers.values():
            worker.close()
    return out


def table(results: list, info: dict) -> str:
    from benchmarks.__main__ import LABELS, fmt, header, ratio_cell, render
    head = ("workload", "batch", "framework", "ms per 1000 samples", "others' CPU",
            "disturbed", "dlcli / this")
    rows = []
    for res in results:
        n = res["samples_per_request"]
        for batch, parts in res["batches"].items():
            for i, (key, part) in enumerate(parts.items()):
                sec = part["seconds"]
                rows.append((res["name"] if i == 0 else "", str(batch) if i == 0 else "",
                             LABELS[key], fmt(1e6 * sec["median"] / n, ".1f")
                             + ("!" if sec["all_disturbed"] else ""),
                             fmt(part["others"], ".0%"), f"{part['disturbed']}/{sec['of']}",
                             ratio_cell(part)))
    return "\n".join([header(info, 1) + "; inference, forward only"] + render(head, rows))


def section(info: dict, repeats: int, quick: bool, only=None) -> list:
    """Run and print the inference comparison (what ``python -m benchmarks`` calls)."""
    results = []
    for name in NAMES:
        if only and name not in only:
            continue
        print(f"inference, {name}, 1 thread ...", flush=True)
        results.append(run(name, repeats, quick))
    if results:
        print(table(results, info))
    return results


def main(argv=None) -> int:
    from benchmarks.__main__ import machine
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inference")
    parser.add_argument("--quick", action="store_true", help="a quarter of the samples")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=NAMES)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    info = machine()
    results = section(info, args.repeats, args.quick, args.only)
    info["load_average_after"] = load.read_loadavg()
    if args.json_out:
        pathlib.Path(args.json_out).write_text(json.dumps(
            {"machine": info, "inference": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

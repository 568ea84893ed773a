"""Where a training step's time goes: ``dlcli time`` run several times, the median run shown.

    python -m benchmarks.profile CONFIG [--runs 5] [--batches 150] [--threads N] [--set K=V ...]

Each run is a fresh ``dlcli [--threads N] time CONFIG --json`` process, after a pause that
lets the previous one's idle BLAS threads stop (``benchmarks.SETTLE_S``). The host is noisy
(one config's step moved by up to 30% from one run to the next while the README's tables
were taken), so one run's profile can mislead: this prints every run's step time, then the
run whose step time is the median (the lower of the two middle ones for an even count) as a
Markdown table (per layer and phase: forward, backward, total ms and share of the step),
then that run's time grouped by kind of work. It is what the README's "Targets not met, and
where the time goes" tables come from. A benchmark prints figures; nothing asserts on time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from benchmarks import settle

TIMEOUT_S = 600  # per dlcli time process

# Row names of ``dlcli time`` that are not layers, grouped as the README reads them.
_GROUPS = {"data": "data gathering", "loss": "loss", "optimizer": "optimizer update",
           "gradient_check": "non-finite check", "metrics": "metrics",
           "other": "loop overhead"}


def run_once(config: str, batches: int, threads: int | None, sets: list[str]) -> dict:
    cmd = [sys.executable, "-m", "dlcli"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    cmd += ["time", config, "--json", "--batches", str(batches)]
    for item in sets:
        cmd += ["--set", item]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        sys.exit(f"{' '.join(cmd)} ran past {TIMEOUT_S} s: try fewer --batches")
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.exit(f"{' '.join(cmd)} printed something other than one JSON object: "
                 f"{done.stdout[:200]!r}")


def group(row: dict) -> str:
    """The kind of work a row of ``dlcli time`` is."""
    if row["name"] in _GROUPS:
        return _GROUPS[row["name"]]
    if row["kind"] == "activation":
        return "activations"
    if row["type"] in ("conv2d", "conv_transpose2d"):
        return "convolutions (column copies and products)"
    if row["type"] == "dense":
        return "dense layers (products, bias)"
    if row["type"] in ("maxpool2d", "avgpool2d", "maxunpool2d"):
        return "pooling"
    return row["type"]


def table(profile: dict) -> str:
    lines = ["| op | type | forward ms | backward ms | total ms | share |",
             "|---|---|---|---|---|---|"]
    for row in profile["rows"]:
        if row.get("fused_into_loss"):
            continue  # the output activation the loss computes: its time is the loss's
        kind = row["type"] + (f", fused with {row['fused_with']}" if row.get("fused_with") else "")
        if row.get("runs_after"):
            kind += f", after {row['runs_after']}"
        bwd = f"{row['backward_ms']:.3f}" if row["backward_ms"] else ""
        lines.append(f"| {row['name']} | {kind} | {row['forward_ms']:.3f} | {bwd} | "
                     f"{row['total_ms']:.3f} | {100 * row['share']:.1f}% |")
    # dlcli time's step forward/backward sum the layers and activations only; the total
    # is the whole step (data, loss, optimizer, ... included)
    lines.append(f"| **step** | (forward, backward: layers only) | {profile['forward_ms']:.3f} | "
                 f"{profile['backward_ms']:.3f} | **{profile['step_ms']:.3f}** | 100% |")
    return "\n".join(lines)


def grouped(profile: dict) -> str:
    totals: dict[str, float] = {}
    for row in profile["rows"]:
        totals[group(row)] = totals.get(group(row), 0.0) + row["total_ms"]
    step = profile["step_ms"]
    return "\n".join(f"  {name}: {ms:.3f} ms ({100 * ms / step:.0f}%)"
                     for name, ms in sorted(totals.items(), key=lambda kv: -kv[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.batches < 1:
        parser.error("--runs and --batches must be at least 1")
    profiles = []
    for _ in range(args.runs):
        settle()
        profiles.append(run_once(args.config, args.batches, args.threads, args.sets))
    profiles.sort(key=lambda p: p["step_ms"])
    median = profiles[(len(profiles) - 1) // 2]
    blas = median["blas"]  # kernel and threads are None without threadpoolctl
    threads = blas.get("threads") or args.threads
    print(f"{args.config}: {args.runs} runs of `dlcli time` ({args.batches} steps of batch "
          f"{median['batch_size']}, {median['dtype']}), BLAS {blas.get('library')}"
          + (f" ({blas['kernel']})" if blas.get("kernel") else "")
          + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else ""))
    print("step ms per run, sorted: " + " ".join(f"{p['step_ms']:.3f}" for p in profiles))
    print(f"the median run ({median['step_ms']:.3f} ms per step, "
          f"{median['samples_per_s']:,.0f} samples/s):\n")
    print(table(median))
    print("\nby kind of work:")
    print(grouped(median))
    return 0


if __name__ == "__main__":
    sys.exit(main())

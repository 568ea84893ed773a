"""The sweep directory's records: append-only ``trials.jsonl``, ``best.json``, and what a
trial's run directory says about its result.

``trials.jsonl`` holds one JSON object per event of a trial (``running`` when an attempt
starts; ``finished``, ``failed``, ``interrupted`` or ``crashed`` when it ends), each with
the trial number, its parameter values, the attempt, the metric and the run directory
(relative to the sweep). A trial's state is its last line; lines are only ever appended.
"""

import json
import math
import os
import pathlib
import time

from dlcli.train.io import read_jsonl, write_json

TRIALS = "trials.jsonl"
FINAL = ("finished", "failed")  # kept by --resume; the others are continued


def trial_name(number: int) -> str:
    return f"{number:04d}"


def append(sweep_dir, record: dict) -> None:
    """Append one complete line and fsync it: a record is either whole or absent."""
    line = json.dumps({**record, "time": round(time.time(), 3)}, allow_nan=False) + "\n"
    with open(pathlib.Path(sweep_dir) / TRIALS, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read(sweep_dir) -> tuple[dict[int, dict], list[str]]:
    """The latest record of each trial (by number) and warnings about torn lines."""
    rows, warnings = read_jsonl(pathlib.Path(sweep_dir) / TRIALS)
    latest: dict[int, dict] = {}
    attempts: dict[int, int] = {}
    for row in rows:
        number = row.get("trial")
        if isinstance(number, int):
            latest[number] = row
            if row.get("status") == "running":
                attempts[number] = attempts.get(number, 0) + 1
    for number, row in latest.items():
        row["attempts"] = attempts.get(number, 0)
    return latest, warnings


def run_outcome(run_dir, metric: str) -> dict:
    """What ``run_dir`` says: the summary's status (None without one), the value of
    ``metric`` at the run's best epoch (the epoch of ``checkpoints/best.npz``), epochs."""
    run_dir = pathlib.Path(run_dir)
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if not isinstance(summary, dict):
        return {"run_status": None, "metric": None, "best_epoch": None, "epochs": None}
    rows, _ = read_jsonl(run_dir / "metrics.jsonl")
    best_epoch = summary.get("best_epoch")
    value = None
    for row in rows:
        if row.get("epoch") == best_epoch:
            value = row.get(metric)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        value = None
    return {"run_status": summary.get("status"), "metric": value, "best_epoch": best_epoch,
            "epochs": summary.get("epochs_done"), "wall_time_s": summary.get("wall_time_s")}


def is_better(value, than, goal: str) -> bool:
    if value is None:
        return False
    if than is None:
        return True
    return value > than if goal == "max" else value < than


def best(latest: dict[int, dict], goal: str) -> dict | None:
    """The finished trial with the best metric (the lowest number among equals)."""
    found = None
    for number in sorted(latest):
        row = latest[number]
        if row.get("status") == "finished" and is_better(row.get("metric"),
                                                         found and found["metric"], goal):
            found = row
    return found


def ranked(latest: dict[int, dict], goal: str) -> list[dict]:
    """Trials best first; trials without a metric after, by number."""
    with_metric = [row for row in latest.values() if row.get("metric") is not None]
    with_metric.sort(key=lambda row: (-row["metric"] if goal == "max" else row["metric"],
                                      row["trial"]))
    rest = sorted((row for row in latest.values() if row.get("metric") is None),
                  key=lambda row: row["trial"])
    return with_metric + rest


def write_best(sweep_dir, spec_data: dict, latest: dict[int, dict]) -> dict | None:
    found = best(latest, spec_data["metric"]["goal"])
    if found is None:
        return None
    sweep_dir = pathlib.Path(sweep_dir)
    out = {"trial": found["trial"], "metric": spec_data["metric"]["name"],
           "goal": spec_data["metric"]["goal"], "value": found["metric"],
           "best_epoch": found.get("best_epoch"), "params": found["params"],
           "run_dir": found["run_dir"], "path": str((sweep_dir / found["run_dir"]).resolve())}
    write_json(sweep_dir / "best.json", out)
    return out

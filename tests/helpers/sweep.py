"""Small sweeps for the tests: a tiny base config, a spec writer and ``dlcli`` in a process."""

import json
import os
import pathlib
import subprocess
import sys

import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

BASE = {
    "name": "tiny",
    "seed": 1,
    "data": {"source": "synthetic:moons", "params": {"n_samples": 200, "noise": 0.25},
             "validation_split": 0.2, "test_split": 0.1},
    "model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"},
                         {"type": "dropout", "rate": 0.1},
                         {"type": "dense", "units": 2, "activation": "softmax"}],
              "loss": "categorical_crossentropy"},
    "training": {"epochs": 3, "batch_size": 16, "optimizer": {"type": "adam", "lr": 0.01}},
}


def write_sweep(tmp_path, spec: dict, base: dict | None = None, name="spec.yaml"):
    """Write the base config beside ``spec`` (which names it ``base.yaml``)."""
    tmp_path = pathlib.Path(tmp_path)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base or BASE, sort_keys=False))
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"config": "base.yaml", **spec}, sort_keys=False))
    return path


def env() -> dict:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([out["PYTHONPATH"]]
                                                            if out.get("PYTHONPATH") else []))
    return out


def dlcli(*args, cwd, timeout=300, check=None) -> subprocess.CompletedProcess:
    """``python -m dlcli ARGS`` in ``cwd``; ``check`` asserts the exit code."""
    proc = subprocess.run([sys.executable, "-m", "dlcli", *map(str, args)], cwd=cwd,
                          env=env(), capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def start_dlcli(*args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dlcli", *map(str, args)], cwd=cwd,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def trial_records(sweep_dir) -> list[dict]:
    text = (pathlib.Path(sweep_dir) / "trials.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def latest(sweep_dir) -> dict[int, dict]:
    out = {}
    for row in trial_records(sweep_dir):
        out[row["trial"]] = row
    return out


def metrics_rows(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in
            (pathlib.Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]

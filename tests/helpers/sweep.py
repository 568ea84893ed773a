"""Small sweeps for the tests: a tiny base config, a spec writer and ``dlcli`` in a process."""

import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import yaml

from dlcli.train import checkpoint as ckpt
from dlcli.train.io import pid_alive, read_pid

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


# ---- the sweep the fault tests kill and the one they compare with ---------------------
KILL_BASE = {
    "name": "mid", "seed": 1,
    "data": {"source": "synthetic:moons", "params": {"n_samples": 6000, "noise": 0.25},
             "validation_split": 0.2, "test_split": 0.1},
    "model": {"layers": [{"type": "dense", "units": 16, "activation": "tanh"},
                         {"type": "dropout", "rate": 0.1},
                         {"type": "dense", "units": 2, "activation": "softmax"}],
              "loss": "categorical_crossentropy"},
    # a checkpoint each epoch: the kills must find one early (auto writes none before ~2 s)
    "training": {"epochs": 6, "batch_size": 8, "optimizer": {"type": "adam", "lr": 0.01},
                 "checkpoint_every": 1},
}
KILL_SPEC = {"name": "k", "method": "random", "trials": 3, "seed": 0,
             "metric": {"name": "val_loss"},
             "parameters": {"training.optimizer.lr": {"loguniform": [1.0e-3, 1.0e-1]}},
             "executor": {"type": "local", "parallel": 2}}
TRIALS = 3


def wait_for(predicate, timeout=120.0, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def signal_pending(pid, signum) -> bool:
    """Whether ``signum`` waits, undelivered, for process ``pid`` (a stopped one)."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("ShdPnd:", "SigPnd:")) and int(line.split()[1], 16) & (
                1 << (signum - 1)):
            return True
    return False


def running_trial_with_checkpoint(sweep, most_epochs=3):
    """(trial dir, pid) of a trial process that holds its lock and has a checkpoint, with at
    most ``most_epochs`` of its 6 epochs done: a signal sent now finds it training."""
    for run in sorted((sweep / "trials").glob("*")):
        pid = read_pid(run / "lock")
        try:
            epochs = (run / "metrics.jsonl").read_text().count("\n")
        except FileNotFoundError:
            epochs = 0
        if pid and pid_alive(pid) and (run / "checkpoints" / "last.json").is_file() \
                and not (run / "summary.json").is_file() and epochs <= most_epochs:
            return run, pid
    return None


def no_trial_process_left(sweep):
    return not any(pid_alive(read_pid(run / "lock") or 0) and read_pid(run / "lock")
                   for run in (sweep / "trials").glob("*"))


def assert_same_as_reference(sweep, reference):
    rows, ref_rows = latest(sweep), latest(reference)
    assert sorted(rows) == list(range(TRIALS))
    for number in range(TRIALS):
        name = f"{number:04d}"
        assert rows[number]["status"] == "finished", rows[number]
        assert rows[number]["params"] == ref_rows[number]["params"]
        assert rows[number]["metric"] == ref_rows[number]["metric"]
        # One run: every epoch once, in order, with the uninterrupted run's values.
        ours = metrics_rows(sweep / "trials" / name)
        assert [r["epoch"] for r in ours] == list(range(1, len(ours) + 1))
        assert ours == metrics_rows(reference / "trials" / name)
        a = ckpt.load(sweep / "trials" / name / "checkpoints" / "last.npz")
        b = ckpt.load(reference / "trials" / name / "checkpoints" / "last.npz")
        for part in ("model", "optimizer"):
            assert a[part].keys() == b[part].keys()
            for key in a[part]:
                assert np.array_equal(a[part][key], b[part][key]), (name, part, key)



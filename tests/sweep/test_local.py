"""A small sweep on the local executor: files, records, best trial, and each trial an
ordinary run (the same weights as `dlcli train` with the trial's values)."""

import json

import numpy as np

from dlcli.train import checkpoint as ckpt
from tests.helpers.sweep import dlcli, latest, metrics_rows, trial_records, write_sweep

SPEC = {"name": "grid3", "method": "grid", "seed": 0,
        "metric": {"name": "val_loss"},
        "set": {"training.epochs": 2},
        "parameters": {"training.optimizer.lr": {"values": [0.003, 0.03, 0.3]}},
        "executor": {"type": "local", "parallel": 2}}


def test_a_grid_sweep_end_to_end(tmp_path):
    path = write_sweep(tmp_path, SPEC)
    dry = dlcli("sweep", path, "--dry-run", cwd=tmp_path, check=0)
    assert "0.003" in dry.stdout and "0.3" in dry.stdout and not (tmp_path / "sweeps").exists()

    proc = dlcli("sweep", path, "--dir", "out", cwd=tmp_path, check=0)
    sweep = tmp_path / "out"
    # Off a terminal: one line per finished trial, then the summary.
    assert sum(line.startswith("trial ") for line in proc.stdout.splitlines()) == 3
    assert "sweep done: 3 finished of 3" in proc.stdout

    rows = latest(sweep)
    assert sorted(rows) == [0, 1, 2]
    assert [rows[i]["params"] for i in range(3)] == [
        {"training.optimizer.lr": lr} for lr in (0.003, 0.03, 0.3)]
    assert [r["status"] for r in trial_records(sweep)].count("running") == 3
    # The metric is the value at the run's best epoch, read independently here.
    for i in range(3):
        run = sweep / "trials" / f"{i:04d}"
        summary = json.loads((run / "summary.json").read_text())
        by_epoch = {r["epoch"]: r for r in metrics_rows(run)}
        assert rows[i]["status"] == "finished"
        assert rows[i]["metric"] == by_epoch[summary["best_epoch"]]["val_loss"]
        assert [r["epoch"] for r in metrics_rows(run)] == [1, 2]
    best = json.loads((sweep / "best.json").read_text())
    winner = min(range(3), key=lambda i: rows[i]["metric"])
    assert best["trial"] == winner and best["value"] == rows[winner]["metric"]
    assert best["goal"] == "min" and best["run_dir"] == f"trials/{winner:04d}"

    shown = json.loads(dlcli("sweep", "--show", sweep, "--json", cwd=tmp_path, check=0).stdout)
    metrics = [t["metric"] for t in shown["trials"]]
    assert metrics == sorted(metrics) and shown["best_trial"] == winner
    table = dlcli("sweep", "--show", sweep, cwd=tmp_path, check=0).stdout
    assert "training.optimizer.lr" in table or "training.optimi" in table

    # Each trial is an ordinary run: runs lists them, eval scores one, and it holds exactly
    # the weights `dlcli train` makes from the base config with the trial's values.
    listed = json.loads(dlcli("runs", sweep / "trials", "--json", cwd=tmp_path, check=0).stdout)
    assert sorted(r["status"] for r in listed) == ["finished"] * 3
    scored = json.loads(dlcli("eval", sweep / "trials" / "0001", "--json", cwd=tmp_path,
                              check=0).stdout)
    assert 0.0 <= scored["accuracy"] <= 1.0
    dlcli("train", "base.yaml", "--set", "training.epochs=2", "--set",
          "training.optimizer.lr=0.03", "--run-dir", "alone", "-q", cwd=tmp_path, check=0)
    ours = ckpt.load(sweep / "trials" / "0001" / "checkpoints" / "last.npz")["model"]
    alone = ckpt.load(tmp_path / "alone" / "checkpoints" / "last.npz")["model"]
    assert ours.keys() == alone.keys()
    assert all(np.array_equal(ours[k], alone[k]) for k in ours)

    # A sweep whose trials are all done resumes to nothing new.
    again = dlcli("sweep", "--resume", sweep, cwd=tmp_path, check=0)
    assert "sweep done: 3 finished of 3" in again.stdout
    assert len(trial_records(sweep)) == 6


def test_failed_trials_are_recorded_and_kept(tmp_path):
    spec = {**SPEC, "name": "diverge",
            "set": {"training.epochs": 2, "training.optimizer.type": "sgd"},
            "parameters": {"training.optimizer.lr": {"values": [0.01, 1.0e+300]}}}
    path = write_sweep(tmp_path, spec)
    proc = dlcli("sweep", path, "--dir", "out", cwd=tmp_path, check=0)
    rows = latest(tmp_path / "out")
    assert rows[0]["status"] == "finished" and rows[1]["status"] == "failed"
    assert rows[1]["exit_code"] == 1 and "logs/0001.log" in proc.stdout
    assert "non-finite" in (tmp_path / "out" / "logs" / "0001.log").read_text() or \
        "diverged" in (tmp_path / "out" / "logs" / "0001.log").read_text()
    assert json.loads((tmp_path / "out" / "best.json").read_text())["trial"] == 0


def test_a_second_driver_on_the_same_sweep_is_refused(tmp_path):
    import subprocess
    import sys
    spec = {**SPEC, "parameters": {"training.optimizer.lr": {"values": [0.01]}}}
    path = write_sweep(tmp_path, spec)
    dlcli("sweep", path, "--dir", "out", cwd=tmp_path, check=0)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "out" / "lock").write_text(f"{holder.pid}\n")
        proc = dlcli("sweep", "--resume", "out", cwd=tmp_path, check=2)
        assert f"is being written by another dlcli process (pid {holder.pid})" in proc.stderr
    finally:
        holder.kill()
        holder.wait()
    # Its owner gone, the lock is taken over.
    dlcli("sweep", "--resume", "out", cwd=tmp_path, check=0)

"""A sweep killed at several moments (kill -9 of the driver, of a running trial; SIGTERM)
and resumed completes every trial; each trial's metrics.jsonl reads as one run and its final
weights and optimizer state equal those of the same trial in a sweep never interrupted."""

import os
import signal
import time

import numpy as np
import pytest

from dlcli.train import checkpoint as ckpt
from dlcli.train.io import pid_alive, read_pid
from tests.helpers.sweep import (dlcli, latest, metrics_rows, start_dlcli, trial_records,
                                 write_sweep)

pytestmark = pytest.mark.slow

BASE = {
    "name": "mid", "seed": 1,
    "data": {"source": "synthetic:moons", "params": {"n_samples": 1500, "noise": 0.25},
             "validation_split": 0.2, "test_split": 0.1},
    "model": {"layers": [{"type": "dense", "units": 16, "activation": "tanh"},
                         {"type": "dropout", "rate": 0.1},
                         {"type": "dense", "units": 2, "activation": "softmax"}],
              "loss": "categorical_crossentropy"},
    "training": {"epochs": 6, "batch_size": 8, "optimizer": {"type": "adam", "lr": 0.01}},
}
SPEC = {"name": "k", "method": "random", "trials": 3, "seed": 0,
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
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def running_trial_with_checkpoint(sweep):
    """(trial dir, pid) of a trial process that holds its lock and has a checkpoint."""
    for run in sorted((sweep / "trials").glob("*")):
        pid = read_pid(run / "lock")
        if pid and pid_alive(pid) and (run / "checkpoints" / "last.json").is_file() \
                and not (run / "summary.json").is_file():
            return run, pid
    return None


def no_trial_process_left(sweep):
    return not any(pid_alive(read_pid(run / "lock") or 0) and read_pid(run / "lock")
                   for run in (sweep / "trials").glob("*"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    path = write_sweep(tmp, SPEC, BASE)
    dlcli("sweep", path, "--dir", "ref", cwd=tmp, check=0)
    return tmp / "ref"


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


def test_kill_9_of_the_driver_and_of_a_running_trial(tmp_path, reference):
    path = write_sweep(tmp_path, SPEC, BASE)
    sweep = tmp_path / "out"

    # 1. The driver killed as soon as its first trials started (before any checkpoint).
    driver = start_dlcli("sweep", path, "--dir", sweep, cwd=tmp_path)
    wait_for(lambda: (sweep / "trials.jsonl").is_file() and trial_records(sweep),
             what="a trial to start")
    driver.kill()
    driver.wait()
    wait_for(lambda: no_trial_process_left(sweep), what="orphan trials to stop")

    # 2. The resumed driver killed while a trial is mid-way, with a committed checkpoint.
    driver = start_dlcli("sweep", "--resume", sweep, cwd=tmp_path)
    wait_for(lambda: running_trial_with_checkpoint(sweep), what="a checkpointed trial")
    driver.kill()
    driver.wait()
    wait_for(lambda: no_trial_process_left(sweep), what="orphan trials to stop")

    # 3. A running trial killed under a live driver: it is retried from its checkpoint.
    driver = start_dlcli("sweep", "--resume", sweep, cwd=tmp_path)
    run, pid = wait_for(lambda: running_trial_with_checkpoint(sweep),
                        what="a checkpointed trial")
    os.kill(pid, signal.SIGKILL)
    out, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, out
    assert f"sweep done: {TRIALS} finished of {TRIALS}" in out

    records = trial_records(sweep)
    killed = int(run.name)
    assert any(r["trial"] == killed and r["status"] == "crashed" and r["exit_code"] == -9
               for r in records)
    assert any(r["status"] == "running" and r["resumed"] for r in records)
    assert_same_as_reference(sweep, reference)
    # No trial ran twice into one directory: a directory without a checkpoint was moved.
    for moved in (sweep / "abandoned").glob("*") if (sweep / "abandoned").exists() else []:
        assert not (moved / "checkpoints" / "last.json").exists()


def test_sigterm_stops_the_trials_at_a_checkpoint_and_resume_finishes(tmp_path, reference):
    path = write_sweep(tmp_path, SPEC, BASE)
    sweep = tmp_path / "out"
    driver = start_dlcli("sweep", path, "--dir", sweep, cwd=tmp_path)
    wait_for(lambda: running_trial_with_checkpoint(sweep), what="a checkpointed trial")
    driver.send_signal(signal.SIGTERM)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 143, out
    assert f"continue with: dlcli sweep --resume {sweep}" in out
    assert no_trial_process_left(sweep)
    interrupted = [r for r in trial_records(sweep) if r["status"] == "interrupted"]
    assert interrupted and all(r["exit_code"] == 143 for r in interrupted)
    dlcli("sweep", "--resume", sweep, cwd=tmp_path, check=0)
    assert_same_as_reference(sweep, reference)

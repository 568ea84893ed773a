"""A sweep killed at several moments (kill -9 of the driver, of a running trial; SIGTERM)
and resumed completes every trial; each trial's metrics.jsonl reads as one run and its final
weights and optimizer state equal those of the same trial in a sweep never interrupted."""

import os
import signal

import pytest

from tests.helpers.sweep import (KILL_BASE as BASE, KILL_SPEC as SPEC, TRIALS,
                                 assert_same_as_reference, dlcli, no_trial_process_left,
                                 running_trial_with_checkpoint, signal_pending, start_dlcli,
                                 trial_records, wait_for, write_sweep)

pytestmark = pytest.mark.slow

def test_kill_9_of_the_driver_and_of_a_running_trial(tmp_path, reference_sweep):
    reference = reference_sweep
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


def test_sigterm_stops_the_trials_at_a_checkpoint_and_resume_finishes(tmp_path,
                                                                    reference_sweep):
    reference = reference_sweep
    path = write_sweep(tmp_path, SPEC, BASE)
    sweep = tmp_path / "out"
    driver = start_dlcli("sweep", path, "--dir", sweep, cwd=tmp_path)
    # A trial held still mid-way (SIGSTOP) until the driver has passed SIGTERM on to it.
    run, pid = wait_for(lambda: running_trial_with_checkpoint(sweep),
                        what="a checkpointed trial")
    os.kill(pid, signal.SIGSTOP)
    driver.send_signal(signal.SIGTERM)
    wait_for(lambda: signal_pending(pid, signal.SIGTERM), what="SIGTERM passed on")
    os.kill(pid, signal.SIGCONT)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 143, out
    assert f"continue with: dlcli sweep --resume {sweep}" in out
    assert no_trial_process_left(sweep)
    held = [r for r in trial_records(sweep) if r["trial"] == int(run.name)][-1]
    assert held["status"] == "interrupted" and held["exit_code"] == 143, held
    assert (run / "checkpoints" / "last.json").is_file()
    dlcli("sweep", "--resume", sweep, cwd=tmp_path, check=0)
    assert_same_as_reference(sweep, reference)

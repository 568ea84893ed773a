"""Faults from outside the process: signals, kill -9, a kill while writing, a full disk,
divergence. These run dlcli in child processes."""

import json
import os
import pathlib
import resource
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import yaml

from dlcli.config import load_config
from dlcli.train import checkpoint as ckpt
from dlcli.train import recovery
from dlcli.train import session

ROOT = pathlib.Path(__file__).resolve().parents[2]

CONFIG = {
    "name": "faults",
    "seed": 1,
    "data": {"source": str(ROOT / "datasets" / "digits.npz"), "validation_split": 0.1},
    "model": {"layers": [{"type": "flatten"},
                         {"type": "dense", "units": 64, "activation": "relu"},
                         {"type": "dropout", "rate": 0.1},
                         {"type": "dense", "units": 10, "activation": "softmax"}],
              "loss": "categorical_crossentropy"},
    "training": {"epochs": 6, "batch_size": 8, "optimizer": {"type": "adam", "lr": 0.001}},
}


def write_config(tmp_path, **training):
    data = json.loads(json.dumps(CONFIG))
    data["training"].update(training)
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def dlcli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "dlcli", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for_epochs(run_dir, count, proc, timeout=300, committed=False):
    """Until ``count`` metric rows are on disk (``committed``: and a checkpoint is)."""
    deadline = time.time() + timeout
    metrics = run_dir / "metrics.jsonl"
    while time.time() < deadline:
        if metrics.exists() and metrics.read_text().count("\n") >= count and (
                not committed or (run_dir / "checkpoints" / "last.json").exists()):
            return
        if proc.poll() is not None:
            raise AssertionError(f"dlcli exited early: {proc.communicate()}")
        time.sleep(0.01)
    raise AssertionError("training did not reach the epoch in time")


def final_model(run_dir):
    return ckpt.load(run_dir / "checkpoints" / "last.npz")["model"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    session.train(load_config(write_config(tmp)), run_dir=tmp / "run")
    return tmp / "run"


def assert_same_weights(run_dir, reference):
    got, want = final_model(run_dir), final_model(reference)
    assert got.keys() == want.keys()
    for key in want:
        assert np.array_equal(got[key], want[key]), key


def test_sigint_from_outside_checkpoints_and_resume_finishes_identically(tmp_path, reference):
    run_dir = tmp_path / "run"
    # a checkpoint each epoch, so each epoch's metric row is on disk when it ends (auto
    # batches rows for about a second, when a 6-epoch run may already be over)
    proc = dlcli("train", write_config(tmp_path, checkpoint_every=1), "--run-dir", run_dir)
    wait_for_epochs(run_dir, 1, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    if proc.returncode == 0:  # the run finished before the signal landed: nothing to test
        pytest.skip("training finished before SIGINT arrived")
    assert proc.returncode == 130, err
    # the resume command on a line of its own (issue 17)
    assert err.count("\n") == 2 and "Traceback" not in err
    assert err.splitlines()[-1].strip() == f"dlcli train --resume {run_dir}"
    assert f"dlcli train --resume {run_dir}" in err
    done = subprocess.run([sys.executable, "-m", "dlcli", "train", "--resume", run_dir, "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_same_weights(run_dir, reference)
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]


def test_kill_9_leaves_a_loadable_checkpoint_and_resume_matches(tmp_path, reference):
    run_dir = tmp_path / "run"
    # a checkpoint each epoch (auto would make the first only after ~2 s of training)
    proc = dlcli("train", write_config(tmp_path, checkpoint_every=1), "--run-dir", run_dir)
    wait_for_epochs(run_dir, 2, proc, committed=True)
    proc.kill()
    proc.communicate()
    path, parts, _ = recovery.load_latest(run_dir / "checkpoints")
    assert int(parts["trainer"]["epoch"]) >= 1
    # The dead process's lock is stale: resume takes it over.
    done = subprocess.run([sys.executable, "-m", "dlcli", "train", "--resume", run_dir, "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_same_weights(run_dir, reference)


WRITER = textwrap.dedent("""
    import pathlib, sys
    import numpy as np
    from dlcli.train import checkpoint as ckpt, recovery
    directory = pathlib.Path(sys.argv[1])
    start = int(sys.argv[2])
    weight = np.empty((512, 512), dtype=np.float32)
    for k in range(start, start + 10_000):
        weight.fill(k)
        recovery.rotate(directory, "last", "previous")
        ckpt.save(directory / "last.npz", {"dense1.weight": weight, "dense1.bias": weight[0]},
                  {"dense1.weight.exp_avg": weight}, None, {"step": np.int64(k)})
        print(k, flush=True)
""")


def test_kill_9_while_writing_checkpoints_never_leaves_an_unverifiable_run(tmp_path):
    """50 kills at random moments of checkpoint writing: a verified checkpoint always
    remains, and it is internally consistent (every array holds its own step's value)."""
    rng = np.random.default_rng(0)
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    step = 0
    for attempt in range(50):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(directory), str(step + 1)],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # at least one checkpoint committed by this writer
        time.sleep(float(rng.uniform(0, 0.05)))
        proc.kill()
        out, _ = proc.communicate()
        path, parts, warnings = recovery.load_latest(directory)
        k = int(parts["trainer"]["step"])
        assert np.all(parts["model"]["dense1.weight"] == k)
        assert np.all(parts["optimizer"]["dense1.weight.exp_avg"] == k)
        for name in ("last", "previous"):
            candidate = directory / f"{name}.npz"
            if candidate.exists() and (directory / f"{name}.json").exists():
                try:
                    other = ckpt.load(candidate)
                except Exception as exc:  # a torn pair is refused, never loaded wrongly
                    assert "differs" in str(exc) or "damaged" in str(exc) or "manifest" in str(exc)
                else:
                    k2 = int(other["trainer"]["step"])
                    assert np.all(other["model"]["dense1.weight"] == k2)
        step = k


def _limit_file_size(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_fails_with_exit_1_and_keeps_the_previous_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(tmp_path, epochs=2)
    session.train(load_config(config), run_dir=run_dir)
    size = (run_dir / "checkpoints" / "last.npz").stat().st_size
    before = (run_dir / "checkpoints" / "last.npz").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "dlcli", "train", "--resume", str(run_dir), "--set",
         "training.epochs=4", "--allow-config-change", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        preexec_fn=_limit_file_size(size // 2))
    assert proc.returncode == 1, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if not l.startswith("warning:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "last.npz" in lines[0] and "last good checkpoint" in lines[0]
    assert (run_dir / "checkpoints" / "last.npz").read_bytes() == before
    ckpt.load(run_dir / "checkpoints" / "last.npz")  # still verified
    leftovers = [p for p in run_dir.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_a_diverging_run_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    sgd = {"type": "sgd", "lr": 0.01}
    session.train(load_config(write_config(tmp_path, epochs=2, optimizer=sgd)), run_dir=run_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "dlcli", "train", "--resume", str(run_dir), "--set",
         "training.epochs=6", "--set", "training.optimizer.lr=1e6",
         "--allow-config-change", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    message = [l for l in proc.stderr.splitlines() if not l.startswith("warning:")]
    assert len(message) == 1
    assert "at epoch 3, step" in message[0]
    assert "lower" in message[0] and "clip" in message[0]
    parts = ckpt.load(run_dir / "checkpoints" / "last.npz")
    assert int(parts["trainer"]["epoch"]) == 2
    assert all(np.all(np.isfinite(v)) for v in parts["model"].values())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged"


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path):
    run_dir = tmp_path / "run"
    session.train(load_config(write_config(tmp_path, epochs=1)), run_dir=run_dir)
    (run_dir / "lock").write_text(f"{os.getppid()}\n")  # a live process holds it
    proc = subprocess.run([sys.executable, "-m", "dlcli", "train", "--resume", str(run_dir),
                           "--set", "training.epochs=2", "--allow-config-change"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "being written by another dlcli process" in proc.stderr


LATE_SIGNAL = textwrap.dedent("""
    import os, signal, sys
    from dlcli import cli
    from dlcli.train import session
    write = session.write_summary
    def signalled_then_written(run_dir, config, model, task, trainer, monitor, started,
                               status, stopper):
        if status == "finished":  # after the last step and the final checkpoint
            os.kill(os.getpid(), signal.SIGINT)
        return write(run_dir, config, model, task, trainer, monitor, started, status, stopper)
    session.write_summary = signalled_then_written
    sys.argv = ["dlcli", "train", *sys.argv[1:]]
    cli.main()
""")


def test_a_signal_after_the_last_step_lets_the_run_end_as_finished(tmp_path):
    """Ctrl-C between the final checkpoint and the summary: the run is complete on disk,
    so it ends as finished (exit 0) instead of 'aborted' with its summary cut short."""
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", LATE_SIGNAL, str(write_config(tmp_path, epochs=2)),
                           "--run-dir", str(run_dir), "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_done"] == 2

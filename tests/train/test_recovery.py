"""Recovery after crashes: which checkpoint a resume takes, best.npz made to agree with the
run, leftovers removed, the stop decision kept, readers racing a writer."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import yaml

from dlcli.config import load_config
from dlcli.errors import CheckpointError
from dlcli.train import checkpoint as ckpt
from dlcli.train import session
from dlcli.train.callbacks import Checkpointer
from tests.helpers.interrupt import interrupt_at

ROOT = pathlib.Path(__file__).resolve().parents[2]

CONFIG = {
    "name": "recovery",
    "seed": 4,
    "data": {"source": "synthetic:moons", "params": {"n_samples": 60, "noise": 0.3},
             "validation_split": 0.25},
    "model": {"layers": [{"type": "dense", "units": 6, "activation": "tanh"},
                         {"type": "dense", "units": 1, "activation": "sigmoid"}],
              "loss": "binary_crossentropy"},
    "training": {"epochs": 4, "batch_size": 15, "optimizer": {"type": "adam", "lr": 0.05},
                 "checkpoint_every": 1},
}
STEPS_PER_EPOCH = 3  # 45 training samples in batches of 15


def write_config(tmp_path, **training):
    data = json.loads(json.dumps(CONFIG))
    data["training"].update(training)
    path = tmp_path / "recovery.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def train(tmp_path, name="run", **training):
    run_dir = tmp_path / name
    session.train(load_config(write_config(tmp_path, **training)), run_dir=run_dir)
    return run_dir


def resume(run_dir, *overrides):
    config, _ = session.open_resume(run_dir, None, list(overrides), bool(overrides))
    return session.train(config, run_dir=run_dir, resume=True)


def flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def epoch_of(path):
    return int(ckpt.load(path)["trainer"]["epoch"])


def rows(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_damaged_last_is_never_rotated_into_previous(tmp_path):
    """The first of two crashes damaged last; the resumed run's first checkpoint must keep
    the good previous until its own last is committed (a second crash then loses nothing)."""
    run_dir = train(tmp_path, epochs=2)
    checkpoints = run_dir / "checkpoints"
    flip_a_bit(checkpoints / "last.npz")
    assert ckpt.rotate(checkpoints, "last", "previous") is False
    assert epoch_of(checkpoints / "previous.npz") == 1  # still verified, still epoch 1


def test_resume_considers_best_when_last_and_previous_are_damaged(tmp_path):
    run_dir = train(tmp_path, epochs=3)
    checkpoints = run_dir / "checkpoints"
    best_epoch = json.loads((run_dir / "summary.json").read_text())["best_epoch"]
    # last and best are one file when the last epoch was the best: separate them
    data = (checkpoints / "last.npz").read_bytes()
    (checkpoints / "last.npz").unlink()
    (checkpoints / "last.npz").write_bytes(data)
    flip_a_bit(checkpoints / "last.npz")
    (checkpoints / "previous.json").write_text("null")
    path, parts, warnings = ckpt.load_latest(checkpoints)
    assert path.name == "best.npz" and int(parts["trainer"]["epoch"]) == best_epoch
    assert any("resuming from checkpoints/best.npz" in w for w in warnings)
    assert any("previous.json: manifest field (top level)" in w for w in warnings)


def test_a_manifest_entry_set_to_null_is_refused_and_resume_falls_back(tmp_path):
    run_dir = train(tmp_path, epochs=2)
    checkpoints = run_dir / "checkpoints"
    manifest = json.loads((checkpoints / "last.json").read_text())
    sha, manifest["sha256"] = manifest["sha256"], None
    (checkpoints / "last.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"manifest field sha256: expected 64 hex"):
        ckpt.load(checkpoints / "last.npz", retry=False)
    name = next(iter(manifest["arrays"]))
    manifest["sha256"] = sha
    manifest["arrays"][name] = {"shape": "3", "dtype": 7}
    (checkpoints / "last.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=rf"manifest field arrays\.{name}\.shape"):
        ckpt.load(checkpoints / "last.npz", retry=False)
    path, parts, _ = ckpt.load_latest(checkpoints)
    assert path.name in ("previous.npz", "best.npz") and int(parts["trainer"]["epoch"]) == 1


def test_resume_repairs_a_best_that_lags_behind_the_run(tmp_path):
    """Killed after epoch 2's last was committed and before it was linked to best: best
    holds epoch 1 though epoch 2 improved. Resume relinks it; summary and best agree."""
    run_dir = train(tmp_path, epochs=2)
    checkpoints = run_dir / "checkpoints"
    assert json.loads((run_dir / "summary.json").read_text())["best_epoch"] == 2
    for suffix in (".npz", ".json"):  # best back to epoch 1's pair, as before the link
        (checkpoints / f"best{suffix}").unlink()
        os.link(checkpoints / f"previous{suffix}", checkpoints / f"best{suffix}")
    summary = resume(run_dir, "training.epochs=3")
    assert any("repaired" in w and "best.npz" in w for w in summary["warnings"])
    final = json.loads((run_dir / "summary.json").read_text())
    assert epoch_of(checkpoints / "best.npz") == final["best_epoch"]


def test_resume_repairs_a_best_left_uncommitted(tmp_path):
    run_dir = train(tmp_path, epochs=2)
    checkpoints = run_dir / "checkpoints"
    (checkpoints / "best.json").unlink()  # killed between the two renames of its link
    summary = resume(run_dir, "training.epochs=3")
    final = json.loads((run_dir / "summary.json").read_text())
    assert epoch_of(checkpoints / "best.npz") == final["best_epoch"]
    assert any("repaired" in w for w in summary["warnings"])


def test_no_temporary_survives_a_rotation_between_links_of_one_file(tmp_path):
    """last and previous already one inode (a crash after rotating, before the new last):
    rename(2) of two links to one file is a no-op that would leave the temporary name."""
    run_dir = train(tmp_path, epochs=1)
    checkpoints = run_dir / "checkpoints"
    assert ckpt.rotate(checkpoints, "last", "previous")
    (checkpoints / "previous.json").unlink()
    os.link(checkpoints / "last.json", checkpoints / "previous.json")
    assert ckpt.rotate(checkpoints, "last", "previous")
    assert sorted(p.name for p in checkpoints.iterdir() if p.name.startswith(".")) == []


def test_the_next_start_removes_every_temporary_of_a_dead_writer(tmp_path):
    run_dir = train(tmp_path, epochs=1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    leftovers = [run_dir / f".tmp-lock.{dead}", run_dir / f".tmp-summary.json.{dead}",
                 run_dir / "checkpoints" / f".tmp-previous.npz.{dead}",
                 run_dir / "checkpoints" / f".tmp-last.json.{dead}"]
    for path in leftovers:
        path.write_bytes(b"partial")
    resume(run_dir, "training.epochs=2")
    assert [p for p in leftovers if p.exists()] == []


def test_the_stop_decision_is_checkpointed(tmp_path, monkeypatch):
    """Early stopping fires at epoch E; killed right after E's checkpoint (before the
    summary), the resumed run must end at E too, not train E + 1."""
    stopping = {"early_stopping": {"patience": 1}, "epochs": 30,
                "optimizer": {"type": "sgd", "lr": 3.0}}
    reference = train(tmp_path, "reference", **stopping)
    stopped = json.loads((reference / "summary.json").read_text())
    assert stopped["stopped_early"] and stopped["epochs_done"] < 30
    original = Checkpointer.on_epoch_end

    def killed_after_checkpoint(self, trainer, epoch, logs):
        original(self, trainer, epoch, logs)
        if trainer.stop_training:
            raise SystemExit("killed")  # no summary, nothing after the checkpoint
    with monkeypatch.context() as patch:
        patch.setattr(Checkpointer, "on_epoch_end", killed_after_checkpoint)
        with pytest.raises(SystemExit):
            train(tmp_path, **stopping)
    run_dir = tmp_path / "run"
    assert not (run_dir / "summary.json").exists()
    summary = resume(run_dir)
    assert summary["epochs_done"] == stopped["epochs_done"]
    assert summary["stopped_early"]
    assert rows(run_dir) == rows(reference)


def test_a_signal_on_the_epoch_early_stopping_fires_ends_the_run_there(tmp_path, monkeypatch):
    stopping = {"early_stopping": {"patience": 1}, "epochs": 30,
                "optimizer": {"type": "sgd", "lr": 3.0}}
    reference = train(tmp_path, "reference", **stopping)
    epochs = json.loads((reference / "summary.json").read_text())["epochs_done"]
    with monkeypatch.context() as patch:
        interrupt_at(patch, epochs * STEPS_PER_EPOCH)  # the last step of the stopping epoch
        summary = session.train(load_config(write_config(tmp_path, **stopping)),
                                run_dir=tmp_path / "run")
    assert summary["status"] == "finished" and summary["epochs_done"] == epochs
    assert rows(tmp_path / "run") == rows(reference)


def test_a_reader_waits_for_a_pair_caught_mid_rotation(tmp_path):
    run_dir = train(tmp_path, epochs=1)
    last = run_dir / "checkpoints" / "last.npz"
    manifest = last.with_suffix(".json")
    saved = manifest.read_bytes()
    manifest.unlink()  # the writer removed the old commit and is renaming the new pair in
    timer = threading.Timer(0.05, lambda: manifest.write_bytes(saved))
    timer.start()
    try:
        parts = ckpt.load(last)
    finally:
        timer.join()
    assert int(parts["trainer"]["epoch"]) == 1


WRITER = textwrap.dedent("""
    import pathlib, sys
    import numpy as np
    from dlcli.train import checkpoint as ckpt
    directory = pathlib.Path(sys.argv[1])
    weight = np.empty((256, 256), dtype=np.float32)
    for k in range(1, 100_000):
        weight.fill(k)
        ckpt.rotate(directory, "last", "previous")
        ckpt.save(directory / "last.npz", {"w": weight}, None, None, {"step": np.int64(k)})
        if k == 1:
            print(k, flush=True)
""")


def test_readers_never_call_a_checkpoint_being_replaced_damaged(tmp_path):
    """``eval --checkpoint last`` while the run writes: 40 reads racing a writer that
    replaces the pair continuously all succeed and see a consistent pair."""
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(directory)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        writer.stdout.readline()
        for _ in range(40):
            parts = ckpt.load(directory / "last.npz")
            k = int(parts["trainer"]["step"])
            assert np.all(parts["model"]["w"] == k)
            time.sleep(0.005)
    finally:
        writer.kill()
        writer.communicate()

"""When checkpoints are written (issue 17, point 4): ``training.checkpoint_every`` epochs,
always at the end, on an interrupt and for a new best; by default as often as keeps the
writing at about a tenth of the training time. Metrics are appended, not rewritten."""

import csv
import json

import pytest

from dlcli.config import resolve
from dlcli.errors import ConfigError
from dlcli.train import checkpoint as ckpt
from dlcli.train import session
from tests.helpers.configs import moons_mlp


def record_saves(monkeypatch):
    """Epoch of every ``last`` checkpoint written (read back from the file itself)."""
    saved = []
    real = ckpt.save

    def save(path, model_state, optimizer_state=None, normalizer_state=None,
             trainer_state=None, **kw):
        real(path, model_state, optimizer_state, normalizer_state, trainer_state, **kw)
        saved.append((path.name, int(trainer_state["epoch"]),
                      float(trainer_state["best"])))
    monkeypatch.setattr(ckpt, "save", save)
    return saved


def train(tmp_path, name="run", **training):
    raw = moons_mlp(epochs=9, **training)
    raw["training"]["early_stopping"] = None
    return session.train(resolve(raw), run_dir=tmp_path / name)


def rows_of(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_every_n_epochs_plus_each_new_best_and_the_end(tmp_path, monkeypatch):
    saved = record_saves(monkeypatch)
    # "max" of a falling loss: few new bests, so the epochs between them show
    train(tmp_path, checkpoint_every=4, monitor="loss", monitor_mode="max")
    rows = rows_of(tmp_path / "run")
    expected = sorted({r["epoch"] for r in rows if r["epoch"] % 4 == 0 or r["best"]} | {1, 9})
    assert sorted({epoch for _, epoch, _ in saved}) == expected
    assert len(expected) < 9


def test_best_checkpoint_holds_the_best_epoch(tmp_path, monkeypatch):
    train(tmp_path, checkpoint_every=5)
    rows = rows_of(tmp_path / "run")
    best_epoch = max(r["epoch"] for r in rows if r["best"])
    parts = ckpt.load(tmp_path / "run" / "checkpoints" / "best.npz")
    assert int(parts["trainer"]["epoch"]) == best_epoch
    last = ckpt.load(tmp_path / "run" / "checkpoints" / "last.npz")
    assert int(last["trainer"]["epoch"]) == 9


def test_auto_writes_less_when_writing_is_slow(tmp_path, monkeypatch):
    import time
    saved = record_saves(monkeypatch)
    real = ckpt.save

    def slow(*args, **kw):  # a disk where a checkpoint costs far more than an epoch
        time.sleep(0.2)
        return real(*args, **kw)
    monkeypatch.setattr(ckpt, "save", slow)
    summary = train(tmp_path)  # checkpoint_every: auto (the default)
    epochs = {epoch for _, epoch, _ in saved}
    assert 9 in epochs and 1 in epochs  # the first epoch (to measure) and the end
    assert len(saved) <= 4, saved
    assert summary["checkpoint_every"] == "auto"
    # best.npz still holds the best epoch's weights, written when a write was due
    rows = rows_of(tmp_path / "run")
    best_epoch = max(r["epoch"] for r in rows if r["best"])
    parts = ckpt.load(tmp_path / "run" / "checkpoints" / "best.npz")
    assert int(parts["trainer"]["epoch"]) == best_epoch


def test_metrics_csv_is_appended_and_matches_the_jsonl(tmp_path, monkeypatch):
    from dlcli.train import io
    rewrites = []
    real = io.write_text
    monkeypatch.setattr(io, "write_text",
                        lambda path, text: (rewrites.append(path.name), real(path, text)))
    import dlcli.train.callbacks as callbacks
    monkeypatch.setattr(callbacks, "write_text", io.write_text, raising=False)
    train(tmp_path, checkpoint_every=1)
    assert "metrics.csv" not in rewrites
    rows = rows_of(tmp_path / "run")
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in table] == [r["epoch"] for r in rows]
    assert [float(r["loss"]) for r in table] == pytest.approx([r["loss"] for r in rows])


@pytest.mark.parametrize("value", [0, -2, "often", 1.5])
def test_checkpoint_every_is_checked(value):
    raw = moons_mlp(checkpoint_every=value)
    with pytest.raises(ConfigError) as info:
        resolve(raw)
    assert "training.checkpoint_every" in str(info.value)


def test_crash_between_checkpoints_resumes_as_one_run(tmp_path, monkeypatch):
    import numpy as np

    from dlcli.train.callbacks import MetricsLogger
    settings = dict(checkpoint_every=4, monitor="loss", monitor_mode="max")
    train(tmp_path, "whole", **settings)

    real = MetricsLogger.on_epoch_end

    def crash_after_six(self, trainer, epoch, logs):
        real(self, trainer, epoch, logs)
        if epoch == 6:  # the metrics of epochs 5-6 are on disk, the checkpoint is epoch 4's
            raise KeyboardInterrupt
    monkeypatch.setattr(MetricsLogger, "on_epoch_end", crash_after_six)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, "crashed", **settings)
    assert [r["epoch"] for r in rows_of(tmp_path / "crashed")] == [1, 2, 3, 4, 5, 6]
    monkeypatch.setattr(MetricsLogger, "on_epoch_end", real)

    raw = moons_mlp(epochs=9, **settings)
    raw["training"]["early_stopping"] = None
    session.train(resolve(raw), run_dir=tmp_path / "crashed", resume=True)
    rows = rows_of(tmp_path / "crashed")
    assert [r["epoch"] for r in rows] == list(range(1, 10))  # epochs 5-6 once, replayed
    whole = rows_of(tmp_path / "whole")
    assert [r["loss"] for r in rows] == [r["loss"] for r in whole]
    with open(tmp_path / "crashed" / "metrics.csv", newline="") as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == list(range(1, 10))
    a = ckpt.load(tmp_path / "whole" / "checkpoints" / "last.npz")["model"]
    b = ckpt.load(tmp_path / "crashed" / "checkpoints" / "last.npz")["model"]
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_diverged_run_keeps_its_held_best(tmp_path, monkeypatch):
    import time

    from dlcli.errors import TrainingError
    from dlcli.train.callbacks import MetricsLogger
    real_save = ckpt.save

    def slow(*args, **kw):  # writes far costlier than epochs: new bests are held
        time.sleep(0.2)
        return real_save(*args, **kw)
    monkeypatch.setattr(ckpt, "save", slow)
    def diverge_in_seven(self, trainer, epoch):  # as a step of epoch 7 would
        if epoch == 7:
            raise TrainingError("the loss became nan", status="diverged")
    monkeypatch.setattr(MetricsLogger, "on_epoch_begin", diverge_in_seven, raising=False)
    with pytest.raises(TrainingError):
        train(tmp_path)
    rows = rows_of(tmp_path / "run")
    best_epoch = max(r["epoch"] for r in rows if r["best"])
    assert best_epoch > 1  # held, not written when it was reached
    parts = ckpt.load(tmp_path / "run" / "checkpoints" / "best.npz")
    assert int(parts["trainer"]["epoch"]) == best_epoch

"""When checkpoints are written (issue 17, point 4): ``training.checkpoint_every`` epochs,
always at the end, on an interrupt and for a new best; by default (``auto``) as often as
keeps all the writing (checkpoints, metric lines, copies of new bests) within 8% of the
training time, a new best being the first thing each write saves. Metrics are appended, not
rewritten, and fsynced before each checkpoint."""

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

    from dlcli.train import cadence
    monkeypatch.setattr(cadence, "FIRST_S", 0.0)  # the first write after the first epoch
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


class FakeTrainer:
    """What :class:`Cadence` reads of a trainer."""
    interrupt_signal = None
    stop_training = False

    def __init__(self, epochs):
        self.epochs = epochs


def simulate(epochs, epoch_s, write_s, line_s):
    """Run the auto cadence over ``epochs`` epochs of ``epoch_s`` seconds, each followed by
    a metric line of ``line_s`` and, when due, a checkpoint write of ``write_s`` (a fake
    clock). Returns (epochs written, seconds spent writing, total seconds)."""
    from dlcli.train.cadence import Cadence
    now = [0.0]
    cadence = Cadence("auto", clock=lambda: now[0])
    trainer, written, spent = FakeTrainer(epochs), [], 0.0
    for epoch in range(1, epochs + 1):
        now[0] += epoch_s + line_s
        cadence.spent_s += line_s
        spent += line_s
        if cadence.due(trainer, epoch, improved=False):
            now[0] += write_s
            cadence.wrote(write_s)
            cadence.spent_s += write_s
            spent += write_s
            written.append(epoch)
    return written, spent, now[0]


@pytest.mark.parametrize("epochs, epoch_s, write_s, line_s", [
    (300, 0.003, 0.005, 0.0001),  # configs/xor_mlp.yaml's sizes: writes cost epochs
    (1000, 0.003, 0.005, 0.0001),
    (50, 0.05, 0.004, 0.0001),
    (2000, 0.01, 0.2, 0.0),  # a slow disk: a write costs 20 epochs
])
def test_auto_keeps_all_writing_within_the_budget(epochs, epoch_s, write_s, line_s):
    from dlcli.train.cadence import BUDGET, FIRST_S, RESERVE
    written, spent, total = simulate(epochs, epoch_s, write_s, line_s)
    assert written[-1] == epochs  # always at the end
    # the first write: after the first epoch ending at least FIRST_S into training, at
    # least FIRST_S before the end (else at the end)
    step = epoch_s + line_s
    first = next((e for e in range(1, epochs + 1)
                  if e * step >= FIRST_S and (epochs - e) * step >= FIRST_S), epochs)
    assert written[0] == first
    assert spent <= BUDGET * total + 1e-12, (spent / total, written)
    # and the budget is used, not starved: one write more would not have fitted
    if total - write_s >= FIRST_S and written != list(range(written[0], epochs + 1)):
        assert spent + RESERVE * write_s > BUDGET * total


def test_a_run_too_short_for_its_two_writes_still_makes_them():
    """The first write (it measures the cost) and the last are made whatever they cost: on
    a slow disk a short run spends more than the budget (docs/faults.md: 5 s, 0.5 s writes,
    17%)."""
    from dlcli.train.cadence import BUDGET, FIRST_S
    epochs = round(2.5 * FIRST_S / 0.01)  # 2.5 FIRST_S (5 s) of 10 ms epochs, 0.5 s writes
    written, spent, total = simulate(epochs, 0.01, 0.5, 0.0)
    assert written == [round(FIRST_S / 0.01), epochs]
    assert spent / total == pytest.approx(1.0 / (epochs * 0.01 + 1.0)) and spent / total > BUDGET


def test_auto_first_write_measures_when_epochs_are_long():
    from dlcli.train.cadence import BUDGET
    written, spent, total = simulate(20, 2.0, 0.05, 0.0)  # 2 s epochs, 50 ms writes
    assert written == list(range(1, 21))  # every epoch: 1 write in 40 epochs' time
    assert spent / total < BUDGET


def test_auto_short_run_writes_only_at_the_end():
    """configs/xor_mlp.yaml's 50 epochs (~0.2 s): one write, at the end; a run that would
    end less than FIRST_S after reaching it makes no first write before the end either."""
    from dlcli.train.cadence import FIRST_S
    assert simulate(50, 0.004, 0.005, 0.0001)[0] == [50]
    first = round(FIRST_S / 0.01)  # 10 ms epochs
    assert simulate(round(1.5 * first), 0.01, 0.005, 0.0)[0] == [round(1.5 * first)]
    assert simulate(round(2.5 * first), 0.01, 0.005, 0.0)[0][0] == first


# monitored values (min): new bests at epochs 1, 2, 3, 6
SCRIPTED = {1: 1.0, 2: 0.9, 3: 0.8, 4: 0.85, 5: 0.86, 6: 0.7, 7: 0.75, 8: 0.76, 9: 0.77}


def scripted_bests(monkeypatch, due_epochs):
    """The monitor sees SCRIPTED; ``auto`` writes at ``due_epochs`` (and the end)."""
    from dlcli.train.cadence import Cadence
    from dlcli.train.callbacks import Monitor
    real_due = Cadence.due

    def due(self, trainer, epoch, improved):
        if self.every != "auto":
            return real_due(self, trainer, epoch, improved)
        return self.final(trainer, epoch) or epoch in due_epochs
    monkeypatch.setattr(Cadence, "due", due)
    monkeypatch.setattr(Monitor, "on_epoch_end", lambda self, trainer, epoch, logs:
                        logs.__setitem__("best", self.update({self.name: SCRIPTED[epoch]},
                                                             epoch)))


def same_state(a, b):
    import numpy as np
    return all(np.array_equal(a[part][k], b[part][k])
               for part in ("model", "optimizer") for k in a[part])


def test_a_held_best_at_the_end_is_written_into_best(tmp_path, monkeypatch):
    scripted_bests(monkeypatch, due_epochs=())
    saved = record_saves(monkeypatch)
    train(tmp_path, "every", checkpoint_every=1)
    saved.clear()
    train(tmp_path, "auto")
    # nothing due before the end: the held best of epoch 6 goes straight into best
    assert [(name, epoch) for name, epoch, _ in saved] == [("best.npz", 6), ("last.npz", 9)]
    for name in ("best", "last"):
        a, b = (ckpt.load(tmp_path / run / "checkpoints" / f"{name}.npz")
                for run in ("every", "auto"))
        assert same_state(a, b)


def test_a_held_best_is_the_first_thing_the_next_write_saves(tmp_path, monkeypatch):
    """A new best reached between two writes is written (as last, linked to best) by the
    next write, ahead of the current state, and a run resumed from it ends as the
    uninterrupted one."""
    import numpy as np

    from dlcli.train.callbacks import MetricsLogger
    scripted_bests(monkeypatch, due_epochs=(1, 5, 8))
    saved = record_saves(monkeypatch)
    train(tmp_path, "every", checkpoint_every=1)
    saved.clear()
    train(tmp_path, "auto")
    assert [epoch for _, epoch, _ in saved] == [1, 3, 6, 9]
    checkpoints = {name: tmp_path / name / "checkpoints" for name in ("every", "auto")}
    best = {name: ckpt.load(d / "best.npz") for name, d in checkpoints.items()}
    assert int(best["auto"]["trainer"]["epoch"]) == 6
    assert same_state(best["every"], best["auto"])  # the best epoch's weights and moments

    # killed in epoch 9, before its checkpoint: last holds epoch 6 (the held best, written
    # at epoch 8), the rows of epochs 7-9 are replayed
    real = MetricsLogger.on_epoch_end

    def crash_in_nine(self, trainer, epoch, logs):
        real(self, trainer, epoch, logs)
        if epoch == 9:
            raise KeyboardInterrupt
    monkeypatch.setattr(MetricsLogger, "on_epoch_end", crash_in_nine)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, "crashed")
    assert int(ckpt.load(tmp_path / "crashed" / "checkpoints" / "last.npz")
               ["trainer"]["epoch"]) == 6
    monkeypatch.setattr(MetricsLogger, "on_epoch_end", real)
    raw = moons_mlp(epochs=9)
    raw["training"]["early_stopping"] = None
    session.train(resolve(raw), run_dir=tmp_path / "crashed", resume=True)
    assert [r["epoch"] for r in rows_of(tmp_path / "crashed")] == list(range(1, 10))
    assert [r["loss"] for r in rows_of(tmp_path / "crashed")] == \
        [r["loss"] for r in rows_of(tmp_path / "every")]
    a = ckpt.load(checkpoints["every"] / "last.npz")["model"]
    b = ckpt.load(tmp_path / "crashed" / "checkpoints" / "last.npz")["model"]
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_metric_rows_are_fsynced_before_each_checkpoint(tmp_path, monkeypatch):
    """Each checkpoint is preceded by an fsync of ``metrics.jsonl`` holding its epoch's row
    (a power failure cannot leave a checkpoint ahead of the rows a resume keeps; the CSV is
    rebuilt from it on resume) and finds the CSV rows handed to the OS."""
    import os
    events = []
    run_dir = tmp_path / "run"
    real_fsync, real_save = os.fsync, ckpt.save

    def lines(name):
        return (run_dir / name).read_text().count("\n")

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("metrics.jsonl"):
            events.append(("sync", lines("metrics.jsonl")))
        return real_fsync(fd)

    def save(path, *args, **kw):
        events.append(("save", int(args[3]["epoch"]), lines("metrics.csv")))
        return real_save(path, *args, **kw)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(ckpt, "save", save)
    train(tmp_path, checkpoint_every=3, monitor="loss", monitor_mode="max")
    saves = [i for i, e in enumerate(events) if e[0] == "save"]
    assert len(saves) >= 3
    for i in saves:
        _, epoch, csv_lines = events[i]
        assert events[i - 1][0] == "sync" and events[i - 1][1] >= epoch  # a line per epoch
        assert csv_lines >= epoch + 1  # and the header


def test_a_resumed_run_estimates_its_end_from_its_own_epochs():
    """Resumed after epoch 400 of 700, epochs of 1/64 s: FIRST_S (2 s = 128 epochs) in,
    172 epochs (2.7 s) are left, so the first write comes then (an estimate from all 528
    epochs would see 0.65 s left and write nothing before the end)."""
    from dlcli.train.cadence import FIRST_S, Cadence
    now = [0.0]
    cadence = Cadence("auto", clock=lambda: now[0])
    cadence.start(400)
    trainer, first = FakeTrainer(700), None
    for epoch in range(401, 701):
        now[0] += 1 / 64
        if cadence.due(trainer, epoch, improved=False):
            first = epoch
            break
    assert first == 400 + round(FIRST_S * 64)

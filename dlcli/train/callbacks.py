"""Callbacks: the only parts of training that print or write files."""

import csv
import io
import json
import math
import pathlib

import numpy as np

from dlcli.errors import TrainingError
from dlcli.train import checkpoint as ckpt
from dlcli.train import recovery
from dlcli.train.io import write_text
from dlcli.train.metrics import HIGHER_IS_BETTER
from dlcli.train.trainer import Callback


def json_safe(logs: dict) -> dict:
    """Strict JSON: a non-finite number becomes null and is listed under ``nonfinite``."""
    out, bad = {}, []
    for key, value in logs.items():
        if isinstance(value, (float, np.floating)) and not math.isfinite(value):
            out[key] = None
            bad.append(key)
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    if bad:
        out["nonfinite"] = bad
    return out


class MetricsLogger(Callback):
    """Appends one JSON object per epoch to ``metrics.jsonl`` (a complete line per record)
    and one row to ``metrics.csv`` (rewritten whole only when a column appears, or at the
    start of a resumed run, from the rows kept). ``rows`` are the records of earlier epochs
    of the same run (on resume)."""

    def __init__(self, run_dir: pathlib.Path, rows: list[dict] | None = None):
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        self.rows: list[dict] = list(rows or [])
        self.columns: list[str] | None = None  # the CSV header written
        self._files: dict = {}  # open for appending while training runs

    def _append(self, path, text: str) -> None:
        """Append and flush (to the OS: a killed process loses nothing it wrote)."""
        handle = self._files.get(path)
        if handle is None:
            handle = self._files[path] = open(path, "a", encoding="utf-8", newline="")
        handle.write(text)
        handle.flush()

    def _close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files = {}

    def on_train_end(self, trainer, logs):
        self._close()

    def on_exception(self, trainer, exc):
        self._close()

    def _columns(self) -> list[str]:
        columns = []
        for r in self.rows:
            columns += [k for k in r if k not in columns and k != "nonfinite"]
        return columns

    def _rewrite_csv(self) -> None:
        handle = self._files.pop(self.csv, None)
        if handle is not None:
            handle.close()
        self.columns = self._columns()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.csv, buffer.getvalue())

    def on_train_begin(self, trainer):
        if self.rows or self.csv.exists():  # resumed: what metrics.jsonl kept, no replay
            self._fail_as_training_error(self._rewrite_csv)

    def on_epoch_end(self, trainer, epoch, logs):
        row = json_safe(logs)
        self.rows.append(row)

        def write():
            self._append(self.jsonl, json.dumps(row, allow_nan=False) + "\n")
            if self.columns is not None and any(k not in self.columns
                                                for k in row if k != "nonfinite"):
                self._rewrite_csv()  # a new column: the header changes
                return
            buffer = io.StringIO()
            if self.columns is None:  # a new run's first row: the file starts here
                self.columns = self._columns()
                csv.DictWriter(buffer, fieldnames=self.columns).writeheader()
            csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore").writerow(row)
            self._append(self.csv, buffer.getvalue())
        self._fail_as_training_error(write)

    def _fail_as_training_error(self, write):
        try:
            write()
        except OSError as exc:
            raise TrainingError(f"cannot write {self.jsonl.parent}: {exc.strerror}; the last "
                                "good checkpoint is checkpoints/last.npz") from None


class Monitor(Callback):
    """Tracks the best value of one metric (``min`` or ``max``) and epochs without improving.

    As the first callback it marks each epoch's logs with ``best`` (improved or not), which the
    loggers record and the checkpointer and early stopping act on."""

    def __init__(self, name: str, mode: str = "auto", min_delta: float = 0.0):
        self.name = name
        if mode == "auto":
            mode = "max" if name in HIGHER_IS_BETTER else "min"
        self.mode = mode
        self.min_delta = min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = 0
        self.wait = 0

    def update(self, logs: dict, epoch: int) -> bool:
        """Record ``logs``; True when the metric improved by more than ``min_delta``."""
        value = logs.get(self.name)
        if value is None or not math.isfinite(value):
            self.wait += 1
            return False
        better = (value < self.best - self.min_delta if self.mode == "min"
                  else value > self.best + self.min_delta)
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
        else:
            self.wait += 1
        return better

    def on_epoch_end(self, trainer, epoch, logs):
        logs["best"] = self.update(logs, epoch)

    def state_dict(self) -> dict:
        return {"best": np.float64(self.best), "best_epoch": np.int64(self.best_epoch),
                "wait": np.int64(self.wait)}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])


class Checkpointer(Callback):
    """Writes ``checkpoints/last.npz`` when :class:`~dlcli.train.cadence.Cadence` says so
    (``training.checkpoint_every``; always at the end and when interrupted) and
    ``checkpoints/best.npz`` for each new best of the monitored metric (Keras'
    ModelCheckpoint with save_best_only), by the protocol of :mod:`dlcli.train.recovery`:
    the current ``last`` is linked to ``previous`` only when it verifies, and a new ``last``
    is written only while another pair holds a verified copy. Runs after early stopping, so
    the stop decision is part of the checkpointed state."""

    def __init__(self, run_dir: pathlib.Path, monitor: Monitor, normalizer_state: dict,
                 every="auto", stopper=None):
        from dlcli.train.cadence import Cadence
        self.dir = run_dir / "checkpoints"
        self.monitor = monitor
        self.stopper = stopper
        self.normalizer_state = normalizer_state
        self.last_good = None
        self.cadence = Cadence(every)  # when to write (dlcli.train.cadence)
        self.held_best = None  # a new best not yet written (checkpoint_every: auto)

    def save_last(self, trainer, held=None):
        """Keep the current ``last`` as ``previous``, then write and commit the new ``last``
        (``held``: a :func:`~dlcli.train.cadence.snapshot` instead of the current state)."""
        state = {**trainer.state_dict(), **self.monitor.state_dict()}
        if self.stopper is not None:
            state.update(self.stopper.state_dict())
        model_state, optimizer_state = trainer.model.state_dict(), trainer.optimizer.state_dict()
        if held is not None:
            model_state, optimizer_state, state = held
        path = self.dir / "last.npz"
        try:
            recovery.rotate(self.dir, "last", "previous")
            ckpt.save(path, model_state, optimizer_state, self.normalizer_state, state)
        except OSError as exc:
            good = self.last_good or "none yet"
            raise TrainingError(f"cannot write {path}: {exc.strerror or exc}; the last good "
                                f"checkpoint is {good}") from None
        self.last_good = f"{path} (epoch {int(state['epoch'])}, step {int(state['step'])})"

    def _flush_best(self, trainer):
        """Write a held best as ``last`` and link it to ``best``, before the current state."""
        held, self.held_best = self.held_best, None
        if held is not None:
            self.save_last(trainer, held)
            self._link_best()

    def on_epoch_end(self, trainer, epoch, logs):
        improved = logs.get("best", False)
        if not self.cadence.due(trainer, epoch, improved):
            if improved:
                from dlcli.train.cadence import snapshot
                started = self.cadence.clock()
                self.held_best = snapshot(trainer, self.monitor)
                self.cadence.held_s += self.cadence.clock() - started
            return
        started = self.cadence.clock()
        if not improved:
            self._flush_best(trainer)
        self.held_best = None
        self.save_last(trainer)
        # a run without any improvement yet still gets a best (summary: no best epoch); one
        # whose best was removed on resume gets it back at its next improvement only
        if improved or (self.monitor.best_epoch == 0 and not (self.dir / "best.npz").exists()):
            self._link_best()
        self.cadence.wrote(epoch, started)

    def on_train_end(self, trainer, logs):
        if trainer.epoch and self.cadence.epoch != trainer.epoch:  # always at the end
            self._flush_best(trainer)
            self.save_last(trainer)

    def _link_best(self):
        # The same state as last: link it (files are replaced, never rewritten in place).
        try:
            recovery.rotate(self.dir, "last", "best")
        except OSError as exc:
            raise TrainingError(f"cannot write {self.dir / 'best.npz'}: "
                                f"{exc.strerror or exc}; the last good checkpoint is "
                                f"{self.last_good}") from None

    def on_interrupt(self, trainer, signum):
        self._flush_best(trainer)
        self.save_last(trainer)

    def on_exception(self, trainer, exc):
        # A run that diverged still leaves its best weights in best.npz (the diverged
        # state itself is never written); a failed write is not retried.
        if self.held_best is not None and isinstance(exc, TrainingError) \
                and getattr(exc, "status", None) == "diverged":
            try:
                self._flush_best(trainer)
            except TrainingError:
                pass


class EarlyStopping(Callback):
    """Stops when the monitored metric has not improved for ``patience`` epochs."""

    def __init__(self, monitor: Monitor, patience: int):
        self.monitor = monitor
        self.patience = patience
        self.stopped_epoch = None

    def on_epoch_end(self, trainer, epoch, logs):
        # wait > 0: an epoch that improved never stops the run (patience 0 would otherwise
        # stop every run after its first epoch).
        if self.monitor.wait > 0 and self.monitor.wait >= self.patience:
            trainer.stop_training = True
            self.stopped_epoch = epoch

    def state_dict(self) -> dict:
        return {"stopped_epoch": np.int64(self.stopped_epoch or 0)}

    def load_state_dict(self, state: dict) -> None:
        self.stopped_epoch = int(state.get("stopped_epoch", 0)) or None

"""Callbacks: the only parts of training that print or write files."""

import csv
import io
import json
import math
import os
import pathlib
import time

import numpy as np

from dlcli.errors import TrainingError
from dlcli.train import checkpoint as ckpt
from dlcli.train import recovery
from dlcli.train.io import write_text
from dlcli.train.metrics import HIGHER_IS_BETTER
from dlcli.train.trainer import Callback

FLUSH_S = 1.0  # metric lines reach the OS at least this often (and before each checkpoint)


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
    """Appends one JSON object per epoch to ``metrics.jsonl`` and one row to ``metrics.csv``
    (rewritten whole only when a column appears, or at the start of a resumed run, from the
    rows kept). The rows are written, as whole lines, at least every :data:`FLUSH_S` seconds
    and before each checkpoint, which :meth:`sync` makes durable first (``metrics.jsonl``
    fsynced; the CSV is rebuilt from it on resume): a killed process loses only rows after
    its last checkpoint, which a resume drops and trains again anyway. ``rows`` are the
    records of earlier epochs of the same run (on resume), already in ``metrics.jsonl``."""

    def __init__(self, run_dir: pathlib.Path, rows: list[dict] | None = None, cadence=None):
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        self.rows: list[dict] = list(rows or [])
        self.columns: list[str] | None = None  # the CSV header written
        self._files: dict = {}  # open for appending while training runs
        self._written = len(self.rows)  # rows[:_written] are in the files
        self._synced = None  # len(rows) at the last sync
        self.cadence = cadence  # told what the rows cost (the checkpoints' budget)
        self._flushed = time.perf_counter()

    def sync(self) -> None:
        """Write the pending rows and fsync ``metrics.jsonl`` (before a checkpoint commits
        the epochs it holds)."""
        if self._synced == len(self.rows):
            return  # nothing new since the last time
        self._synced = len(self.rows)

        def write():
            self._flush()
            handle = self._files.get(self.jsonl)
            if handle is not None:
                os.fsync(handle.fileno())
            elif self.jsonl.exists():  # closed already (a write after training ended)
                fd = os.open(self.jsonl, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._fail_as_training_error(write)

    def _append(self, path, text: str) -> None:
        """Append whole lines and hand them to the OS (a killed process loses none)."""
        handle = self._files.get(path)
        if handle is None:
            handle = self._files[path] = open(path, "a", encoding="utf-8", newline="")
        handle.write(text)
        handle.flush()

    def _flush(self) -> None:
        """Write the rows not yet written to both files."""
        self._flushed = time.perf_counter()
        new = self.rows[self._written:]
        if not new:
            return
        self._append(self.jsonl, "".join(json.dumps(r, allow_nan=False) + "\n" for r in new))
        self._written = len(self.rows)
        if self.columns is not None and any(k not in self.columns and k != "nonfinite"
                                            for r in new for k in r):
            self._rewrite_csv()  # a new column: the header changes
            return
        buffer = io.StringIO()
        if self.columns is None:  # a new run's first rows: the file starts here
            self.columns = self._columns()
            csv.DictWriter(buffer, fieldnames=self.columns).writeheader()
        csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore").writerows(new)
        self._append(self.csv, buffer.getvalue())

    def _close(self) -> None:
        try:
            self._fail_as_training_error(self._flush)
        finally:
            for handle in self._files.values():
                handle.close()
            self._files = {}

    def on_train_end(self, trainer, logs):
        self._close()

    def on_exception(self, trainer, exc):
        try:
            self._close()
        except TrainingError:
            pass  # the exception being raised says more

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
        if self.cadence is None:
            return self._epoch_end(logs)
        began = self.cadence.clock()
        try:
            self._epoch_end(logs)
        finally:
            self.cadence.spent_s += self.cadence.clock() - began

    def _epoch_end(self, logs):
        self.rows.append(json_safe(logs))
        if time.perf_counter() - self._flushed >= FLUSH_S:
            self._fail_as_training_error(self._flush)

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
    (``training.checkpoint_every``; always at the end and when interrupted) and links it to
    ``checkpoints/best.npz`` for each new best of the monitored metric (Keras'
    ModelCheckpoint with save_best_only; with ``auto`` a new best between two writes is
    held in memory and is the first thing the next write saves), by the protocol of
    :mod:`dlcli.train.recovery`: the current ``last`` is linked to ``previous`` only when it
    verifies, and a new ``last`` is written only while another pair holds a verified copy.
    ``sync`` (the metrics logger's) makes the metric rows durable before each write. Runs
    after early stopping, so the stop decision is part of the checkpointed state."""

    def __init__(self, run_dir: pathlib.Path, monitor: Monitor, normalizer_state: dict,
                 every="auto", stopper=None, sync=None):
        from dlcli.train.cadence import Cadence
        self.dir = run_dir / "checkpoints"
        self.monitor = monitor
        self.stopper = stopper
        self.normalizer_state = normalizer_state
        self.sync = sync
        self.last_good = None
        self.cadence = Cadence(every)  # when to write (dlcli.train.cadence)
        self.held_best = None  # a new best not yet written (checkpoint_every: auto)
        self.written = None  # (epoch, step) of the state last written

    def save_last(self, trainer, held=None):
        """Keep the current ``last`` as ``previous``, then write and commit the new ``last``
        (``held``: a :func:`~dlcli.train.cadence.snapshot` instead of the current state)."""
        state = {**trainer.state_dict(), **self.monitor.state_dict()}
        if self.stopper is not None:
            state.update(self.stopper.state_dict())
        parts = held or (trainer.model.state_dict(), trainer.optimizer.state_dict(), state)
        self._write("last", parts)

    def _write(self, name, parts):
        """Write and commit the pair ``name`` (``last``: the current one kept as
        ``previous`` first) from (model, optimizer, loop state)."""
        started = self.cadence.clock()
        model_state, optimizer_state, state = parts
        if self.sync is not None:  # the metric rows up to this checkpoint are on disk first
            self.sync()
        path = self.dir / f"{name}.npz"
        try:
            if name == "last":
                recovery.rotate(self.dir, "last", "previous")
            ckpt.save(path, model_state, optimizer_state, self.normalizer_state, state)
        except OSError as exc:
            good = self.last_good or "none yet"
            raise TrainingError(f"cannot write {path}: {exc.strerror or exc}; the last good "
                                f"checkpoint is {good}") from None
        position = (int(state["epoch"]), int(state["step"]))
        if name == "last":
            self.written = position
        self.last_good = f"{path} (epoch {position[0]}, step {position[1]})"
        self.cadence.wrote(self.cadence.clock() - started)

    def _flush_best(self, trainer, final=False):
        """Write a held best: as ``last`` linked to ``best`` (``final``: into ``best``
        directly, the current state being written as ``last`` next)."""
        held, self.held_best = self.held_best, None
        if held is None:
            return
        if final:
            self._write("best", held)
        else:
            self.save_last(trainer, held)
            self._link_best()

    def on_train_begin(self, trainer):
        self.cadence.start(trainer.epoch)

    def on_epoch_end(self, trainer, epoch, logs):
        began = self.cadence.clock()
        try:
            self._epoch_end(trainer, epoch, bool(logs.get("best", False)))
        finally:  # every moment spent here counts against the budget
            self.cadence.spent_s += self.cadence.clock() - began

    def _epoch_end(self, trainer, epoch, improved):
        if not self.cadence.due(trainer, epoch, improved):
            if improved:
                from dlcli.train.cadence import snapshot
                self.held_best = snapshot(trainer, self.monitor, self.held_best)
            return
        final = self.cadence.final(trainer, epoch)
        if improved:
            self.held_best = None  # superseded by this epoch's own state
        elif self.held_best is not None:
            self._flush_best(trainer, final)  # a held best is saved first
            if not final:
                return  # the current state waits for the next write
        self.save_last(trainer)
        # a run without any improvement yet still gets a best (summary: no best epoch); one
        # whose best was removed on resume gets it back at its next improvement only
        if improved or (self.monitor.best_epoch == 0 and not (self.dir / "best.npz").exists()):
            self._link_best()

    def on_train_end(self, trainer, logs):
        if trainer.epoch and (self.written is None or self.written[0] != trainer.epoch):
            self._flush_best(trainer, final=True)  # always at the end
            self.save_last(trainer)

    def _link_best(self):
        # The same state as last: link it (files are replaced, never rewritten in place).
        started = self.cadence.clock()
        try:
            recovery.rotate(self.dir, "last", "best")
        except OSError as exc:
            raise TrainingError(f"cannot write {self.dir / 'best.npz'}: "
                                f"{exc.strerror or exc}; the last good checkpoint is "
                                f"{self.last_good}") from None
        self.cadence.write_s += self.cadence.clock() - started

    def on_interrupt(self, trainer, signum):
        self._flush_best(trainer, final=True)
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

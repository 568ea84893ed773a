"""Callbacks: the only parts of training that print or write files."""

import csv
import io
import json
import math
import pathlib

import numpy as np

from dlcli.train import checkpoint as ckpt
from dlcli.train.io import write_text
from dlcli.train.metrics import HIGHER_IS_BETTER
from dlcli.train.trainer import Callback


def json_safe(logs: dict) -> dict:
    """Strict JSON: a non-finite number becomes null and is listed under ``nonfinite``."""
    out, bad = {}, []
    for key, value in logs.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
            bad.append(key)
        else:
            out[key] = value
    if bad:
        out["nonfinite"] = bad
    return out


class MetricsLogger(Callback):
    """Appends one JSON object per epoch to ``metrics.jsonl`` (flushed and fsynced per line)
    and rewrites ``metrics.csv`` from it."""

    def __init__(self, run_dir: pathlib.Path):
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        self.rows: list[dict] = []

    def on_epoch_end(self, trainer, epoch, logs):
        row = json_safe(logs)
        self.rows.append(row)
        with open(self.jsonl, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, allow_nan=False) + "\n")
            handle.flush()
        columns = []
        for r in self.rows:
            columns += [k for k in r if k not in columns and k != "nonfinite"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.csv, buffer.getvalue())


class Monitor:
    """Tracks the best value of one metric (``min`` or ``max``) and epochs without improving."""

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

    def state(self) -> dict:
        return {"best": np.float64(self.best), "best_epoch": np.int64(self.best_epoch),
                "wait": np.int64(self.wait)}


class Checkpointer(Callback):
    """Writes ``checkpoints/last.npz`` every epoch and ``checkpoints/best.npz`` when the
    monitored metric improves (Keras' ModelCheckpoint with save_best_only)."""

    def __init__(self, run_dir: pathlib.Path, monitor: Monitor, normalizer_state: dict):
        self.dir = run_dir / "checkpoints"
        self.monitor = monitor
        self.normalizer_state = normalizer_state

    def _save(self, trainer, name):
        state = {"epoch": np.int64(trainer.epoch), "step": np.int64(trainer.step),
                 "rng": ckpt.rng_to_array(trainer.rng), **self.monitor.state()}
        ckpt.save(self.dir / name, trainer.model.state_dict(), trainer.optimizer.state_dict(),
                  self.normalizer_state, state)

    def on_epoch_end(self, trainer, epoch, logs):
        improved = self.monitor.update(logs, epoch)
        logs["best"] = improved
        self._save(trainer, "last.npz")
        if improved or not (self.dir / "best.npz").exists():
            self._save(trainer, "best.npz")


class EarlyStopping(Callback):
    """Stops when the monitored metric has not improved for ``patience`` epochs."""

    def __init__(self, monitor: Monitor, patience: int):
        self.monitor = monitor
        self.patience = patience
        self.stopped_epoch = None

    def on_epoch_end(self, trainer, epoch, logs):
        if self.monitor.wait > self.patience:
            trainer.stop_training = True
            self.stopped_epoch = epoch

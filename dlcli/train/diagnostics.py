"""Training diagnostics per layer and epoch, appended to ``diagnostics.jsonl``.

For each layer with parameters (all of its tensors taken together as one vector θ):

  grad_norm     ‖g‖₂ of the batch gradient, averaged over the epoch's optimizer steps
                (read in ``on_batch_end``: after the step, before the next backward,
                so ``layer.grads`` still holds the gradient the step used, after clipping)
  weight_norm   ‖θ‖₂ at the end of the epoch
  update_ratio  ‖Δθ‖₂ / ‖θ‖₂ of the epoch's last step (Δθ = θ after − θ before it), the
                figure Karpathy suggests keeping near 1e-3

For each layer followed by (or being) a ReLU, sigmoid or tanh activation, from the
activations of the training forward pass of each batch:

  dead_fraction       ReLU: the fraction of units whose output is 0 for every sample of the
                      batch (a unit is an output feature of a dense layer, a channel of a
                      convolution), averaged over the epoch's batches
  saturated_fraction  sigmoid: outputs outside [0.01, 0.99]; tanh: |output| > 0.99; the
                      fraction of all output values of the batch, averaged over batches

An output activation fused into the loss never runs during training and is skipped.
One JSON object per epoch: ``{"epoch": k, "layers": {"dense1": {...}, ...}}``, flushed per
line like metrics.jsonl. At the end of training, a layer whose last epoch had more than
half of its units dead (or saturated) gets a warning in :attr:`Diagnostics.warnings`.
"""

import json
import math
import pathlib

import numpy as np

from dlcli.nn.activations import Activation
from dlcli.train.trainer import Callback

SIGMOID_BOUNDS = (0.01, 0.99)
TANH_BOUND = 0.99


def dead_fraction(mask: np.ndarray) -> float:
    """Fraction of units never active in the batch; ``mask`` is (N, units) or (N, C, ...),
    True where the ReLU's input was positive. A unit is axis 1 (a feature or a channel)."""
    axes = tuple(i for i in range(mask.ndim) if i != 1)
    alive = np.any(mask, axis=axes)
    return float(1.0 - np.mean(alive))


def saturated_fraction(y: np.ndarray, kind: str) -> float:
    """Fraction of the activation's outputs in its flat tails."""
    if kind == "sigmoid":
        lo, hi = SIGMOID_BOUNDS
        return float(np.mean((y < lo) | (y > hi)))
    return float(np.mean(np.abs(y) > TANH_BOUND))


def _norm(arrays) -> float:
    return math.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays))


def _json_float(value):
    return value if value is None or math.isfinite(value) else None


class _Tracked:
    """One entry of the report: a parameterised layer and/or the activation after it."""

    def __init__(self, name, layer, activation, measured=True):
        self.name = name
        self.layer = layer  # None for a standalone activation layer
        self.activation = activation
        kind = activation.activation_name if activation is not None else None
        self.kind = kind if measured and kind in ("relu", "sigmoid", "tanh") else None
        self.reset()

    def reset(self):
        self.grad_norms: list[float] = []
        self.values: list[float] = []
        self.before = None

    def params(self):
        return list(self.layer.params.values()) if self.layer is not None else []

    def grads(self):
        return list(self.layer.grads.values()) if self.layer is not None else []


class Diagnostics(Callback):
    """Per-layer gradient/weight/update norms and activation health (see module docstring).

    ``run_dir`` None keeps the rows in :attr:`rows` only (for tests and notebooks).
    ``dead_threshold`` and ``saturated_threshold`` set when the end-of-training warning fires.
    """

    def __init__(self, run_dir=None, *, dead_threshold: float = 0.5,
                 saturated_threshold: float = 0.5):
        self.path = pathlib.Path(run_dir) / "diagnostics.jsonl" if run_dir is not None else None
        self.dead_threshold = dead_threshold
        self.saturated_threshold = saturated_threshold
        self.rows: list[dict] = []
        self.warnings: list[str] = []
        self.partial_epoch = None  # an epoch resumed from inside: its row covers part of it
        self._tracked: list[_Tracked] = []

    # ---- model walk -------------------------------------------------------------------
    def _discover(self, model):
        tracked = []
        for layer in model.layers:
            if isinstance(layer, Activation):
                layer_part, act = None, layer
            else:
                layer_part = layer if layer.params else None
                act = model.activation_of(layer)
            # An output activation fused into the loss does not run during training.
            fused = act is not None and act is model.ops[-1] and model.fused_output
            entry = _Tracked(layer.name, layer_part, act, measured=not fused)
            if entry.layer is not None or entry.kind is not None:
                tracked.append(entry)
        return tracked

    # ---- hooks --------------------------------------------------------------------------
    def on_train_begin(self, trainer):
        self._tracked = self._discover(trainer.model)

    def on_epoch_begin(self, trainer, epoch):
        for entry in self._tracked:
            entry.reset()
        if getattr(trainer, "batches_per_epoch", 1) <= 1:
            self._snapshot()

    def _snapshot(self):
        for entry in self._tracked:
            if entry.layer is not None:
                entry.before = [p.copy() for p in entry.params()]

    def on_batch_end(self, trainer, batch, logs):
        for entry in self._tracked:
            if entry.layer is not None:
                entry.grad_norms.append(_norm(entry.grads()))
            act = entry.activation
            if entry.kind == "relu":
                mask = getattr(act, "_mask", None)
                if mask is not None:
                    entry.values.append(dead_fraction(mask))
            elif entry.kind in ("sigmoid", "tanh"):
                y = getattr(act, "_y", None)
                if y is not None:
                    entry.values.append(saturated_fraction(y, entry.kind))
        # The weights after the second-to-last step are those the last step starts from.
        if batch == getattr(trainer, "batches_per_epoch", 0) - 1:
            self._snapshot()

    def epoch_row(self, epoch) -> dict:
        layers = {}
        for entry in self._tracked:
            stats = {"type": entry.layer.type_name if entry.layer is not None else "activation",
                     "activation": entry.activation.activation_name
                     if entry.activation is not None else None}
            if entry.layer is not None:
                params = entry.params()
                weight_norm = _norm(params)
                stats["grad_norm"] = (float(np.mean(entry.grad_norms))
                                      if entry.grad_norms else None)
                stats["weight_norm"] = weight_norm
                if entry.before is not None and weight_norm > 0:
                    delta = _norm([p - b for p, b in zip(params, entry.before)])
                    stats["update_ratio"] = delta / weight_norm
                else:
                    stats["update_ratio"] = None
            if entry.kind is not None:
                key = "dead_fraction" if entry.kind == "relu" else "saturated_fraction"
                stats[key] = float(np.mean(entry.values)) if entry.values else None
            layers[entry.name] = {k: _json_float(v) if isinstance(v, float) else v
                                  for k, v in stats.items()}
        row = {"epoch": epoch, "layers": layers}
        if epoch == self.partial_epoch:
            row["partial"] = True  # resumed mid-epoch: the steps before the resume are not in it
        return row

    def on_epoch_end(self, trainer, epoch, logs):
        row = self.epoch_row(epoch)
        self.rows.append(row)
        if self.path is not None:
            try:
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row, allow_nan=False) + "\n")
                    handle.flush()
            except OSError as exc:
                from dlcli.errors import TrainingError
                raise TrainingError(f"cannot write {self.path}: {exc.strerror}; the last good "
                                    "checkpoint is checkpoints/last.npz") from None

    def on_train_end(self, trainer, logs):
        self.warnings = layer_warnings(self.rows, self.dead_threshold, self.saturated_threshold)


def layer_warnings(rows: list[dict], dead_threshold: float = 0.5,
                   saturated_threshold: float = 0.5) -> list[str]:
    """Warnings for the layers that the last row shows mostly dead or saturated."""
    if not rows:
        return []
    last = rows[-1]
    out = []
    for name, stats in (last.get("layers") or {}).items():
        dead = stats.get("dead_fraction")
        if dead is not None and dead > dead_threshold:
            out.append(f"layer {name}: {dead:.0%} of its ReLU units were inactive for whole "
                       f"batches in epoch {last.get('epoch')} (dead units); lower the learning "
                       "rate, or try leaky_relu or he initialization")
        sat = stats.get("saturated_fraction")
        if sat is not None and sat > saturated_threshold:
            out.append(f"layer {name}: {sat:.0%} of its {stats.get('activation')} outputs were "
                       f"saturated in epoch {last.get('epoch')}; gradients through it vanish "
                       "(normalize the inputs, lower the initial weights, or use relu)")
    return out

"""Task metrics, computed with NumPy from outputs and targets.

Tasks and their metrics:
  classification  accuracy (argmax), per-class precision/recall, confusion matrix
  binary          accuracy (output ≥ 0.5)
  multilabel      label_accuracy (mean over labels), hamming_loss = 1 − label_accuracy
  regression      mse, mae, r2 (R² = 1 − SS_res/SS_tot)
  reconstruction  mse, mae
"""

import numpy as np

HIGHER_IS_BETTER = {"accuracy", "label_accuracy", "r2", "val_accuracy", "val_label_accuracy",
                    "val_r2"}


# The scalar metrics each task logs: per epoch on the training batches, and on a whole split.
TRAIN_METRICS = {"classification": ["accuracy"], "binary": ["accuracy"],
                 "multilabel": ["label_accuracy"], "regression": [], "reconstruction": []}
SPLIT_METRICS = {"classification": ["accuracy"], "binary": ["accuracy"],
                 "multilabel": ["label_accuracy", "hamming_loss"],
                 "regression": ["mse", "mae", "r2"], "reconstruction": ["mse", "mae"]}


def monitorable(task: str, validation: bool) -> list[str]:
    """The names ``training.monitor`` may take for a task (val_ ones need a validation split)."""
    names = ["loss"] + TRAIN_METRICS[task]
    if validation:
        names += ["val_loss"] + [f"val_{m}" for m in SPLIT_METRICS[task]]
    return names


def prepare_targets(y: np.ndarray, task: str, dtype) -> np.ndarray:
    """Targets in the form the loss takes: class labels stay int; others float (N, K)."""
    if task == "classification":
        return y.astype(np.int64, copy=False)
    y = y.astype(dtype, copy=False)
    return y.reshape(len(y), int(np.prod(y.shape[1:]))) if task != "reconstruction" else y


def batch_metrics(task: str, output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Sums (not means) of the per-sample metrics of one batch, so epochs can weight them."""
    n = len(output)
    if task == "classification":
        if target.ndim == 2:  # one-hot rows (a loss other than categorical cross-entropy)
            target = np.argmax(target, axis=1)
        return {"accuracy": float(np.count_nonzero(np.argmax(output, axis=1) == target))}
    if task == "binary":
        return {"accuracy": float(np.sum((output.reshape(n, -1)[:, 0] >= 0.5)
                                         == (target.reshape(n, -1)[:, 0] >= 0.5)))}
    if task == "multilabel":
        return {"label_accuracy": float(np.sum(np.mean((output >= 0.5) == (target >= 0.5), axis=1)))}
    return {}


def full_metrics(task: str, output: np.ndarray, target: np.ndarray,
                 n_classes: int | None = None) -> dict:
    """All metrics of a task on a whole split (means), plus tables for classification."""
    n = len(output)
    if n == 0:
        return {}
    if task == "classification":
        if target.ndim == 2:
            target = np.argmax(target, axis=1)
        pred = np.argmax(output, axis=1)
        k = n_classes or output.shape[1]
        confusion = np.zeros((k, k), dtype=np.int64)
        np.add.at(confusion, (target, pred), 1)
        tp = np.diag(confusion).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(confusion.sum(0) > 0, tp / confusion.sum(0), 0.0)
            recall = np.where(confusion.sum(1) > 0, tp / confusion.sum(1), 0.0)
        return {"accuracy": float(np.mean(pred == target)),
                "precision": precision.tolist(), "recall": recall.tolist(),
                "confusion_matrix": confusion.tolist()}
    if task == "binary":
        return {"accuracy": batch_metrics(task, output, target)["accuracy"] / n}
    if task == "multilabel":
        per_label = np.mean((output >= 0.5) == (target >= 0.5), axis=0)
        acc = float(np.mean(per_label))
        return {"label_accuracy": acc, "hamming_loss": 1.0 - acc,
                "per_label_accuracy": per_label.tolist()}
    out = output.reshape(n, -1).astype(np.float64)
    tgt = target.reshape(n, -1).astype(np.float64)
    err = out - tgt
    metrics = {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err)))}
    if task == "regression":
        ss_tot = float(np.sum((tgt - tgt.mean(axis=0)) ** 2))
        metrics["r2"] = 1.0 - float(np.sum(err ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    return metrics


def predict(model, loss, x: np.ndarray, batch_size: int = 1024):
    """Network outputs (after any fused activation) for ``x``, in batches."""
    outs = []
    for start in range(0, len(x), batch_size):
        xb = np.ascontiguousarray(x[start:start + batch_size], dtype=model.dtype)
        outs.append(loss.output(model.forward(xb, training=False, logits=True)))
    if not outs:
        return np.zeros((0,) + tuple(model.output_shape), dtype=model.dtype)
    return np.concatenate(outs)


def evaluate(model, loss, x, y, task, batch_size=1024, n_classes=None, full=False) -> dict:
    """Mean loss and task metrics over a split. ``full`` adds per-class tables."""
    if len(x) == 0:
        return {}
    total, outs = 0.0, []
    for start in range(0, len(x), batch_size):
        xb = np.ascontiguousarray(x[start:start + batch_size], dtype=model.dtype)
        yb = y[start:start + batch_size]
        logits = model.forward(xb, training=False, logits=True)
        total += loss.forward(logits, yb) * len(xb)
        outs.append(loss.output(logits))
    output = np.concatenate(outs)
    metrics = full_metrics(task, output, y, n_classes)
    if not full:
        metrics = {k: v for k, v in metrics.items() if not isinstance(v, list)}
    return {"loss": total / len(x), **metrics}

"""Task metrics, computed with NumPy from outputs and targets.

Tasks and their metrics:
  classification  accuracy (argmax), per-class precision/recall/F1/support, macro F1,
                  confusion matrix
  binary          accuracy (output ≥ 0.5), precision/recall/F1 of the positive class (label
                  1), the same per class with support, confusion matrix
  multilabel      label_accuracy (mean over labels), hamming_loss = 1 − label_accuracy
  regression      mse, mae, r2 (R² = 1 − SS_res/SS_tot)
  reconstruction  mse, mae
"""

import numpy as np

_HIGHER = ("accuracy", "label_accuracy", "r2", "precision", "recall", "f1", "macro_f1")
HIGHER_IS_BETTER = {f"{prefix}{name}" for prefix in ("", "val_", "test_") for name in _HIGHER}


# The scalar metrics each task logs: per epoch on the training batches, and on a whole split.
TRAIN_METRICS = {"classification": ["accuracy"], "binary": ["accuracy"],
                 "multilabel": ["label_accuracy"], "regression": [], "reconstruction": []}
SPLIT_METRICS = {"classification": ["accuracy", "macro_f1"], "binary": ["accuracy", "f1"],
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
        table = class_table(target, pred, k)
        return {"accuracy": float(np.mean(pred == target)),
                "precision": table["precision"], "recall": table["recall"],
                "f1": table["f1"], "support": table["support"],
                "macro_f1": float(np.mean(table["f1"])) if k else 0.0,
                "confusion_matrix": table["confusion_matrix"],
                "per_class": {key: table[key] for key in ("precision", "recall", "f1",
                                                          "support")}}
    if task == "binary":
        # the positive class is label 1 (scikit-learn's pos_label=1)
        pred = (output.reshape(n, -1)[:, 0] >= 0.5).astype(np.int64)
        truth = (target.reshape(n, -1)[:, 0] >= 0.5).astype(np.int64)
        table = class_table(truth, pred, 2)
        return {"accuracy": float(np.mean(pred == truth)),
                "precision": table["precision"][1], "recall": table["recall"][1],
                "f1": table["f1"][1], "confusion_matrix": table["confusion_matrix"],
                "per_class": {key: table[key] for key in ("precision", "recall", "f1",
                                                          "support")}}
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


def class_table(target: np.ndarray, pred: np.ndarray, k: int) -> dict:
    """Confusion matrix (rows: true class, columns: predicted) and per-class precision
    TP/(TP+FP), recall TP/(TP+FN), F1 2PR/(P+R) and support (true samples), as
    scikit-learn's ``precision_recall_fscore_support`` with ``zero_division=0``."""
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (target, pred), 1)
    tp = np.diag(confusion).astype(float)
    predicted, support = confusion.sum(0), confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        both = precision + recall
        f1 = np.where(both > 0, 2 * precision * recall / both, 0.0)
    return {"confusion_matrix": confusion.tolist(), "precision": precision.tolist(),
            "recall": recall.tolist(), "f1": f1.tolist(), "support": support.tolist()}


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
    # Targets read per batch from a file (dlcli.data.lazy): a reconstruction's outputs are
    # as large as the data, so its errors are summed batch by batch instead of kept.
    streamed = task == "reconstruction" and not isinstance(y, np.ndarray)
    total, outs, sums = 0.0, [], np.zeros(2)
    for start in range(0, len(x), batch_size):
        xb = np.ascontiguousarray(x[start:start + batch_size], dtype=model.dtype)
        yb = y[start:start + batch_size]
        logits = model.forward(xb, training=False, logits=True)
        total += loss.forward(logits, yb) * len(xb)
        if streamed:
            err = (loss.output(logits).reshape(len(xb), -1).astype(np.float64)
                   - yb.reshape(len(xb), -1).astype(np.float64))
            sums += (np.sum(err ** 2), np.sum(np.abs(err)))
        else:
            outs.append(loss.output(logits))
    if streamed:
        size = len(x) * int(np.prod(x.shape[1:]))
        metrics = {"mse": float(sums[0] / size), "mae": float(sums[1] / size)}
    else:  # one-hot rows made per batch: score their labels
        metrics = full_metrics(task, np.concatenate(outs), getattr(y, "labels", y), n_classes)
    if not full:  # per epoch: the scalars each task logs
        metrics = {k: metrics[k] for k in SPLIT_METRICS[task] if k in metrics}
    return {"loss": total / len(x), **metrics}

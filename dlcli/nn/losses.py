"""Losses: ``forward(pred, target) -> float`` and ``backward() -> dpred``.

Every loss is a mean over the batch (and, where stated, over outputs), so the gradient of a
mini-batch step does not grow with the batch size.

Fused pairs. A loss with ``fuses = "<activation>"`` receives the output layer's
*pre-activation* (logits) when the model ends in that activation, and computes the loss and
its gradient from the logits in one stable expression. The fused gradient is valid for:

* softmax + categorical cross-entropy: dL/dz = (softmax(z) − y) / N
* sigmoid + binary cross-entropy:      dL/dz = (σ(z) − y) / (N·K)
* binary_step + perceptron:            dL/dz = (step(z) − y) / N  (the perceptron rule)

When the output activation is something else the loss takes probabilities and clips them
away from 0 and 1 (with a warning from the config check).
"""

import numpy as np

from dlcli.nn.activations import sigmoid, softmax
from dlcli.registry import LOSSES


def _eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


class Loss:
    """Base class. ``fuses`` names the output activation this loss can absorb."""

    name = "loss"
    fuses: str | None = None

    def __init__(self):
        self.from_logits = False
        self._grad = None

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        return self._grad

    def output(self, pred: np.ndarray) -> np.ndarray:
        """The network's output from what ``forward`` received (applies a fused activation)."""
        return pred

    def get_config(self) -> dict:
        return {"type": self.name}


def fuse_output(model, loss) -> bool:
    """Fuse ``loss`` with ``model``'s output activation when the pair allows it (the pairs of
    the module docstring): the model then stops before that activation when asked for
    logits (``forward(x, logits=True)``, as training does) and the loss computes from them.
    Returns whether the pair was fused. The one place that wires a loss to a model."""
    act = model.output_activation()
    if loss.fuses is None or act is None or act.activation_name != loss.fuses:
        return False
    model.fused_output = True
    loss.from_logits = True
    return True


@LOSSES.register("mse")
class MeanSquaredError(Loss):
    """L = mean over all N·K elements of (ŷ − y)²; dL/dŷ = 2(ŷ − y)/(N·K). As torch's MSELoss."""

    name = "mse"

    def forward(self, pred, target):
        diff = pred - target
        self._grad = diff * pred.dtype.type(2.0 / diff.size)
        return float(np.mean(diff * diff))


@LOSSES.register("widrow_hoff")
class WidrowHoff(Loss):
    """L = ½ Σ_k (y_k − z_k)², mean over the batch; dL/dz = (z − y)/N.

    With SGD, batch size 1 and a linear output this is the Widrow-Hoff delta rule of
    ADALINE (notes 1.4.2): W ← W + η(y − z)x.
    """

    name = "widrow_hoff"

    def forward(self, pred, target):
        diff = pred - target
        n = diff.shape[0]
        self._grad = diff * pred.dtype.type(1.0 / n)
        return float(0.5 * np.sum(diff * diff) / n)


@LOSSES.register("perceptron")
class Perceptron(Loss):
    """The perceptron rule as a loss on z = xᵀW (notes 1.3.2).

    ŷ = step(z); the reported loss is the fraction of mistakes mean|y − ŷ|, and the
    gradient handed back is dL/dz = (ŷ − y)/N, so SGD with batch size 1 performs exactly
    W ← W + η(y − ŷ)x. Its input is always the pre-step value z.
    """

    name = "perceptron"
    fuses = "binary_step"

    def forward(self, pred, target):
        y_hat = (pred >= 0).astype(pred.dtype)
        err = y_hat - target
        self._grad = err * pred.dtype.type(1.0 / pred.shape[0])
        return float(np.mean(np.abs(err)))

    def output(self, pred):
        return (pred >= 0).astype(pred.dtype)


@LOSSES.register("binary_crossentropy")
class BinaryCrossEntropy(Loss):
    """L = −mean[y log ŷ + (1 − y) log(1 − ŷ)] over all N·K outputs (notes 1.5.3).

    From logits z (fused with sigmoid): L = mean[max(z, 0) − z·y + log(1 + e^(−|z|))],
    finite for any finite z; dL/dz = (σ(z) − y)/(N·K).
    """

    name = "binary_crossentropy"
    fuses = "sigmoid"

    def forward(self, pred, target):
        size = pred.size
        if self.from_logits:
            z = pred
            loss = np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))
            self._grad = (sigmoid(z) - target) * z.dtype.type(1.0 / size)
            return float(np.mean(loss))
        eps = _eps(pred.dtype)
        p = np.clip(pred, eps, 1 - eps)
        loss = -(target * np.log(p) + (1 - target) * np.log(1 - p))
        self._grad = (p - target) / (p * (1 - p)) * pred.dtype.type(1.0 / size)
        return float(np.mean(loss))

    def output(self, pred):
        return sigmoid(pred) if self.from_logits else pred


@LOSSES.register("categorical_crossentropy")
class CategoricalCrossEntropy(Loss):
    """L = −(1/N) Σ_i Σ_c y_ic log ŷ_ic (notes 1.6.4); targets one-hot (N, C) or labels (N,).

    From logits z (fused with softmax): log ŷ = log_softmax(z), finite for any finite z;
    dL/dz = (softmax(z) − y)/N.
    """

    name = "categorical_crossentropy"
    fuses = "softmax"

    def forward(self, pred, target):
        n = pred.shape[0]
        scale = pred.dtype.type(1.0 / n)
        labels = target if target.ndim == 1 else None
        if self.from_logits:
            # log ŷ = z − log Σ e^z with z = pred − max (finite for any finite pred); the
            # gradient's softmax reuses e^z instead of a second exp.
            pred = np.ascontiguousarray(pred)  # the flat indexing below needs C order
            k = pred.shape[1]
            z = pred - pred.max(axis=1, keepdims=True)
            grad = np.exp(z)
            # row sums as a product with ones: for a batch of few classes this is
            # faster than NumPy's reduction along short rows
            total = np.matmul(grad, self._ones(k, z.dtype))
            grad /= total.reshape(n, 1)
            log_total = np.log(total)
            if labels is not None:
                if n and not 0 <= labels.min() <= labels.max() < k:
                    raise IndexError(f"class labels must lie in [0, {k}); got "
                                     f"{labels.min()}..{labels.max()}")
                # z[i, label_i] at flat position i*k + label_i: a 1-D take and a 1-D
                # subtraction are several times cheaper than 2-D fancy indexing
                picked = self._row_starts(n, k) + labels
                loss = float(np.sum(log_total - np.take(z, picked))) / n
                grad.reshape(-1)[picked] -= 1
            else:
                loss = -np.sum(target * (z - log_total.reshape(n, 1))) / n
                grad -= target
            grad *= scale
            self._grad = grad
            return float(loss)
        eps = _eps(pred.dtype)
        p = np.clip(pred, eps, 1.0)
        if labels is not None:
            onehot = np.zeros_like(pred)
            onehot[np.arange(n), labels] = 1
            target = onehot
        self._grad = -(target / p) * scale
        return float(-np.sum(target * np.log(p)) / n)

    def output(self, pred):
        return softmax(pred) if self.from_logits else pred

    def _ones(self, k, dtype) -> np.ndarray:
        ones = self.__dict__.get("_ones_k")
        if ones is None or len(ones) != k or ones.dtype != dtype:
            ones = self._ones_k = np.ones(k, dtype)
        return ones

    def _row_starts(self, n, k) -> np.ndarray:
        """``[0, k, 2k, ...]`` (n values), kept between batches."""
        starts = self.__dict__.get("_starts")
        if starts is None or len(starts) != n or starts[-1] != (n - 1) * k:
            starts = self._starts = np.arange(n) * k
        return starts

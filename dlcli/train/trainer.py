"""The training loop. It only computes; callbacks print and write files."""

import math
import time

import numpy as np

from dlcli.errors import TrainingError
from dlcli.train.metrics import batch_metrics, evaluate


class Callback:
    """Hooks, called in a fixed order: metrics, loggers, checkpoint, stopping."""

    def on_train_begin(self, trainer): ...
    def on_epoch_begin(self, trainer, epoch): ...
    def on_batch_end(self, trainer, batch, logs): ...
    def on_epoch_end(self, trainer, epoch, logs): ...
    def on_train_end(self, trainer, logs): ...
    def on_exception(self, trainer, exc): ...


class Trainer:
    """Mini-batch gradient descent (notes 1.8).

    Each epoch reorders the training data from ``rng`` (when ``shuffle``), takes batches of
    ``batch_size`` (``len(x)`` for BGD, 1 for SGD), and per batch runs forward, loss,
    backward, one optimizer step, and zeroes the gradients. The epoch's ``loss`` is the
    batch losses weighted by batch size (the mean loss over the epoch's samples, measured
    while the weights change, as Keras reports it).
    """

    def __init__(self, model, loss, optimizer, *, task, batch_size, epochs, rng,
                 shuffle=True, callbacks=(), n_classes=None):
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.task = task
        self.batch_size = batch_size
        self.epochs = epochs
        self.rng = rng
        self.shuffle = shuffle
        self.callbacks = list(callbacks)
        self.n_classes = n_classes
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.stop_training = False
        self.history: list[dict] = []

    def _emit(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def fit(self, x, y, x_val=None, y_val=None) -> list[dict]:
        n = len(x)
        batch = n if self.batch_size == "full" else min(int(self.batch_size), n)
        self.batches_per_epoch = math.ceil(n / batch)
        params = self.model.parameters()
        x_buf = np.empty((batch,) + x.shape[1:], dtype=x.dtype)
        y_buf = np.empty((batch,) + y.shape[1:], dtype=y.dtype)
        self._emit("on_train_begin")
        try:
            while self.epoch < self.epochs and not self.stop_training:
                epoch = self.epoch + 1
                self._emit("on_epoch_begin", epoch)
                started = time.perf_counter()
                order = self.rng.permutation(n) if self.shuffle else np.arange(n)
                seen, loss_sum, sums = 0, 0.0, {}
                for b, start in enumerate(range(0, n, batch)):
                    index = order[start:start + batch]
                    m = len(index)
                    xb = np.take(x, index, axis=0, out=x_buf[:m])
                    yb = np.take(y, index, axis=0, out=y_buf[:m])
                    self.model.zero_grad()
                    logits = self.model.forward(xb, training=True, logits=True)
                    loss = self.loss.forward(logits, yb)
                    if not math.isfinite(loss):
                        raise TrainingError(
                            f"loss became {loss} at epoch {epoch}, step {b + 1}; lower the "
                            "learning rate or normalize the inputs")
                    self.model.backward(self.loss.backward())
                    self.optimizer.step(params)
                    self.step += 1
                    seen += m
                    loss_sum += loss * m
                    for key, value in batch_metrics(self.task, self.loss.output(logits), yb).items():
                        sums[key] = sums.get(key, 0.0) + value
                    self._emit("on_batch_end", b + 1, {"loss": loss_sum / seen})
                logs = {"epoch": epoch, "loss": loss_sum / seen}
                logs.update({k: v / seen for k, v in sums.items()})
                if x_val is not None and len(x_val):
                    val = evaluate(self.model, self.loss, x_val, y_val, self.task,
                                   n_classes=self.n_classes)
                    logs.update({f"val_{k}": v for k, v in val.items()})
                logs["lr"] = float(self.optimizer.lr)
                logs["time"] = time.perf_counter() - started
                self.epoch = epoch
                self.history.append(logs)
                self._emit("on_epoch_end", epoch, logs)
        except BaseException as exc:
            self._emit("on_exception", exc)
            raise
        final = self.history[-1] if self.history else {}
        self._emit("on_train_end", final)
        return self.history

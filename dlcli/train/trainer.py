"""The training loop. It only computes; callbacks print and write files."""

import math
import time

import numpy as np

from dlcli.data.lazy import take
from dlcli.errors import TrainingError
from dlcli.train.metrics import batch_metrics, evaluate


class Callback:
    """Hooks, called in a fixed order: metrics, loggers, checkpoint, stopping."""

    def on_train_begin(self, trainer): ...
    def on_epoch_begin(self, trainer, epoch): ...
    def on_batch_end(self, trainer, batch, logs): ...
    def on_epoch_end(self, trainer, epoch, logs): ...
    def on_interrupt(self, trainer, signum): ...
    def on_train_end(self, trainer, logs): ...
    def on_exception(self, trainer, exc): ...


def _no_mark(phase):
    pass


def gather(x, y, index, x_buf, y_buf):
    """The batch ``(x[index], y[index])``, copied into the first ``len(index)`` rows of the
    reused buffers. ``index`` must be in range (it comes from the epoch's permutation):
    ``mode="clip"`` skips NumPy's bounds check, which with ``out=`` also buffers the copy.
    ``x`` or ``y`` may be a lazy view of a memory-mapped file (:mod:`dlcli.data.lazy`):
    only the batch's rows are then read, normalized and cast."""
    m = len(index)
    return take(x, index, x_buf[:m]), take(y, index, y_buf[:m])


class Interrupted(Exception):
    """Training stopped on a signal after finishing a step (and checkpointing it)."""

    def __init__(self, signum: int, epoch: int, batch: int):
        super().__init__(f"signal {signum}")
        self.signum, self.epoch, self.batch = signum, epoch, batch


def clip_gradients(grads: list[np.ndarray], norm: float | None, value: float | None) -> float:
    """Clip in place: each entry to [−value, value], then all together to a global L2 norm
    of at most ``norm`` (torch's clip_grad_value_ and clip_grad_norm_). Returns the norm
    before norm clipping (0 when not computed)."""
    if value is not None:
        for g in grads:
            np.clip(g, -value, value, out=g)
    total = 0.0
    if norm is not None:
        total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
        if total > norm:
            scale = norm / (total + 1e-6)
            for g in grads:
                g *= g.dtype.type(scale)
    return total


class Trainer:
    """Mini-batch gradient descent (notes 1.8).

    Each epoch reorders the training data from ``rng`` (when ``shuffle``), takes batches of
    ``batch_size`` (``len(x)`` for BGD, 1 for SGD), and per batch runs ``train_step``
    (forward, loss, backward writing the gradients, one optimizer step). The
    epoch's ``loss`` is the batch losses weighted by batch size (the mean loss over the
    epoch's samples, measured while the weights change, as Keras reports it).

    ``state_dict()`` captures the loop mid-epoch (the epoch's order, the next batch, the
    partial sums, the generator), so a run resumed from it continues bit for bit.
    """

    def __init__(self, model, loss, optimizer, *, task, batch_size, epochs, rng,
                 shuffle=True, callbacks=(), n_classes=None, clip_norm=None, clip_value=None,
                 schedule=None):
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
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.schedule = schedule  # epoch index (from 0) -> learning rate
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.stop_training = False
        self.interrupt_signal = None  # set by a signal handler; checked after each step
        self.history: list[dict] = []
        self._resume = None  # mid-epoch state restored by load_state_dict
        self._epoch_state = None  # (order, next batch, seen, loss sum, metric sums)
        self._batch = None  # the batch size in use
        self.notes: list[str] = []  # what the loop had to adjust, for the user

    # ---- state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        from dlcli.train.checkpoint import rng_to_array
        state = {"epoch": np.int64(self.epoch), "step": np.int64(self.step),
                 "rng": rng_to_array(self.rng), "stop": np.int64(self.stop_training)}
        if self._epoch_state is not None:
            order, batch, seen, loss_sum, sums = self._epoch_state
            state.update({"order": order, "batch": np.int64(batch), "seen": np.int64(seen),
                          "loss_sum": np.float64(loss_sum),
                          "batch_size": np.int64(self._batch)})
            state.update({f"sum.{k}": np.float64(v) for k, v in sums.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        from dlcli.train.checkpoint import restore_rng
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        # the stop decision (early stopping) is state: a run checkpointed on the epoch it
        # stopped resumes to its end, not to one epoch more
        self.stop_training = bool(int(state.get("stop", 0)))
        restore_rng(self.rng, state["rng"])
        if "order" in state:
            order = np.asarray(state["order"])
            # batches are gathered without bounds checks: the order must be a permutation
            if order.ndim != 1 or order.dtype.kind not in "iu" \
                    or not np.array_equal(np.sort(order), np.arange(len(order))):
                raise ValueError("the saved batch order is not a permutation of the "
                                 "training samples")
            sums = {k[4:]: float(v) for k, v in state.items() if k.startswith("sum.")}
            self._resume = (order, int(state["batch"]), int(state["seen"]),
                            float(state["loss_sum"]), sums, int(state["batch_size"]))

    @property
    def resumes_mid_epoch(self) -> bool:
        """Whether ``fit`` will continue an epoch from a checkpoint taken inside it."""
        return self._resume is not None

    def _emit(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    # ---- the loop ------------------------------------------------------------------
    def fit(self, x, y, x_val=None, y_val=None) -> list[dict]:
        n = len(x)
        if len(y) != n:
            raise ValueError(f"x has {n} samples but y has {len(y)}")
        batch = n if self.batch_size == "full" else min(int(self.batch_size), n)
        self._batch = batch
        self.batches_per_epoch = math.ceil(n / batch)
        if self._resume is not None and (len(self._resume[0]) != n or self._resume[5] != batch):
            # The data or batch size changed (--allow-config-change): the saved position
            # inside the epoch means nothing any more; that epoch starts again.
            self.notes.append(f"epoch {self.epoch + 1} restarts from its beginning: the "
                              "training data or batch size changed since the checkpoint")
            self._resume = None
        params = self.model.parameters()
        grads = [g for _, _, g in params]
        flat = self.model.flat_buffers()
        x_buf, y_buf = self.batch_buffers(x, y, batch)
        self._epoch_state = None
        self._emit("on_train_begin")
        try:
            while self.epoch < self.epochs and not self.stop_training:
                epoch = self.epoch + 1
                if self.schedule is not None:
                    self.optimizer.lr = self.schedule(self.epoch)
                self._emit("on_epoch_begin", epoch)
                started = time.perf_counter()
                if self._resume is not None:
                    order, first, seen, loss_sum, sums, _ = self._resume
                    self._resume = None
                else:
                    order = self.rng.permutation(n) if self.shuffle else np.arange(n)
                    first, seen, loss_sum, sums = 0, 0, 0.0, {}
                for b in range(first, self.batches_per_epoch):
                    index = order[b * batch:(b + 1) * batch]
                    m = len(index)
                    loss, batch_sums = self.batch_step(x, y, index, x_buf, y_buf, params,
                                                       grads, flat, epoch, b + 1)
                    self.step += 1
                    seen += m
                    loss_sum += loss * m
                    for key, value in batch_sums.items():
                        sums[key] = sums.get(key, 0.0) + value
                    self._epoch_state = (order, b + 1, seen, loss_sum, sums)
                    self._emit("on_batch_end", b + 1, {"loss": loss_sum / seen})
                    if self.interrupt_signal is not None and b + 1 < self.batches_per_epoch:
                        self._emit("on_interrupt", self.interrupt_signal)
                        raise Interrupted(self.interrupt_signal, epoch, b + 1)
                self._epoch_state = None
                logs = {"epoch": epoch, "loss": loss_sum / seen}
                logs.update({k: v / seen for k, v in sums.items()})
                if x_val is not None and len(x_val):
                    # in batches of the training batch size (Keras' default): larger ones
                    # would grow the peak memory past what training itself needs
                    val = evaluate(self.model, self.loss, x_val, y_val, self.task,
                                   batch_size=batch, n_classes=self.n_classes)
                    logs.update({f"val_{k}": v for k, v in val.items()})
                logs["lr"] = float(self.optimizer.lr)
                logs["time"] = time.perf_counter() - started
                self.epoch = epoch
                self.history.append(logs)
                self._emit("on_epoch_end", epoch, logs)
                if self.interrupt_signal is not None and self.epoch < self.epochs \
                        and not self.stop_training:
                    raise Interrupted(self.interrupt_signal, epoch, self.batches_per_epoch)
        except BaseException as exc:
            self._emit("on_exception", exc)
            raise
        final = self.history[-1] if self.history else {}
        self._emit("on_train_end", final)
        return self.history

    def batch_buffers(self, x, y, batch):
        """The reused arrays a batch is gathered into (``dlcli.parallel``: one shard's)."""
        return (np.empty((batch,) + x.shape[1:], dtype=x.dtype),
                np.empty((batch,) + y.shape[1:], dtype=y.dtype))

    def batch_step(self, x, y, index, x_buf, y_buf, params, grads, flat, epoch, step):
        """One optimizer step on the samples ``index``; returns the batch's loss and its
        metric sums (``dlcli.parallel`` overrides it with the sharded step)."""
        xb, yb = gather(x, y, index, x_buf, y_buf)
        loss, logits = self.train_step(xb, yb, params, grads, flat, epoch, step)
        return loss, self.batch_metrics(logits, yb)

    def batch_metrics(self, logits, yb) -> dict[str, float]:
        """The task's metric sums over one batch, from the logits ``train_step`` returned."""
        # argmax of the logits is argmax of softmax(logits): skip a second softmax
        out = (logits if self.task == "classification" and self.loss.from_logits
               else self.loss.output(logits))
        return batch_metrics(self.task, out, yb)

    def train_step(self, xb, yb, params, grads, flat, epoch, step, mark=None):
        """One optimizer step on the batch ``(xb, yb)``; returns ``(loss, logits)``.

        Forward to the logits, the loss (TrainingError when it is not finite), backward
        (which writes every gradient: nothing needs zeroing first), the non-finite gradient
        check, clipping when configured, the optimizer step. ``params``/``grads``/``flat``
        are ``model.parameters()``, its gradients and ``model.flat_buffers()``; ``epoch``
        and ``step`` only name the place in errors. ``mark(phase)``, when given, is called
        after each phase (``dlcli time`` reads the clock there).
        """
        mark = mark or _no_mark
        logits = self.model.forward(xb, training=True, logits=True)
        mark("forward")
        loss = self.loss.forward(logits, yb)
        mark("loss_forward")
        if not math.isfinite(loss):
            raise self._diverged(epoch, step, f"the loss became {loss}"
                                 + self._first_nonfinite(xb))
        dy = self.loss.backward()
        mark("loss_backward")
        self.model.backward(dy)
        mark("backward")
        self._check_gradients(params, flat, epoch, step)
        mark("gradient_check")
        if self.clip_norm is not None or self.clip_value is not None:
            clip_gradients(grads, self.clip_norm, self.clip_value)
        mark("clipping")
        self.optimizer.step(params, flat)
        mark("optimizer")
        return loss, logits

    def _check_gradients(self, params, flat, epoch, step):
        """Raise when a gradient holds a NaN or an infinity.

        The fast test is ‖g‖² by BLAS (``np.dot``, one call over the packed gradients when
        the model has them): a NaN or ±inf anywhere makes it non-finite. Only then is each
        gradient searched, which also clears the rare false alarm of a finite gradient
        whose square overflows."""
        with np.errstate(over="ignore", invalid="ignore"):
            if flat is not None and len(params) == len(flat.keys) \
                    and all(g.base is flat.grads for _, _, g in params) \
                    and np.isfinite(np.dot(flat.grads, flat.grads)):
                return
            for key, _, grad in params:
                g = grad.reshape(-1)
                if not np.isfinite(np.dot(g, g)) and not np.all(np.isfinite(grad)):
                    raise self._diverged(epoch, step,
                                         f"the gradient of {key} became non-finite")

    def _first_nonfinite(self, x) -> str:
        """Where the non-finite values start: a parameter, or the first layer output."""
        for key, param, _ in self.model.parameters():
            if not np.all(np.isfinite(param)):
                return f" (parameter {key} is non-finite)"
        for op, x in self.model.outputs(x):
            if not np.all(np.isfinite(x)):
                name = self.model.layer_of(op).name
                return f" (first non-finite values in the output of layer {name})"
        return ""

    def _diverged(self, epoch, step, what) -> TrainingError:
        return TrainingError(
            f"{what} at epoch {epoch}, step {step}; training stopped. Try a lower "
            "training.optimizer.lr, gradient clipping (training.clip_norm), or normalized inputs",
            status="diverged")

"""The trainer of a sharded run: one optimizer step per global batch, its gradient summed
from ``S`` shards in the fixed tree order, on one process or split over MPI ranks."""

from __future__ import annotations

import hashlib
import math

import numpy as np

from dlcli.errors import TrainingError
from dlcli.parallel.reduce import Reducer
from dlcli.parallel.shards import bounds
from dlcli.train.metrics import TRAIN_METRICS
from dlcli.train.trainer import Interrupted, Trainer, gather

# The generator of shard k's dropout masks at optimizer step t: [seed, DROPOUT_STREAM, t, k]
# (the run's other generators are [seed, 0] for the weights and [seed, 1] for the order).
DROPOUT_STREAM = 2


class ShardedTrainer(Trainer):
    """:class:`Trainer` whose step cuts the global batch into ``shards`` contiguous shards.

    Per shard: dropout masks from ``default_rng([seed, 2, step, shard])``, forward, loss,
    backward, the gradient weighted by the shard's share of the batch. The leaves are
    summed in the fixed pairwise tree (``dlcli.parallel.shards``); this rank computes only
    its block of shards and reads only their rows of each batch. The loss and metric sums
    are the global batch's (the shards' losses weighted by their share, in shard order).
    The clipping, the non-finite checks and the optimizer step then run on the summed
    gradient, identically on every rank.

    Signals: a handler sets ``interrupt_signal`` on one rank; the value the loop sees is
    the one all ranks agreed on in the last step's reduction (the lowest rank's signal).
    At each epoch's end the ranks compare a digest of their parameters.
    """

    def __init__(self, *args, world, shards: int, reduce: str = "tree", seed: int = 0,
                 **kwargs):
        self.world, self.shards, self.reduce_mode, self.seed = world, shards, reduce, seed
        self._local_signal = None
        self._agreed_signal = None
        self.agreed = False  # the exception being raised happened alike on every rank
        super().__init__(*args, **kwargs)
        self._reducer = None

    # The signal handler writes, the loop reads: a rank acts on a signal only once every
    # rank knows of it.
    @property
    def interrupt_signal(self):
        return self._agreed_signal

    @interrupt_signal.setter
    def interrupt_signal(self, signum):
        self._local_signal = signum

    def batch_buffers(self, x, y, batch):
        rows = math.ceil(batch / self.shards)
        return (np.empty((rows,) + x.shape[1:], dtype=x.dtype),
                np.empty((rows,) + y.shape[1:], dtype=y.dtype))

    def _reducer_for(self, flat) -> Reducer:
        if self._reducer is None:
            self._keys = TRAIN_METRICS[self.task]
            width = 1 + len(self._keys)
            self._width = width
            self._reducer = Reducer(self.world, self.shards, self.reduce_mode,
                                    flat.grads.size, flat.grads.dtype,
                                    self.shards * width + self.world.size)
            self._dropout = any(hasattr(layer, "rng") for layer in self.model.layers)
        return self._reducer

    def batch_step(self, x, y, index, x_buf, y_buf, params, grads, flat, epoch, step):
        if flat is None:
            raise TrainingError("training.parallel needs the model's parameters packed in one "
                                "buffer (one dtype for all of them)")
        reducer = self._reducer_for(flat)
        m = len(index)
        cut = bounds(m, self.shards)
        scalars = reducer.scalars
        width = self._width
        dtype = flat.grads.dtype.type

        def leaf(k, out):
            lo, hi = cut[k], cut[k + 1]
            if hi == lo:
                out.fill(0)
                return
            xb, yb = gather(x, y, index[lo:hi], x_buf, y_buf)
            if self._dropout:
                self.model.set_rng(np.random.default_rng(
                    [self.seed, DROPOUT_STREAM, self.step, k]))
            logits = self.model.forward(xb, training=True, logits=True)
            loss = self.loss.forward(logits, yb)
            row = scalars[k * width:(k + 1) * width]
            row[0] = loss
            if not math.isfinite(loss):
                out.fill(0)  # every rank sees the global loss turn non-finite and stops
                return
            self.model.backward(self.loss.backward())
            np.multiply(flat.grads, dtype((hi - lo) / m), out=out)
            sums = self.batch_metrics(logits, yb)
            for j, key in enumerate(self._keys):
                row[1 + j] = sums[key]

        scalars_signal = self.shards * width + self.world.rank
        value = reducer.reduce(
            lambda k, out: (leaf(k, out), self._post_signal(scalars, scalars_signal)))
        np.copyto(flat.grads, value)
        reducer.release(value)
        signals = scalars[self.shards * width:]
        pending = [int(s) for s in signals if s]
        if pending and self._agreed_signal is None:
            self._agreed_signal = pending[0]
        table = scalars[:self.shards * width].reshape(self.shards, width)
        loss = 0.0
        for k in range(self.shards):
            if cut[k + 1] > cut[k]:
                loss += (cut[k + 1] - cut[k]) / m * float(table[k, 0])
        if not math.isfinite(loss):
            self.agreed = True
            raise self._diverged(epoch, step, f"the loss became {loss}")
        try:
            self._check_gradients(params, flat, epoch, step)
        except TrainingError:
            self.agreed = True
            raise
        if self.clip_norm is not None or self.clip_value is not None:
            from dlcli.train.trainer import clip_gradients
            clip_gradients(grads, self.clip_norm, self.clip_value)
        self.optimizer.step(params, flat)
        # metric sums in shard order, as Python floats: the same on every rank
        return loss, {key: sum(float(v) for v in table[:, 1 + j])
                      for j, key in enumerate(self._keys)}

    def _post_signal(self, scalars, slot):
        # the latest local signal goes with this step's message (re-posted per leaf, so a
        # signal that arrives while the shards compute still travels with this step)
        scalars[slot] = self._local_signal or 0

    def fit(self, *args, **kwargs):
        try:
            return super().fit(*args, **kwargs)
        except Interrupted:
            self.agreed = True
            raise

    def _emit(self, hook, *args):
        if hook == "on_epoch_end" and self.world.size > 1:
            self.check_replicas(args[0])
        super()._emit(hook, *args)

    def check_replicas(self, epoch: int) -> None:
        """Stop every rank with the same error when the replicas' parameters differ."""
        digest = hashlib.blake2b(self.model.flat_buffers().params.tobytes(),
                                 digest_size=16).hexdigest()
        digests = self.world.allgather_obj(digest)
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            self.agreed = True
            raise TrainingError(
                f"after epoch {epoch} the parameters of rank(s) "
                f"{', '.join(map(str, differ))} differ from rank 0's: the replicas drifted "
                "apart; every rank must use the same BLAS library, kernel and thread count "
                "(set OMP_NUM_THREADS/OPENBLAS_NUM_THREADS alike on every node)",
                status="failed")

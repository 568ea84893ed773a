"""When checkpoints are written (``training.checkpoint_every``); how is the checkpoint
protocol's business (:mod:`dlcli.train.checkpoint`).

A checkpoint is always written at the end of training, on an interrupt, and after the
first epoch (which also measures what a write costs). Between those:

* ``checkpoint_every: N`` - every N epochs and at each new best (Keras' ModelCheckpoint);
* ``checkpoint_every: auto`` (the default) - whenever one more write, of the mean cost of
  the writes so far, keeps all of them within ``BUDGET`` (8%) of the time since training
  started, however slow (or uneven) the disk. A new best between two writes is kept in
  memory and written (as ``best``) with the next checkpoint, at the end or on an
  interrupt.

After a crash (``kill -9``), ``--resume`` continues from the last checkpoint written and
drops the metric rows after it, so at most the epochs since that write are trained again.
"""

import time

BUDGET = 0.08  # checkpoints; the metric lines add ~2-4% on the smallest models


class Cadence:
    """Decides, epoch by epoch, whether the checkpointer writes."""

    def __init__(self, every="auto", clock=time.perf_counter):
        self.every = every
        self.clock = clock
        self.started = clock()
        self.write_s = None  # what the writes took, all together
        self.writes = 0
        self.held_s = 0.0  # what keeping new bests in memory took
        self.epoch = None  # the epoch of the last write

    def due(self, trainer, epoch: int, improved: bool) -> bool:
        if trainer.interrupt_signal is not None or epoch >= trainer.epochs \
                or trainer.stop_training or self.write_s is None:
            return True
        if self.every == "auto":
            mean = self.write_s / self.writes
            spent = self.write_s + self.held_s + mean
            return spent <= BUDGET * (self.clock() - self.started)
        return improved or epoch % int(self.every) == 0

    def wrote(self, epoch: int, started: float) -> None:
        self.write_s = (self.write_s or 0.0) + self.clock() - started
        self.writes += 1
        self.epoch = epoch


def snapshot(trainer, monitor) -> tuple[dict, dict, dict]:
    """Copies of what a checkpoint of this moment holds: (model, optimizer, loop state)."""
    model = {key: value.copy() for key, value in trainer.model.state_dict().items()}
    return model, trainer.optimizer.state_dict(), {**trainer.state_dict(),
                                                   **monitor.state_dict()}

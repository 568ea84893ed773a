"""When checkpoints are written (``training.checkpoint_every``); how is the checkpoint
protocol's business (:mod:`dlcli.train.checkpoint`).

A checkpoint is always written at the end of training and on an interrupt. Between those:

* ``checkpoint_every: N`` - after the first epoch, every N epochs and at each new best
  (Keras' ModelCheckpoint with ``save_best_only``);
* ``checkpoint_every: auto`` (the default) - the first write (which measures what a write
  costs) after the first epoch that ends at least :data:`FIRST_S` (2 s) into training,
  unless the run is expected to end less than 2 s later (then the final write is the
  first); after it, at the end of an epoch whenever all the writing so far (checkpoints,
  metric lines, in-memory copies of new bests) plus three more writes of the mean cost
  (this one and at most two at the end) stays within :data:`BUDGET` (8%) of the time since
  training started, however slow (or uneven) the disk.

With ``auto`` a new best between two writes is copied in memory ("held"); each write saves
a new best first: the epoch's own state when it improved, otherwise the held best as
``last`` linked to ``best`` (the current state then waits for the next write). At the end,
on an interrupt, a held best goes straight into ``best`` before the current state is written
as ``last``; a run that diverges writes its held best. So ``best.npz`` trails a new best
by at most the time between two writes (about 12-40 times what one write takes) or, before
the first write, the first two seconds; a ``kill -9`` loses a held best, never a written one.

After a crash (``kill -9``), ``--resume`` continues from the last checkpoint written and
drops the metric rows after it, so at most the epochs since that write are trained again.
"""

import time

import numpy as np

BUDGET = 0.08  # all the writing of a run: checkpoints, metric lines, copies of new bests
FIRST_S = 2.0  # auto: no checkpoint before the first epoch that ends this far into training
RESERVE = 3  # this write and at most two at the end (a held best and the last state)


class Cadence:
    """Decides, epoch by epoch, whether the checkpointer writes; the writers report what
    they spent (``spent_s``: all writing; ``write_s``/``writes``: the checkpoint writes)."""

    def __init__(self, every="auto", clock=time.perf_counter):
        self.every = every
        self.clock = clock
        self.started = clock()
        self.start_epoch = 0  # the epoch training (re)started after
        self.spent_s = 0.0  # metric lines, checkpoints, copies of new bests: everything
        self.write_s = 0.0  # the checkpoint writes alone
        self.writes = 0

    def start(self, epoch: int = 0) -> None:
        """Training starts now, after ``epoch`` (a resumed run's); the budget is a share of
        the time since."""
        self.started = self.clock()
        self.start_epoch = epoch

    @staticmethod
    def final(trainer, epoch: int) -> bool:
        """Whether this epoch end must write the current state (end, stop or interrupt)."""
        return trainer.interrupt_signal is not None or epoch >= trainer.epochs \
            or trainer.stop_training

    def due(self, trainer, epoch: int, improved: bool) -> bool:
        if self.final(trainer, epoch):
            return True
        if self.every != "auto":
            return self.writes == 0 or improved or epoch % int(self.every) == 0
        elapsed = self.clock() - self.started
        if self.writes == 0:  # the end is expected at least FIRST_S later: write now
            remaining = elapsed / max(1, epoch - self.start_epoch) * (trainer.epochs - epoch)
            return elapsed >= FIRST_S and remaining >= FIRST_S
        mean = self.write_s / self.writes
        return self.spent_s + RESERVE * mean <= BUDGET * elapsed

    def wrote(self, seconds: float) -> None:
        """One checkpoint write took ``seconds``."""
        self.write_s += seconds
        self.writes += 1


def snapshot(trainer, monitor, reuse=None) -> tuple[dict, dict, dict]:
    """Copies of what a checkpoint of this moment holds: (model, optimizer, loop state);
    ``reuse``: an earlier snapshot, no longer needed, whose arrays are overwritten."""
    model = trainer.model.state_dict()
    optimizer = {f"{key}.{name}": arr for key, entries in trainer.optimizer.state.items()
                 for name, arr in entries.items()}
    if reuse is not None and reuse[0].keys() == model.keys() \
            and reuse[1].keys() == optimizer.keys() \
            and all(reuse[0][k].shape == v.shape for k, v in model.items()) \
            and all(reuse[1][k].shape == np.shape(v) for k, v in optimizer.items()):
        for old, new in ((reuse[0], model), (reuse[1], optimizer)):
            for key, value in new.items():
                old[key][...] = value
        copies = reuse[0], reuse[1]
    else:
        copies = ({key: value.copy() for key, value in model.items()},
                  {key: np.array(value, copy=True) for key, value in optimizer.items()})
    return (*copies, {**trainer.state_dict(), **monitor.state_dict()})

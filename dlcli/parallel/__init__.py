"""Data-parallel training: ``training.parallel: {shards: S}``, on one process or over MPI.

A run with ``shards: S`` sums each global batch's gradient from S fixed shards in a fixed
tree order (``shards.py``, ``reduce.py``), so ``mpirun -n N dlcli train`` for any N that
divides S gives the same bits as ``dlcli train`` in one process. ``plan`` reads the config
and the launcher's environment; ``Plan.run`` runs rank 0 (the one that writes the run
directory) or a follower rank, and makes sure no rank is left waiting for another that
failed (``guard``).
"""

from __future__ import annotations

import functools
import sys

from dlcli.errors import ConfigError, DlcliError


class Plan:
    """The world (``comm.Local`` or ``comm.MpiWorld``), the shards and the reduction."""

    def __init__(self, world, shards: int, reduce: str, notes=()):
        self.world, self.shards, self.reduce = world, shards, reduce
        self.notes = list(notes)
        self.trainer = None  # the ShardedTrainer, once made

    def make_trainer(self, *args, seed: int, **kwargs):
        from dlcli.parallel.trainer import ShardedTrainer
        self.trainer = ShardedTrainer(*args, world=self.world, shards=self.shards,
                                      reduce=self.reduce, seed=seed, **kwargs)
        return self.trainer

    def share(self, parts):
        """Rank 0's checkpoint parts to every rank (resume); returns them."""
        return self.world.bcast(parts) if self.world.size > 1 else parts

    def run(self, leader, follower):
        if self.world.size == 1:
            return leader()
        return guard(self, leader if self.world.rank == 0 else follower)


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else 1
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, DlcliError):
        return exc.exit_code
    signum = getattr(exc, "signum", None)  # the trainer's Interrupted: 128 + signal
    return 128 + signum if isinstance(signum, int) else 1


def guard(plan: Plan, body):
    """Run ``body`` on this rank. An error that every rank meets alike (the trainer marks
    those: a signal agreed on, divergence, drifted replicas) ends each rank with its exit
    code, rank 0 alone reporting it; any other error on one rank is printed with the rank's
    number and aborts the whole job with its exit code (``MPI_Abort``), so that no rank
    waits forever for a message that will never come."""
    world = plan.world
    try:
        return body()
    except BaseException as exc:
        code = exit_code(exc)
        agreed = getattr(exc, "agreed", False) or (plan.trainer is not None
                                                   and plan.trainer.agreed)
        if isinstance(exc, SystemExit) and code == 0:
            raise
        if agreed:
            if world.rank == 0:
                raise
            raise SystemExit(code) from None
        what = (str(exc) if isinstance(exc, DlcliError)
                else "interrupted" if isinstance(exc, KeyboardInterrupt)
                else f"{type(exc).__name__}: {exc}")
        print(f"dlcli ({world.name}): error: {what}; stopping every rank", file=sys.stderr,
              flush=True)
        world.abort(code)
        raise  # pragma: no cover - abort does not return


def plan(config) -> Plan | None:
    """The data-parallel plan of a run, or None for a plain run in one process.

    Under an MPI launcher without ``training.parallel`` each rank takes one shard
    (``shards: N``, written into the run's config so that a resume keeps it). Refuses,
    with exit 2 before any data is read, a rank count that does not divide ``shards`` and
    more shards than rows in a batch.
    """
    from dlcli.parallel.comm import open_world

    world = open_world(config.source)
    training = config["training"]
    spec = training.get("parallel")
    notes = []
    if spec is None:
        if world.size == 1:
            return None
        spec = training["parallel"] = {"shards": world.size, "reduce": "tree"}
        notes.append(f"training.parallel is not set: each of the {world.size} ranks computes "
                     f"one shard (the same run in one process: --set "
                     f"training.parallel.shards={world.size})")
    shards, reduce = spec["shards"], spec.get("reduce", "tree")
    errors = []
    if shards % world.size:
        fits = [n for n in range(1, shards + 1) if shards % n == 0]
        errors.append(("training.parallel.shards",
                       f"{shards} shards cannot be shared evenly by {world.size} MPI ranks; "
                       f"run with a number of ranks that divides {shards} "
                       f"({', '.join(map(str, fits))})"))
    batch = training["batch_size"]
    if batch != "full" and shards > batch:
        errors.append(("training.parallel.shards",
                       f"must be at most training.batch_size ({batch}) so that every shard "
                       f"gets rows; got {shards}"))
    if errors:
        exc = ConfigError(errors, file=config.source)
        exc.agreed = True  # every rank reads the same config and finds the same
        return guard(Plan(world, shards, reduce), functools.partial(_raise, exc))
    return Plan(world, shards, reduce, notes)


def _raise(exc):
    raise exc

"""The ranks of a data-parallel run: detecting MPI, and the few collectives dlcli uses.

dlcli imports mpi4py only when the environment says it was started by an MPI launcher
(``mpirun``/``mpiexec`` of Open MPI or MPICH/Hydra, ``srun`` with PMI/PMIx), so a plain
``dlcli train`` never loads MPI. :class:`Local` is the one-process world; :class:`MpiWorld`
wraps ``MPI.COMM_WORLD`` and moves raw bytes (each message holds a gradient partial sum
and the step's float64 scalars side by side).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from dlcli.errors import ConfigError

# Variables MPI launchers set in every rank's environment (Open MPI, MPICH/Hydra and
# Intel MPI, PMI-2 and PMIx launchers such as srun --mpi=pmi2/pmix).
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK",
                      "MPI_LOCALNRANKS")


def launched_by_mpi(environ=None) -> str | None:
    """The launcher variable that says this process is an MPI rank, or None."""
    environ = os.environ if environ is None else environ
    return next((name for name in LAUNCHER_VARIABLES if name in environ), None)


class Local:
    """One process: rank 0 of 1."""

    rank, size = 0, 1
    name = "one process"

    def bcast(self, obj):
        return obj

    def abort(self, code: int):  # pragma: no cover - nothing to abort
        sys.exit(code)


class MpiWorld:
    """``MPI.COMM_WORLD`` through mpi4py's buffer interface (no pickling on the step path)."""

    def __init__(self, comm):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.name = f"rank {self.rank} of {self.size}"

    def sendrecv(self, send: np.ndarray, partner: int, recv: np.ndarray) -> None:
        self.comm.Sendrecv([send, self.MPI.BYTE], dest=partner, sendtag=17,
                           recvbuf=[recv, self.MPI.BYTE], source=partner, recvtag=17)

    def allgather(self, send: np.ndarray, recv: np.ndarray) -> None:
        """``recv`` (size × len(send) bytes) gets every rank's ``send``, in rank order."""
        self.comm.Allgather([send, self.MPI.BYTE], [recv, self.MPI.BYTE])

    def allreduce_sum(self, buf: np.ndarray) -> None:
        """In place, in MPI's own order (``reduce: allreduce``)."""
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def allgather_obj(self, obj) -> list:
        return self.comm.allgather(obj)

    def abort(self, code: int):
        self.comm.Abort(code)


def open_world(config_source=None):
    """:class:`MpiWorld` when launched by MPI with more than one rank, else :class:`Local`.
    Under a launcher without mpi4py installed: a ConfigError (exit 2) saying what to
    install."""
    variable = launched_by_mpi()
    if variable is None:
        return Local()
    try:
        from mpi4py import MPI
    except ImportError:
        raise ConfigError(f"this process was started by an MPI launcher ({variable} is set) "
                          "but mpi4py is not installed; pip install 'dlcli[mpi]' (mpi4py and "
                          "the mpich wheel) or run dlcli without mpirun",
                          file=config_source) from None
    comm = MPI.COMM_WORLD
    return MpiWorld(comm) if comm.Get_size() > 1 else Local()

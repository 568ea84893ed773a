"""Running dlcli under ``mpiexec`` on this machine (loopback and shared memory only).

``mpiexec`` is looked for beside the running interpreter first (``sys.prefix/bin``: the
PyPI ``mpich`` wheel installs it there in CI's virtual environment), then on PATH. Every
rank runs ``tests/helpers/mpi_rank.py``, which runs dlcli's CLI in-process, records the
rank's exit code and can deliver a signal to one rank at an exact optimizer step.
BLAS is pinned to one thread in every process, the reference runs included.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
RANK_MAIN = REPO_ROOT / "tests" / "helpers" / "mpi_rank.py"
LAUNCHER_VARIABLES = ("OMPI_", "PMI_", "PMIX_", "MPI_LOCAL", "HYDRA_")


def find_mpiexec() -> str | None:
    beside = pathlib.Path(sys.prefix) / "bin" / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("mpiexec")


def require_mpi() -> str:
    """The mpiexec to use; skips the test when MPI is not installed."""
    pytest.importorskip("mpi4py")
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec (pip install mpich)")
    return mpiexec


def clean_env(**extra) -> dict:
    """This environment without any MPI launcher's variables, BLAS on one thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_VARIABLES)}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def dlcli_single(args, *, timeout=240) -> subprocess.CompletedProcess:
    """``dlcli ARGS`` in one process (no launcher), as the reference run."""
    return subprocess.run([sys.executable, str(RANK_MAIN), *map(str, args)], cwd=REPO_ROOT,
                          env=clean_env(), capture_output=True, text=True, timeout=timeout)


def mpiexec_dlcli(n, args, *, codes_dir=None, signal_at=None, timeout=300):
    """``mpiexec -n N dlcli ARGS``; ``signal_at=(rank, step, signum)`` makes that rank send
    itself the signal right after that optimizer step (SIGKILL included)."""
    mpiexec = require_mpi()
    extra = {}
    if codes_dir is not None:
        extra["DLCLI_TEST_CODES"] = codes_dir
    if signal_at is not None:
        extra["DLCLI_TEST_SIGNAL"] = ":".join(map(str, signal_at))
    command = [mpiexec, "-iface", "lo", "-n", str(n), sys.executable, str(RANK_MAIN),
               *map(str, args)]
    return subprocess.run(command, cwd=REPO_ROOT, env=clean_env(**extra), capture_output=True,
                          text=True, timeout=timeout)


def exit_codes(codes_dir) -> dict[int, int]:
    """{rank: exit code} recorded by the ranks that exited through Python."""
    return {int(p.stem[4:]): int(p.read_text()) for p in pathlib.Path(codes_dir).glob("rank*")}

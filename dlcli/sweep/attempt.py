"""One attempt at a trial: how it (re)starts, the process that runs it, and its outcome.

Shared by every executor (a driver's local process pool, a Dask worker). Before an attempt,
:func:`plan` waits until no live process holds the trial's run lock, then decides:

* the run directory's summary says ``finished``, ``diverged`` or ``failed``: nothing to run,
  the result is read back (the driver died after the trial ended, before recording it);
* a committed checkpoint exists: ``dlcli train --resume RUN_DIR``, the mechanism that makes a
  resumed run bit-identical to an uninterrupted one;
* otherwise the trial starts again from nothing; a directory left by an earlier attempt is
  moved to ``abandoned/NNNN-K`` first, so no trial ever runs twice into the same directory.
"""

import os
import pathlib
import subprocess
import sys
import time

from dlcli.sweep import record
from dlcli.train.io import lock_holder_alive, pid_alive, read_lock

STOP_FILE = "stop"
LOCK_WAIT_S = 300.0
PID_WAIT_S = 60.0  # a pid may have been reused meanwhile: wait, but not for ever
# Exit codes of the dlcli command line in a trial's process.
EXIT_INTERRUPTED = (130, 143)


def trial_paths(sweep_dir, number: int) -> dict:
    sweep_dir = pathlib.Path(sweep_dir)
    name = record.trial_name(number)
    return {"run_dir": sweep_dir / "trials" / name, "config": sweep_dir / "configs" /
            f"{name}.yaml", "log": sweep_dir / "logs" / f"{name}.log"}


def _wait_for_lock(run_dir: pathlib.Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        holder = read_lock(run_dir / "lock")
        if holder is None or holder[0] == os.getpid() or not lock_holder_alive(*holder):
            return
        time.sleep(0.2)


def _committed(run_dir: pathlib.Path) -> bool:
    checkpoints = run_dir / "checkpoints"
    return any((checkpoints / f"{name}.json").is_file() and
               (checkpoints / f"{name}.npz").is_file() for name in ("last", "previous"))


def _wait_for_pid(pid: int, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while pid != os.getpid() and pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def plan(sweep_dir, number: int, wait_s: float = LOCK_WAIT_S,
         previous: dict | None = None) -> tuple[str, list[str]]:
    """``("done", [])``, ``("resume", argv)`` or ``("fresh", argv)`` for trial ``number``.

    ``previous``: the trial's last record; a process of an earlier attempt on this machine
    (one whose driver was killed, stopping itself) is waited for first, even before it has
    taken its run's lock."""
    paths = trial_paths(sweep_dir, number)
    run_dir = paths["run_dir"]
    previous = previous or {}
    if previous.get("pid") and previous.get("host") == os.uname().nodename:
        _wait_for_pid(previous["pid"], PID_WAIT_S)
    if run_dir.exists():
        _wait_for_lock(run_dir, wait_s)
        status = record.run_outcome(run_dir, "loss")["run_status"]
        if status in ("finished", "diverged", "failed"):
            return "done", []
        if _committed(run_dir):
            return "resume", ["train", "--resume", str(run_dir), "-q"]
        abandoned = pathlib.Path(sweep_dir) / "abandoned"
        abandoned.mkdir(exist_ok=True)
        for k in range(1, 1000):
            target = abandoned / f"{record.trial_name(number)}-{k}"
            if not target.exists():
                os.replace(run_dir, target)
                break
    return "fresh", ["train", str(paths["config"]), "--run-dir", str(run_dir), "-q"]


def command(sweep_dir, argv: list[str], threads: int) -> tuple[list[str], dict]:
    """The trial process's command line and environment: this Python and this dlcli, with
    ``threads`` BLAS threads (fixed per trial: a resumed trial must compute as before)."""
    import dlcli
    root = str(pathlib.Path(dlcli.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]]
                                                  if env.get("PYTHONPATH") else []))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    stop = str(pathlib.Path(sweep_dir) / STOP_FILE)
    return [sys.executable, "-m", "dlcli.sweep.child", str(os.getpid()), stop, *argv], env


def open_log(sweep_dir, number: int, kind: str, argv: list[str]):
    path = trial_paths(sweep_dir, number)["log"]
    path.parent.mkdir(exist_ok=True)
    handle = open(path, "a", encoding="utf-8")
    handle.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {kind}: dlcli "
                 f"{' '.join(argv)} (host {os.uname().nodename}, pid {os.getpid()})\n")
    handle.flush()
    return handle


def outcome(sweep_dir, number: int, metric: str, returncode: int | None) -> dict:
    """The record of an ended attempt. ``returncode`` None: nothing ran (read back)."""
    run_dir = trial_paths(sweep_dir, number)["run_dir"]
    result = record.run_outcome(run_dir, metric)
    status = result["run_status"]
    if returncode is None:
        state = "finished" if status == "finished" else "failed"
    elif returncode == 0:
        state = "finished"
    elif returncode in EXIT_INTERRUPTED and status == "interrupted":
        state = "interrupted"
    elif returncode in (1, 2):
        state = "failed"  # diverged, a training error or bad input: the same again on retry
    else:
        state = "crashed"  # killed (kill -9, out of memory) or a lost machine: continued
    result["exit_code"] = returncode
    return {**result, "status": state}


def run_blocking(sweep_dir, number: int, metric: str, threads: int) -> dict:
    """Plan, run and read back one attempt in this process (a Dask worker's task)."""
    kind, argv = plan(sweep_dir, number)
    if kind == "done":
        return {**outcome(sweep_dir, number, metric, None), "kind": kind}
    cmd, env = command(sweep_dir, argv, threads)
    with open_log(sweep_dir, number, kind, argv) as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait()
        except BaseException:
            proc.terminate()
            raise
    return {**outcome(sweep_dir, number, metric, code), "kind": kind,
            "host": os.uname().nodename}

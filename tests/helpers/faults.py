"""Fault injection: kill a dlcli writer with SIGKILL at its Nth filesystem call.

Run as ``python -m tests.helpers.faults SPEC.json`` (the suite in
tests/train/test_fault_injection.py does). One process imports dlcli once and forks a
child per training or resume; in the child every call that changes the run directory is
counted (``os.replace``, ``os.rename``, ``os.link``, ``os.unlink``, ``os.fsync``,
``os.ftruncate``, ``os.open`` for writing, ``open`` for writing and each ``write`` on such a
file) and the call numbered ``kill_at`` is replaced by ``os.kill(getpid(), SIGKILL)``: a real
kill, before that call happens. A trial is a list of kill points: the first for the fresh
run, the next ones for the resumes that follow (a crash during the recovery itself), then a
resume left to finish. After each kill and at the end it checks:

* a verified checkpoint remains once one was committed (``recovery.latest``);
* after the final resume: no temporary file is left, the final ``last`` (weights and
  optimizer state) and ``metrics.jsonl`` are bit-identical to an uninterrupted run's,
  ``best`` verifies, holds the epoch ``summary.json`` names and the reference's weights.

SPEC: {"work": dir, "config": yaml path, "trials": [[n1, n2, ...], ...]} or
{"work":..., "config":..., "count": true} (counts the calls of an uninterrupted run and of
a resume; prints JSON). Prints one JSON object: {"problems": [...], "trials": k}.
"""

import builtins
import io
import json
import os
import pathlib
import shutil
import signal
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # forking a multithreaded BLAS can hang
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from dlcli.config import load_config  # noqa: E402
from dlcli.errors import CheckpointError, DlcliError  # noqa: E402
from dlcli.train import checkpoint as ckpt  # noqa: E402
from dlcli.train import recovery, session  # noqa: E402

KILLED, FINISHED = "killed", "finished"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class _Counter:
    def __init__(self, kill_at, log=None):
        self.n = 0
        self.kill_at = kill_at
        self.log = log

    def tick(self, what):
        self.n += 1
        if self.log is not None:
            self.log.append(what)
        if self.n == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


class _File:
    """A file opened for writing whose ``write`` calls are counted."""

    def __init__(self, handle, counter, name):
        self._handle, self._counter, self._name = handle, counter, name

    def write(self, data):
        self._counter.tick(f"write {self._name}")
        return self._handle.write(data)

    def __enter__(self):
        self._handle.__enter__()
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)

    def __iter__(self):
        return iter(self._handle)

    def __getattr__(self, name):
        return getattr(self._handle, name)


def _install(counter):
    def wrap(name):
        original = getattr(os, name)

        def hooked(*args, **kwargs):
            counter.tick(f"{name} {pathlib.Path(str(args[0])).name if args else ''}")
            return original(*args, **kwargs)
        setattr(os, name, hooked)

    for name in ("replace", "rename", "link", "unlink", "fsync", "ftruncate"):
        wrap(name)
    real_os_open = os.open

    def os_open(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS:
            counter.tick(f"os.open {pathlib.Path(str(path)).name}")
        return real_os_open(path, flags, *args, **kwargs)
    os.open = os_open
    real_open = io.open

    def hooked_open(file, mode="r", *args, **kwargs):
        if isinstance(mode, str) and any(c in mode for c in "wax+"):
            counter.tick(f"open {pathlib.Path(str(file)).name}")
            return _File(real_open(file, mode, *args, **kwargs), counter,
                         pathlib.Path(str(file)).name)
        return real_open(file, mode, *args, **kwargs)
    builtins.open = io.open = hooked_open


def _in_child(fn, kill_at=None, log_path=None):
    """Run ``fn`` in a forked child with the hook; returns (outcome, detail)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        log = [] if log_path else None
        counter = _Counter(kill_at, log)
        _install(counter)
        try:
            fn()
            result = {"outcome": FINISHED, "calls": counter.n}
        except DlcliError as exc:
            result = {"outcome": "error", "message": str(exc), "calls": counter.n}
        except BaseException as exc:  # noqa: BLE001
            result = {"outcome": "crash", "message": f"{type(exc).__name__}: {exc}"}
        if log_path:
            pathlib.Path(log_path).write_text("\n".join(log))
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return {"outcome": KILLED}
    return json.loads(b"".join(chunks) or b'{"outcome": "no result"}')


def _train(config_path, run_dir):
    return lambda: session.train(load_config(config_path), run_dir=run_dir)


def _resume(run_dir):
    def run():
        config, _ = session.open_resume(run_dir, None, (), False)
        session.train(config, run_dir=run_dir, resume=True)
    return run


def _rows(run_dir):
    text = (run_dir / "metrics.jsonl").read_text()
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in text.splitlines()]


def _same_arrays(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _committed(run_dir):
    return any((run_dir / "checkpoints" / f"{n}.json").exists() for n in recovery.NAMES)


def _check_final(run_dir, reference, problems, label):
    leftovers = [str(p.relative_to(run_dir)) for p in run_dir.rglob(".tmp-*")]
    if leftovers:
        problems.append(f"{label}: temporary files left: {leftovers}")
    last = ckpt.load(run_dir / "checkpoints" / "last.npz", retry=False)
    want = ckpt.load(reference / "checkpoints" / "last.npz", retry=False)
    if not (_same_arrays(last["model"], want["model"])
            and _same_arrays(last["optimizer"], want["optimizer"])):
        problems.append(f"{label}: final weights differ from the uninterrupted run")
    if _rows(run_dir) != _rows(reference):
        problems.append(f"{label}: metrics.jsonl differs from the uninterrupted run")
    summary = json.loads((run_dir / "summary.json").read_text())
    best = ckpt.load(run_dir / "checkpoints" / "best.npz", retry=False)
    ref_best = ckpt.load(reference / "checkpoints" / "best.npz", retry=False)
    if int(best["trainer"]["epoch"]) != summary["best_epoch"]:
        problems.append(f"{label}: best.npz holds epoch {int(best['trainer']['epoch'])}, "
                        f"summary.json says {summary['best_epoch']}")
    if not _same_arrays(best["model"], ref_best["model"]):
        problems.append(f"{label}: best.npz weights differ from the uninterrupted run's")


def run_trial(config_path, reference, run_dir, kills, problems):
    label = f"kills {kills}"
    ever_committed = False
    for stage, kill_at in enumerate(kills):
        fn = _train(config_path, run_dir) if stage == 0 else _resume(run_dir)
        result = _in_child(fn, kill_at)
        if result["outcome"] == "error" and not ever_committed:
            return  # killed before the first checkpoint: nothing to resume, said in one line
        if result["outcome"] not in (KILLED, FINISHED):
            problems.append(f"{label}: stage {stage} ended {result}")
            return
        ever_committed = ever_committed or _committed(run_dir)
        if ever_committed:
            try:
                recovery.latest(run_dir / "checkpoints")
            except CheckpointError as exc:
                problems.append(f"{label}: after stage {stage} no verified checkpoint: {exc}")
                return
        if result["outcome"] == FINISHED:
            break
    if (run_dir / "summary.json").exists() and \
            json.loads((run_dir / "summary.json").read_text()).get("status") == "finished":
        _check_final(run_dir, reference, problems, label)
        return
    result = _in_child(_resume(run_dir))
    if result["outcome"] != FINISHED:
        if not ever_committed and result["outcome"] == "error":
            return  # a one-line refusal (no checkpoint yet, or not a run directory yet)
        problems.append(f"{label}: final resume ended {result}")
        return
    _check_final(run_dir, reference, problems, label)


def main(spec_path):
    spec = json.loads(pathlib.Path(spec_path).read_text())
    work = pathlib.Path(spec["work"])
    config = spec["config"]
    reference = work / "reference"
    if not reference.exists():
        result = _in_child(_train(config, reference), log_path=str(work / "calls.txt"))
        if result["outcome"] != FINISHED:
            raise SystemExit(f"the reference run failed: {result}")
    if spec.get("count"):
        calls = (work / "calls.txt").read_text().splitlines()
        print(json.dumps({"calls": calls}))
        return
    problems = []
    for i, kills in enumerate(spec["trials"]):
        run_dir = work / f"trial{i}"
        run_trial(config, reference, run_dir, kills, problems)
        shutil.rmtree(run_dir, ignore_errors=True)
    print(json.dumps({"problems": problems, "trials": len(spec["trials"])}))


if __name__ == "__main__":
    main(sys.argv[1])

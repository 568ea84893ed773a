"""Kill the writer (SIGKILL) at each filesystem call of the checkpoint protocol, once or
twice (a crash during the recovery), and check what the next starts make of it: a verified
checkpoint remains, no temporary file survives, resume ends bit-identical to an
uninterrupted run, best.npz agrees with summary.json. See tests/helpers/faults.py.

By default: every call of the second epoch's checkpoint write (rotation into ``previous``,
the new ``last``, the link into ``best``), single kills, plus double and triple kills drawn
from those calls and the resume's. ``DLCLI_FAULTS=full`` sweeps every call of the whole run
singly and every pair (epoch-2 checkpoint call, each of the resume's first 60 calls): a few
thousand runs, tens of minutes (docs/faults.md).
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FULL = os.environ.get("DLCLI_FAULTS", "") == "full"

CONFIG = """\
name: faults
seed: 2
data: {source: "synthetic:moons", params: {n_samples: 48, noise: 0.3}, validation_split: 0.25}
model:
  layers: [{type: dense, units: 4, activation: tanh}, {type: dropout, rate: 0.2},
           {type: dense, units: 1, activation: sigmoid}]
  loss: binary_crossentropy
training: {epochs: 4, batch_size: 18, optimizer: {type: adam, lr: 0.05}, checkpoint_every: 1}
"""
CHECKPOINT_FILES = ("last.", "previous.", "best.")


def _work_dir(tmp_path):
    # tmpfs when there is one: fsync costs nothing there, and kills test the same renames
    shm = pathlib.Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return pathlib.Path(tempfile.mkdtemp(prefix="dlcli-faults-", dir=shm))
    return tmp_path


def _driver(work, **spec):
    spec_path = work / f"spec-{len(list(work.glob('spec-*')))}.json"
    spec_path.write_text(json.dumps({"work": str(work), "config": str(work / "c.yaml"),
                                     **spec}))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "tests.helpers.faults", str(spec_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=3600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    import shutil
    path = _work_dir(tmp_path_factory.mktemp("faults"))
    (path / "c.yaml").write_text(CONFIG)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def calls(work):
    """The numbered filesystem calls of an uninterrupted run."""
    return _driver(work, count=True)["calls"]


def _checkpoint_calls(calls, epoch):
    """Numbers (from 1) of the calls of epoch ``epoch``'s checkpoint write: from the end of
    its metrics lines to the next epoch's."""
    starts = [i for i, c in enumerate(calls) if c == "write metrics.jsonl"]
    begin = starts[epoch - 1]
    end = starts[epoch] if epoch < len(starts) else len(calls)
    ours = [i + 1 for i in range(begin, end)
            if any(name in calls[i] for name in CHECKPOINT_FILES)]
    return list(range(ours[0], ours[-1] + 2))  # through the last fsync


def test_the_suite_sees_every_kind_of_call(calls):
    kinds = {c.split()[0] for c in calls}
    assert {"open", "write", "fsync", "replace", "link", "unlink"} <= kinds
    epoch2 = [calls[n - 1] for n in _checkpoint_calls(calls, 2)]
    assert any(c.startswith("link last.npz") for c in epoch2)  # rotation into previous
    assert any(c.startswith("replace .tmp-last.json") for c in epoch2)  # the commit


def test_single_kills_at_every_call_of_a_checkpoint_write(work, calls):
    points = range(1, len(calls) + 2) if FULL else _checkpoint_calls(calls, 2)
    result = _driver(work, trials=[[n] for n in points])
    assert result["problems"] == []
    assert result["trials"] == len(points)


def test_double_and_triple_kills_including_during_recovery(work, calls):
    epoch2 = _checkpoint_calls(calls, 2)
    if FULL:
        trials = [[a, b] for a in epoch2 for b in range(1, 61)]
    else:
        rng = np.random.default_rng(16)
        trials = [[int(rng.choice(epoch2)), int(b)] for b in rng.integers(1, 60, 8)]
        trials += [[int(rng.choice(epoch2)), int(rng.integers(1, 40)), int(rng.integers(1, 40))]
                   for _ in range(3)]
    result = _driver(work, trials=trials)
    assert result["problems"] == []

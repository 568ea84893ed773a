"""``--threads auto`` (issue 17, point 3): the BLAS thread count is chosen per run from a
measurement of the model's own step, printed and recorded; ``--threads N`` forces it."""

import json

import pytest

from dlcli.config import resolve
from dlcli.nn import blas
from dlcli.train import session, threads
from tests.helpers.cli import installed_dlcli, run_dlcli
from tests.helpers.configs import moons_mlp, write_config


@pytest.fixture(autouse=True)
def restore_threads():
    before = blas.get_threads()
    yield
    if before is not None:
        blas.set_threads(before)


def test_candidates_from_one_to_the_default():
    assert threads.candidates(1) == [1]
    assert threads.candidates(2) == [1, 2]
    assert threads.candidates(6) == [1, 2, 4, 6]
    assert threads.candidates(8) == [1, 2, 4, 8]


@pytest.mark.parametrize("times, expected", [
    ({1: 1.0, 2: 0.97}, 1),   # within 5%: the fewer threads
    ({1: 1.0, 2: 0.5}, 2),    # clearly faster
    ({1: 1.0, 2: 30.0}, 1),   # a busy second core
])
def test_the_fastest_count_wins_ties_go_to_fewer(monkeypatch, times, expected):
    if blas.get_threads() is None:
        pytest.skip("the BLAS thread count cannot be read here")
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(blas, "get_threads", lambda: 2)
    monkeypatch.setattr(blas, "set_threads", lambda n: True)
    monkeypatch.setattr(threads, "measure", lambda step, n, **kw: times[n])
    config = resolve(moons_mlp())
    import numpy as np
    x, y = np.zeros((8, 2), np.float32), np.zeros(8, np.int64)
    info = threads.choose(config, x, y, "classification", 0, "auto")
    assert info["threads"] == expected and info["mode"] == "auto"
    assert info["step_ms"] == {str(n): round(t * 1000, 3) for n, t in times.items()}


def test_forced_count_is_not_measured():
    info = threads.choose(resolve(moons_mlp()), None, None, "classification", 0, 3)
    assert info == {"mode": "forced", "threads": 3, "step_ms": {}}


def test_measuring_leaves_the_run_untouched(tmp_path):
    """A run with auto ends exactly as a run forced to the count auto chose."""
    if blas.get_threads() is None:
        pytest.skip("the BLAS thread count cannot be set here")
    auto = session.train(resolve(moons_mlp(epochs=3)), run_dir=tmp_path / "auto")
    chosen = auto["threads"]["threads"]
    assert auto["threads"]["mode"] == "auto" and chosen >= 1
    assert blas.get_threads() == chosen
    forced = session.train(resolve(moons_mlp(epochs=3)), run_dir=tmp_path / "forced",
                           threads=chosen)
    rows = [(tmp_path / name / "metrics.jsonl").read_text().splitlines()
            for name in ("auto", "forced")]
    strip = [[{k: v for k, v in json.loads(l).items() if k != "time"} for l in r]
             for r in rows]
    assert strip[0] == strip[1]


@pytest.fixture(scope="module")
def dlcli_exe(tmp_path_factory):
    return installed_dlcli(tmp_path_factory.mktemp("dlcli-install"))


def test_train_prints_and_records_the_threads(dlcli_exe, tmp_path):
    config = write_config(tmp_path / "moons.yaml", moons_mlp(epochs=1))
    result = run_dlcli(dlcli_exe, "train", config, "--run-dir", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    line = next(l for l in result.stdout.splitlines() if l.startswith("BLAS threads:"))
    if summary["threads"]["mode"] == "auto":
        assert line.startswith(f"BLAS threads: {summary['threads']['threads']} (auto")
    forced = run_dlcli(dlcli_exe, "--threads", "1", "train", config, "--run-dir",
                       tmp_path / "one", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "BLAS threads: 1 (--threads)" in forced.stdout
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["threads"] == {
        "mode": "forced", "threads": 1, "step_ms": {}}


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_threads_option_is_checked(dlcli_exe, tmp_path, value):
    result = run_dlcli(dlcli_exe, "--threads", value, "train", "x.yaml", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "--threads" in lines[0]


def test_a_resumed_run_keeps_the_count_it_was_started_with(tmp_path):
    if blas.get_threads() is None:
        pytest.skip("the BLAS thread count cannot be set here")
    raw = moons_mlp(epochs=2)
    first = session.train(resolve(raw), run_dir=tmp_path / "run", threads=1)
    assert first["threads"]["threads"] == 1
    raw["training"]["epochs"] = 3
    blas.set_threads(max(threads.candidates(threads.cores())))
    resumed = session.train(resolve(raw), run_dir=tmp_path / "run", resume=True)
    assert resumed["threads"] == {"mode": "resumed", "threads": 1, "step_ms": {}}
    assert blas.get_threads() == 1

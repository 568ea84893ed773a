"""``dlcli runs`` and ``dlcli compare`` on run directories made by training the shipped
mlp_digits config for a few epochs, plus damaged ones: interrupted (no summary.json, a stale
lock), torn last metrics line, a live lock."""

import io
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from dlcli.cli import cli
from dlcli.use.runs import (find_runs, flatten_keys as flatten, load, read_jsonl, run_status, sparkline,
                        SPARK_BARS)

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "mlp_digits.yaml")
WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def train(run_dir, *sets, epochs=2):
    args = ["train", CONFIG, "--run-dir", run_dir, "-q", "--set", f"training.epochs={epochs}"]
    for s in sets:
        args += ["--set", s]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return pathlib.Path(run_dir)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def age(run_dir, seconds=3600):
    """Make every file of a run look ``seconds`` old."""
    past = time.time() - seconds
    for path in [run_dir, *run_dir.rglob("*")]:
        os.utime(path, (past, past))


def copy_run(source, target, name=None):
    """A copy of a trained run (cheaper than training again), renamed in its config."""
    shutil.copytree(source, target)
    if name is not None:
        config = target / "config.yaml"
        config.write_text(config.read_text().replace(f"name: {source_name(source)}\n",
                                                     f"name: {name}\n", 1))
        summary = target / "summary.json"
        if summary.exists():
            data = json.loads(summary.read_text())
            summary.write_text(json.dumps({**data, "name": name}))
    return target


def source_name(run_dir):
    return json.loads((run_dir / "summary.json").read_text())["name"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    first = train(root / "mlp_digits-20250101-120000")
    train(root / "mlp_digits-20250102-120000", "training.optimizer.lr=0.01", epochs=3)
    # Killed without a summary, its lock naming a process that is gone.
    gone = copy_run(first, root / "mlp_digits-20250103-120000")
    (gone / "summary.json").unlink()
    (gone / "lock").write_text(f"{dead_pid()}\n")
    age(gone)
    # Crashed while appending a line.
    torn = copy_run(first, root / "torn-20250104-120000", name="torn")
    with open(torn / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 3, "loss": 0.2')
    (torn / "summary.json").unlink()
    age(torn)
    # Still training: its lock names a live process (this one).
    live = copy_run(first, root / "mlp_digits-20250105-120000")
    (live / "summary.json").unlink()
    (live / "lock").write_text(f"{os.getpid()}\n")
    (root / "not-a-run").mkdir()
    return root


def as_json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_runs_json_newest_first_with_statuses(root):
    rows = as_json(invoke("runs", root, "--json"))
    assert [r["name"] for r in rows] == [
        "mlp_digits-20250105-120000", "torn-20250104-120000", "mlp_digits-20250103-120000",
        "mlp_digits-20250102-120000", "mlp_digits-20250101-120000"]
    status = {r["name"]: r["status"] for r in rows}
    assert status == {"mlp_digits-20250105-120000": "running",
                      "torn-20250104-120000": "interrupted",
                      "mlp_digits-20250103-120000": "interrupted",
                      "mlp_digits-20250102-120000": "finished",
                      "mlp_digits-20250101-120000": "finished"}
    by_name = {r["name"]: r for r in rows}
    assert by_name["mlp_digits-20250102-120000"]["epochs_done"] == 3
    assert by_name["torn-20250104-120000"]["epochs_done"] == 2
    assert by_name["torn-20250104-120000"]["config"] == "torn"
    assert by_name["mlp_digits-20250101-120000"]["started"] == "2025-01-01T12:00:00"


def test_best_and_curve_match_metrics_jsonl(root):
    rows = {r["name"]: r for r in as_json(invoke("runs", root, "--json"))}
    for name in ("mlp_digits-20250102-120000", "torn-20250104-120000"):
        metrics = [json.loads(line) for line in
                   (root / name / "metrics.jsonl").read_text().splitlines()
                   if line.endswith("}")]
        val = [m["val_loss"] for m in metrics]
        row = rows[name]
        assert row["monitor"] == "val_loss" and row["curve_metric"] == "val_loss"
        assert row["best"] == pytest.approx(min(val))
        assert row["best_epoch"] == val.index(min(val)) + 1
        assert row["curve"] == pytest.approx(val)
        assert row["wall_time_s"] > 0


def test_torn_line_is_skipped_with_a_warning(root):
    result = invoke("runs", root, "--json")
    assert "torn-20250104-120000/metrics.jsonl: the last line is incomplete" in result.stderr
    torn = load(root / "torn-20250104-120000")
    assert len(torn.history) == 2 and torn.warnings


def test_runs_table(root):
    result = invoke("runs", root, env=WIDE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name in ("mlp_digits-20250101-120000", "torn-20250104-120000"):
        assert name in out
    for word in ("finished", "interrupted", "running", "best val_loss", "curve: val_loss"):
        assert word in out
    assert "2025-01-02 12:00" in out  # the started column on a wide console
    assert "\x1b" not in out
    line = next(line for line in out.splitlines() if "mlp_digits-20250102" in line)
    assert any(bar in line for bar in SPARK_BARS)


def test_runs_filters(root):
    rows = as_json(invoke("runs", root, "--json", "--status", "interrupted"))
    assert {r["name"] for r in rows} == {"torn-20250104-120000", "mlp_digits-20250103-120000"}
    rows = as_json(invoke("runs", root, "--json", "--config", "torn"))
    assert [r["name"] for r in rows] == ["torn-20250104-120000"]
    assert as_json(invoke("runs", root, "--json", "--status", "diverged")) == []
    result = invoke("runs", root, "--status", "bogus")
    assert result.exit_code == 2


def test_runs_of_a_missing_root(tmp_path):
    result = invoke("runs", tmp_path / "nothing")
    assert result.exit_code == 2
    assert "no such directory" in result.stderr


def test_compare(root):
    a, b, torn = (root / n for n in ("mlp_digits-20250101-120000", "mlp_digits-20250102-120000",
                                      "torn-20250104-120000"))
    data = as_json(invoke("compare", a, b, "--json"))
    assert data["config"] == {"training.epochs": [2, 3], "training.optimizer.lr": [0.001, 0.01]}
    assert data["status"] == ["finished", "finished"]
    final_b = json.loads((b / "summary.json").read_text())["final"]
    assert data["final"]["val_loss"][1] == pytest.approx(final_b["val_loss"])
    assert set(data["final"]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}

    result = invoke("compare", a, b, torn, env=WIDE)
    assert result.exit_code == 0, result.output
    for text in ("training.optimizer.lr", "training.epochs", "name", "0.001", "0.01",
                 "val_accuracy", "interrupted"):
        assert text in result.stdout
    assert "data.source" not in result.stdout  # identical keys are not shown


def test_compare_needs_two_runs(root, tmp_path):
    result = invoke("compare", root / "mlp_digits-20250101-120000")
    assert result.exit_code == 2 and "at least two" in result.stderr
    result = invoke("compare", root / "mlp_digits-20250101-120000", tmp_path)
    assert result.exit_code == 2 and "not a dlcli run directory" in result.stderr


# ---- pieces ---------------------------------------------------------------------------------
def test_read_jsonl(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"epoch": 1}\nnot json\n[1, 2]\n{"epoch": 2}\n{"epoch": 3, "lo')
    rows, warnings = read_jsonl(path)
    assert rows == [{"epoch": 1}, {"epoch": 2}]
    assert len(warnings) == 3
    assert "line 2" in warnings[0] and "line 3" in warnings[1]
    assert "last line is incomplete" in warnings[2]
    assert read_jsonl(tmp_path / "missing.jsonl") == ([], [])


def test_a_lock_whose_pid_was_reused_is_not_running(tmp_path):
    """The lock names its writer by pid and start time (as the training lock is taken
    over): this process's pid with another start time is a reused pid, not the writer."""
    from dlcli.train.io import process_start_time
    start = process_start_time(os.getpid())
    if start is None:
        pytest.skip("no /proc/PID/stat here")
    run = tmp_path / "r"
    run.mkdir()
    (run / "lock").write_text(f"{os.getpid()} {start}\n")
    assert run_status(run, None, [], now=time.time() + 3600) == "running"
    (run / "lock").write_text(f"{os.getpid()} {start + 1}\n")
    assert run_status(run, None, [], now=time.time() + 3600) == "interrupted"


def test_status_rules(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("name: r\n")
    now = time.time()
    assert run_status(run, {"status": "diverged"}, []) == "diverged"
    assert run_status(run, {"status": "running", "pid": os.getpid()}, []) == "running"
    assert run_status(run, {"status": "running", "pid": dead_pid()}, []) == "interrupted"
    (run / "lock").write_text(json.dumps({"pid": os.getpid()}))
    assert run_status(run, None, []) == "running"
    (run / "lock").write_text(str(dead_pid()))
    assert run_status(run, None, []) == "interrupted"
    (run / "lock").unlink()
    # No pid anywhere: fresh files mean running, old ones interrupted.
    assert run_status(run, None, [], now=now) == "running"
    assert run_status(run, None, [], now=now + 3600) == "interrupted"
    assert run_status(run, None, [{"time": 1000.0}], now=now + 3600) == "running"


def test_sparkline():
    assert sparkline([3, 2, 1]) == "█▅▁"  # the middle rounds to bar 4 of 0..7
    assert sparkline([1, 1]) == "▁▁"
    assert sparkline([1, None, math.nan, 2]) == "▁  █"
    assert sparkline([]) == ""
    long = sparkline(list(range(100)), width=10)
    assert len(long) == 10 and long[0] == "▁" and long[-1] == "█"


def test_flatten():
    config = {"training": {"optimizer": {"lr": 0.1, "betas": [0.9, 0.999]}},
              "model": {"layers": [{"type": "dense", "units": 4}, {"type": "flatten"}]},
              "x": {}}
    assert flatten(config) == {"training.optimizer.lr": 0.1,
                               "training.optimizer.betas": [0.9, 0.999],
                               "model.layers[0].type": "dense", "model.layers[0].units": 4,
                               "model.layers[1].type": "flatten", "x": {}}


def test_single_run_dir_and_empty_run(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    (run / "config.yaml").write_text("name: bare\n")
    age(run)
    found = find_runs(run)  # a run directory given as the root lists itself
    assert len(found) == 1
    r = found[0]
    assert (r.status, r.epochs_done, r.best, r.config_name) == ("interrupted", 0, None, "bare")
    assert r.started is not None


def test_no_color_and_plain_output(root, monkeypatch):
    """rich honours NO_COLOR by itself; a terminal without it gets colour."""
    from rich.console import Console

    from dlcli.use.report import print_runs

    runs = find_runs(root)
    buffer = io.StringIO()
    monkeypatch.delenv("NO_COLOR", raising=False)
    print_runs(Console(file=buffer, force_terminal=True, width=160), runs)
    assert "\x1b[32m" in buffer.getvalue()  # finished in green
    monkeypatch.setenv("NO_COLOR", "1")
    buffer = io.StringIO()
    print_runs(Console(file=buffer, force_terminal=True, width=160), runs)
    colours = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-8]|9[0-7])[;m]")  # foreground colours
    assert "\x1b[" in buffer.getvalue()  # still a terminal: bold and italic stay
    assert not colours.search(buffer.getvalue())


def test_training_output_without_a_terminal_has_no_bar(tmp_path):
    result = invoke("train", CONFIG, "--run-dir", tmp_path / "r", "--set", "training.epochs=2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "\x1b" not in out and "━" not in out.split("epoch 2/2")[0]
    assert [line.split()[1] for line in out.splitlines()
            if line.startswith("epoch ")] == ["1/2", "2/2"]


def test_train_output_ends_with_location_eval_command_and_loss_sparkline(tmp_path):
    from click.testing import CliRunner

    from dlcli.cli import cli
    from dlcli.use.runs import SPARK_BARS

    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", str(REPO / "configs" / "xor_mlp.yaml"),
                                      "--run-dir", str(run_dir),
                                      "--set", "training.epochs=4"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    epoch_lines = [l for l in lines if l.startswith("epoch ")]
    assert len(epoch_lines) == 4 and all(" lr 0.01 " in l for l in epoch_lines)
    spark = next(l for l in lines if l.startswith("loss per epoch "))
    bars = spark.split()[3]
    assert len(bars) == 4 and set(bars) <= set(SPARK_BARS)
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows]
    assert bars[losses.index(max(losses))] == SPARK_BARS[-1]  # scaled min..max per run
    assert bars[losses.index(min(losses))] == SPARK_BARS[0]
    assert f"run written to {run_dir}" in result.stdout
    assert f"dlcli eval {run_dir}" in result.stdout


def test_the_cli_status_filter_knows_every_status():
    from dlcli import cli
    from dlcli.use import runs

    assert cli.RUN_STATUSES == runs.STATUSES

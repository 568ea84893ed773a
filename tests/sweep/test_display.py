"""The live table a sweep shows on a terminal, and its one line per trial elsewhere."""

import io

from rich.console import Console

from dlcli.sweep.display import SweepDisplay
from dlcli.sweep.spec import Spec

SPEC = Spec(data={"name": "s", "metric": {"name": "val_accuracy", "goal": "max"},
                  "parameters": {"training.optimizer.lr": {"loguniform": [1e-4, 1e-1]}}})


def rows():
    params = [{"training.optimizer.lr": lr} for lr in (0.001, 0.01, 0.1)]
    return [{"trial": n, "status": "running", "params": p, "resumed": n == 2}
            for n, p in enumerate(params)], params


def test_the_live_table_shows_running_done_failed_and_the_best(tmp_path):
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True, color_system=None)
    display = SweepDisplay(console, SPEC, 3, True, tmp_path)
    started, params = rows()
    for row in started:
        display.started(row["trial"], row)
    best = {"trial": 1, "value": 0.93}
    display.ended(0, {"trial": 0, "status": "finished", "metric": 0.91, "params": params[0]},
                  {"trial": 0, "value": 0.91})
    display.ended(1, {"trial": 1, "status": "finished", "metric": 0.93, "params": params[1]},
                  best)
    table = display._table()
    display.close()
    probe = Console(file=io.StringIO(), width=120, color_system=None)
    probe.print(table)
    text = probe.file.getvalue()
    assert ("1 running, 2 done, 0 failed of 3; best val_accuracy 0.93 (trial 0001)"
            in " ".join(text.split()))
    lines = {line.split("│")[1].strip(): line for line in text.splitlines()
             if line.count("│") > 3 and line.split("│")[1].strip().isdigit()}
    assert "0.93 *" in lines["0001"] and "finished" in lines["0001"]
    assert "running (resumed)" in lines["0002"] and "0.1" in lines["0002"]
    assert "0.91" in lines["0000"] and "*" not in lines["0000"]


def test_off_a_terminal_one_line_per_ended_trial(tmp_path):
    out = io.StringIO()
    display = SweepDisplay(Console(file=out, width=80), SPEC, 3, False, tmp_path)
    started, params = rows()
    for row in started:
        display.started(row["trial"], row)
    assert out.getvalue() == ""
    display.ended(2, {"trial": 2, "status": "failed", "exit_code": 1, "params": params[2]},
                  None)
    display.ended(0, {"trial": 0, "status": "finished", "metric": 0.9, "params": params[0]},
                  {"trial": 0, "value": 0.9})
    lines = out.getvalue().splitlines()
    assert lines == [
        "trial 0002 failed (exit 1; see logs/0002.log)  [1/3]  training.optimizer.lr=0.1",
        "trial 0000 finished  val_accuracy 0.9  best 0.9 (trial 0000)  [2/3]  "
        "training.optimizer.lr=0.001"]

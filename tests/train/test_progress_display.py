"""What training shows while it runs (issue 17, point 10): a header with the run directory,
the sample counts and the parameter count before the first epoch; a legend for the ``*``
of an improved epoch; an ETA in the live bar; the resume command of an interrupted run on
a line of its own."""

import io
import signal
import time

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from dlcli.cli import cli
from dlcli.train.progress import Progress, eta_text
from tests.helpers.configs import moons_mlp, write_config
from tests.helpers.interrupt import interrupt_at


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_header_and_legend_come_before_the_first_epoch(tmp_path):
    config = write_config(tmp_path / "m.yaml", moons_mlp(epochs=3))
    result = invoke("train", config, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    first_epoch = next(i for i, line in enumerate(lines) if line.startswith("epoch "))
    head = "\n".join(lines[:first_epoch])
    # moons_mlp: 120 samples, test 20% = 24, validation 10% of 96 = 10 (rounded), 86 train
    assert str(tmp_path / "run") in head
    assert "86 training" in head and "10 validation" in head and "24 test" in head
    assert f"{(2 * 8 + 8) + (8 * 2 + 2)} parameters" in head
    legend = [line for line in lines[:first_epoch] if "*" in line]
    assert legend and "val_loss" in legend[0] and "improved" in legend[0]
    assert any(line.rstrip().endswith("*") for line in lines[first_epoch:])


def test_quiet_prints_no_header(tmp_path):
    config = write_config(tmp_path / "m.yaml", moons_mlp(epochs=2))
    result = invoke("train", config, "--run-dir", tmp_path / "run", "-q")
    assert result.exit_code == 0, result.output
    assert "parameters" not in result.output.split("\n")[0]
    assert not any("improved" in line for line in result.output.splitlines())


@pytest.mark.parametrize("seconds, text", [(5.2, "5s"), (59.6, "1m00s"), (75, "1m15s"),
                                           (3600 + 125, "1h02m"), (None, "-")])
def test_eta_text(seconds, text):
    assert eta_text(seconds) == text


class FakeTrainer:
    epochs, batches_per_epoch, epoch, step = 4, 10, 0, 0

    class optimizer:
        lr = 0.1


def test_live_bar_shows_the_remaining_time():
    console = Console(file=io.StringIO(), width=120, force_terminal=True)
    progress = Progress(console, interactive=True)
    trainer = FakeTrainer()
    progress.on_train_begin(trainer)
    progress.on_epoch_begin(trainer, 1)
    try:
        for batch in range(1, 6):  # 5 of 4 x 10 steps done, in 5 s
            progress.started = time.perf_counter() - 5.0
            progress.on_batch_end(trainer, batch, {"loss": 1.0})
        fields = progress._progress.tasks[0].fields
    finally:
        progress.on_train_end(trainer, {})
    assert fields["eta"] == "35s"  # 35 steps left at 1 s each


def test_interrupt_puts_the_resume_command_on_its_own_line(tmp_path, monkeypatch):
    config = write_config(tmp_path / "m.yaml", moons_mlp(epochs=3))
    run_dir = tmp_path / "run"
    interrupt_at(monkeypatch, 4, signal.SIGINT)
    result = invoke("train", config, "--run-dir", run_dir)
    assert result.exit_code == 130, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert f"dlcli train --resume {run_dir}" in lines

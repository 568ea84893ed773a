"""Terminal text that never breaks (issue 17, point 6): an ASCII fallback for every glyph an
output encoding cannot carry, tables that never cut a header, epoch lines that wrap only
between fields, and every option checked."""

import io
import os
import subprocess

import pytest
from rich.console import Console

from dlcli.terminal import ASCII, fold_fields, to_ascii
from dlcli.train.progress import Progress
from tests.helpers.cli import installed_dlcli
from tests.helpers.configs import moons_mlp, write_config


@pytest.fixture(scope="session")
def dlcli_exe(tmp_path_factory):
    return installed_dlcli(tmp_path_factory.mktemp("dlcli-install"))


def run(exe, *args, cwd, encoding="utf-8", columns=120):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"COLUMNS": str(columns), "NO_COLOR": "1", "PYTHONIOENCODING": encoding})
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd, capture_output=True,
                          timeout=120, env=env)


def test_cp1252_output_train_runs_gradcheck_do_not_crash(dlcli_exe, tmp_path):
    config = write_config(tmp_path / "moons.yaml", moons_mlp(epochs=4, output_dir="runs"))
    for args in (["train", config], ["runs"], ["gradcheck", config], ["shapes", config],
                 ["--help"]):
        result = run(dlcli_exe, *args, cwd=tmp_path, encoding="cp1252")
        assert result.returncode == 0, (args, result.stderr.decode("cp1252"))
        text = result.stdout.decode("cp1252")  # whatever was written can be decoded
        assert "internal error" not in result.stderr.decode("cp1252")
        if args[0] in ("train", "runs"):
            assert "loss" in text
    # The loss sparkline falls back to ASCII levels, not to question marks.
    train = run(dlcli_exe, "train", config, cwd=tmp_path, encoding="cp1252").stdout
    line = next(l for l in train.decode("cp1252").splitlines() if l.startswith("loss per epoch"))
    assert "?" not in line


def test_every_glyph_dlcli_prints_has_an_ascii_fallback():
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "dlcli"
    glyphs = set()
    for path in root.rglob("*.py"):
        for literal in re.findall(r'f?"(?:[^"\\\n]|\\.)*"', path.read_text(encoding="utf-8")):
            glyphs |= {c for c in literal if ord(c) > 127}
    assert glyphs  # the scan finds the sparkline bars at least
    for glyph in glyphs:  # whatever glyph a module adds, the fallback writes ASCII for it
        stand_in = to_ascii(glyph)
        assert stand_in and stand_in.isascii(), glyph
    assert all(value.isascii() for value in ASCII.values())
    # the sparkline keeps its eight levels apart
    assert len({to_ascii(bar) for bar in "▁▂▃▄▅▆▇█"}) == 8


def lines_of(result):
    return result.stdout.decode().splitlines()


@pytest.mark.parametrize("config", ["lenet.yaml", "conv_autoencoder.yaml", "mlp_digits.yaml"])
def test_shapes_through_a_pipe_at_80_columns_never_cuts_a_header(dlcli_exe, tmp_path, config):
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / config
    result = run(dlcli_exe, "shapes", path, cwd=tmp_path, columns=80)
    assert result.returncode == 0, result.stderr
    lines = lines_of(result)
    assert all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    for header in ("output shape (h, w, c)", "mult-adds", "params"):
        assert header in text  # whole, on one line


def test_fold_fields_breaks_only_between_fields():
    fields = ["epoch 10/100", "loss 0.1234", "accuracy 0.9876", "val_loss 0.2345",
              "val_accuracy 0.9012", "lr 0.001", "(0.12s)", "*"]
    lines = fold_fields(fields, 40, sep="  ")
    assert all(len(line) <= 40 for line in lines)
    joined = " ".join(line.strip() for line in lines)
    for field in fields:
        assert field in joined
    # the fields in order, each whole on one line
    flat = [f for line in lines for f in line.strip().split("  ")]
    assert flat == fields


def test_plain_epoch_line_on_a_60_column_terminal_wraps_at_field_boundaries():
    buffer = io.StringIO()
    console = Console(file=buffer, width=60, force_terminal=True, color_system=None)
    progress = Progress(console, interactive=False)

    class Loop:
        epochs = 100

    logs = {"epoch": 7, "loss": 0.123456, "accuracy": 0.98765, "val_loss": 0.234567,
            "val_accuracy": 0.901234, "lr": 0.001, "time": 0.123, "best": True}
    progress.on_epoch_end(Loop(), 7, logs)
    lines = buffer.getvalue().splitlines()
    assert len(lines) >= 2 and all(len(line) <= 60 for line in lines)
    text = "\n".join(lines)
    for field in ("epoch   7/100", "loss 0.1235", "accuracy 0.9877", "val_loss 0.2346",
                  "val_accuracy 0.9012", "lr 0.001", "(0.12s)"):
        assert field in text, (field, text)


def test_plain_epoch_line_into_a_file_stays_one_line():
    buffer = io.StringIO()
    console = Console(file=buffer, width=60, color_system=None)  # not a terminal
    progress = Progress(console, interactive=False)

    class Loop:
        epochs = 100

    logs = {"epoch": 7, "loss": 0.123456, "accuracy": 0.98765, "val_loss": 0.234567,
            "val_accuracy": 0.901234, "lr": 0.001, "time": 0.123, "best": False}
    progress.on_epoch_end(Loop(), 7, logs)
    assert len(buffer.getvalue().splitlines()) == 1


def test_live_bar_at_60_columns_keeps_each_field_whole():
    buffer = io.StringIO()
    console = Console(file=buffer, width=60, force_terminal=True, color_system=None)
    progress = Progress(console, interactive=True)

    class Optimizer:
        lr = 0.001

    class Loop:
        epochs = 100
        batches_per_epoch = 250
        optimizer = Optimizer()

    progress.on_train_begin(Loop())
    try:
        progress.on_epoch_begin(Loop(), 17)
        progress.on_batch_end(Loop(), 120, {"loss": 0.123456})
        probe = Console(file=io.StringIO(), width=60, color_system=None)
        probe.print(progress._progress.make_tasks_table(progress._progress.tasks))
        shown = probe.file.getvalue()
    finally:
        progress._stop()
    lines = shown.splitlines()
    assert all(len(line.rstrip()) <= 60 for line in lines)
    for field in ("epoch 17/100", "120/250", "loss 0.1235", "lr 0.001"):
        assert any(field in line for line in lines), shown


@pytest.mark.parametrize("command, option, value", [
    ("gradcheck", "--samples", "0"), ("gradcheck", "--entries", "0"),
    ("gradcheck", "--tolerance", "-1"), ("gradcheck", "--tolerance", "0"),
    ("train", "--seed", "-1")])
def test_options_are_checked(dlcli_exe, tmp_path, command, option, value):
    config = write_config(tmp_path / "moons.yaml", moons_mlp())
    result = run(dlcli_exe, command, config, option, value, cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and option in lines[0] and "internal error" not in lines[0]

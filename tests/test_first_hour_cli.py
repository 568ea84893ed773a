"""A new user's first hour, through the installed ``dlcli`` command (issue 17, points 1, 3,
4, 5, 6 and 7): refusals before any computation, messages a Keras user can act on, paths
that work from anywhere, text that survives narrow and non-UTF-8 terminals."""

import json
import os
import subprocess

import pytest
import yaml

from tests.helpers.cli import installed_dlcli, run_dlcli
from tests.helpers.configs import moons_mlp, write_config


@pytest.fixture(scope="session")
def dlcli_exe(tmp_path_factory):
    return installed_dlcli(tmp_path_factory.mktemp("dlcli-install"))


def errors_of(result):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert "internal error" not in result.stderr
    return result.stderr.splitlines()


# ---- point 1: refuse what cannot be right ---------------------------------------------
def test_binary_task_on_ten_digit_classes_is_refused_before_training(dlcli_exe, tmp_path):
    raw = moons_mlp()
    raw["data"] = {"source": "synthetic:blobs", "params": {"n_samples": 100, "n_classes": 10}}
    raw["model"]["layers"][-1] = {"type": "dense", "units": 1, "activation": "sigmoid"}
    raw["model"]["loss"] = "binary_crossentropy"
    path = write_config(tmp_path / "bce10.yaml", raw)
    result = run_dlcli(dlcli_exe, "train", path, "--run-dir", tmp_path / "run", cwd=tmp_path)
    lines = errors_of(result)
    assert len(lines) == 1 and "10 classes" in lines[0] and "units: 10" in lines[0]
    assert not (tmp_path / "run").exists()  # nothing computed, nothing written
    assert "epoch" not in result.stdout


# ---- point 7: messages a Keras user can act on ---------------------------------------
KERAS_STYLE = """\
epochs: 5
batch_size: 32
data: {source: "synthetic:moons"}
model:
  layers: [{type: Dense, units: 8, activation: ReLU}, {type: dense, units: 2, activation: Softmax}]
  loss: categorical_crossentropy
training:
  learning_rate: 0.1
"""


def test_keras_style_config_one_line_per_error_each_with_its_place(dlcli_exe, tmp_path):
    path = write_config(tmp_path / "keras.yaml", KERAS_STYLE)
    lines = errors_of(run_dlcli(dlcli_exe, "train", path, cwd=tmp_path))
    assert len(lines) == 3, lines
    assert all(line.startswith("error: ") and str(path) in line for line in lines)
    text = "\n".join(lines)
    assert "epochs: unknown key here; did you mean training.epochs?" in text
    assert "batch_size: unknown key here; did you mean training.batch_size?" in text
    assert "training.learning_rate: unknown key here; did you mean training.optimizer.lr?" \
        in text
    assert all(len(line) - len(str(path)) < 120 for line in lines)


@pytest.mark.parametrize("args, expected", [
    (["--epochs", "5"], "--set training.epochs=5"),
    (["--epochs=5"], "--set training.epochs=5"),
    (["--lr", "0.1"], "--set training.optimizer.lr=0.1"),
    (["--batch-size", "8"], "--set training.batch_size=8"),
    (["training.epochs=5"], "--set training.epochs=5"),
])
def test_keras_and_hydra_style_arguments_get_the_set_form(dlcli_exe, tmp_path, args,
                                                          expected):
    path = write_config(tmp_path / "moons.yaml", moons_mlp())
    lines = errors_of(run_dlcli(dlcli_exe, "train", path, *args, cwd=tmp_path))
    assert len(lines) == 1 and expected in lines[0], lines


def test_config_warning_printed_before_training(dlcli_exe, tmp_path):
    raw = moons_mlp(epochs=2)
    raw["model"]["loss"] = "mse"  # softmax with MSE: unusual, warned
    raw["task"] = "classification"
    path = write_config(tmp_path / "mse.yaml", raw)
    # stdout and stderr into one stream, in the order they were written
    merged = subprocess.run(f"'{dlcli_exe}' train '{path}' --run-dir '{tmp_path / 'run'}' 2>&1",
                            shell=True, cwd=tmp_path, capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert merged.returncode == 0, merged.stdout
    lines = merged.stdout.splitlines()
    warning = next(i for i, line in enumerate(lines) if line.startswith("warning:")
                   and "mse" in line)
    first_epoch = next(i for i, line in enumerate(lines) if line.startswith("epoch "))
    assert warning < first_epoch
    assert sum(line.startswith("warning:") and "mse" in line for line in lines) == 1

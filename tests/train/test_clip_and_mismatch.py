"""Gradient clipping against its formula; checkpoints that do not fit the config; output
directories that cannot be written."""

import math
import pathlib

import numpy as np
import yaml
from click.testing import CliRunner

from dlcli.cli import cli
from dlcli.train.trainer import clip_gradients

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_clip_by_value_then_by_global_norm():
    rng = np.random.default_rng(0)
    grads = [rng.normal(0, 3, size=(4, 3)), rng.normal(0, 3, size=(3,))]
    expected = [np.clip(g, -2.0, 2.0) for g in grads]
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in expected))  # ‖g‖ over all tensors
    scale = 1.5 / (norm + 1e-6)
    expected = [g * scale for g in expected]
    before = clip_gradients(grads, norm=1.5, value=2.0)
    assert math.isclose(before, norm, rel_tol=1e-12)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert math.isclose(math.sqrt(sum(float(np.sum(g * g)) for g in grads)), 1.5, rel_tol=1e-5)


def test_clip_by_norm_leaves_small_gradients_alone():
    grads = [np.array([0.3, -0.4])]
    assert clip_gradients(grads, norm=1.0, value=None) == 0.5
    np.testing.assert_array_equal(grads[0], [0.3, -0.4])


def _config(tmp_path, units=4, **extra):
    config = {"name": "fit", "data": {"source": "synthetic:moons", "params": {"n_samples": 40}},
              "model": {"layers": [{"type": "dense", "units": units, "activation": "relu"},
                                   {"type": "dense", "units": 1, "activation": "sigmoid"}],
                        "loss": "binary_crossentropy"},
              "training": {"epochs": 1, "batch_size": 8}}
    for key, value in extra.items():
        config["model"][key] = value
    path = tmp_path / f"c{units}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_checkpoint_that_does_not_fit_the_layers_is_refused_listing_mismatches(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", str(_config(tmp_path, units=4)), "--run-dir",
                                 str(tmp_path / "small"), "-q"])
    assert result.exit_code == 0, result.stderr
    checkpoint = tmp_path / "small" / "checkpoints" / "last.npz"
    result = runner.invoke(cli, ["train", str(_config(tmp_path, units=8, init_from=str(checkpoint))),
                                 "--run-dir", str(tmp_path / "big")])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert len(result.stderr.splitlines()) == 1
    assert "dense1.weight has shape (4, 2), the model needs (8, 2)" in line
    assert "dense2.weight has shape (1, 4), the model needs (1, 8)" in line
    assert not (tmp_path / "big").exists()


def test_an_output_directory_that_cannot_be_written_is_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    config = _config(tmp_path)
    result = CliRunner().invoke(cli, ["train", str(config), "--set",
                                      f"training.output_dir={blocker}/runs"])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and str(blocker) in result.stderr

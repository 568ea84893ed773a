"""Image arrays stored as (N, H, W), (N, H, W, C) or (N, C, H, W) all become the same
internal (N, C, H, W) batch, prepare and train the same; an ambiguous 4-D array needs
``data.layout`` and, without it, fails with one clear line."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from dlcli.config import load_config
from dlcli.data.prepare import load_inputs, prepare
from dlcli.errors import DataError
from dlcli.train import checkpoint
from dlcli.train.session import train
from tests.helpers.configs import write_config

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
N = 24


def spec(source, layout="auto"):
    return {"source": source, "params": {}, "target": None, "layout": layout,
            "validation_split": 0.25, "test_split": 0.25, "normalize": "standard",
            "labels": "auto"}


def nchw(channels, height, width, seed=0):
    """A reference batch in the internal layout, with labels."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, channels, height, width)), np.arange(N) % 3


def save(tmp_path, name, x, y):
    np.savez(tmp_path / name, x=x, y=y)
    return name


def layouts_of(x):
    """The same images as NCHW, NHWC and (one channel only) NHW arrays."""
    forms = {"NCHW": x, "NHWC": x.transpose(0, 2, 3, 1)}
    if x.shape[1] == 1:
        forms["NHW"] = x[:, 0]
    return forms


def prepared(tmp_path, name, layout="auto"):
    return prepare(spec(name, layout), tmp_path, seed=0)


def assert_same_splits(a, b):
    for key in ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert a.input_shape == b.input_shape


# --- prepare --------------------------------------------------------------------------


@pytest.mark.parametrize("channels, height, width", [(1, 8, 8), (3, 5, 4), (1, 6, 7)])
def test_every_layout_prepares_to_the_same_internal_array_auto_detected(
        tmp_path, channels, height, width):
    x, y = nchw(channels, height, width)
    results = {form: prepared(tmp_path, save(tmp_path, f"{form}.npz", arr, y))
               for form, arr in layouts_of(x).items()}
    reference = results["NCHW"]
    assert reference.input_shape == (channels, height, width)
    assert reference.x_train.shape[1:] == (channels, height, width)
    for form, result in results.items():
        assert_same_splits(result, reference)
    # Unnormalized, as predict reads them: exactly the NCHW array.
    for form in results:
        np.testing.assert_array_equal(load_inputs(f"{form}.npz", spec(f"{form}.npz"), tmp_path), x)


@pytest.mark.parametrize("declared", ["NHWC", "NCHW"])
def test_declared_layout_matches_auto_detection(tmp_path, declared):
    x, y = nchw(3, 5, 4)
    name = save(tmp_path, "img.npz", layouts_of(x)[declared], y)
    assert_same_splits(prepared(tmp_path, name, declared), prepared(tmp_path, name))


def test_nhw_declared_for_a_three_dimensional_array(tmp_path):
    x, y = nchw(1, 6, 6)
    name = save(tmp_path, "img.npz", x[:, 0], y)
    assert_same_splits(prepared(tmp_path, name, "NHW"), prepared(tmp_path, name))


# (N, 3, 4, 3) and (N, 1, 5, 1): both axis 1 and axis 3 could be the channels.
AMBIGUOUS = [(3, 4, 3), (1, 5, 1), (4, 6, 5)]


@pytest.mark.parametrize("sample_shape", AMBIGUOUS)
def test_ambiguous_array_follows_the_declared_layout(tmp_path, sample_shape):
    rng = np.random.default_rng(1)
    stored = rng.normal(size=(N, *sample_shape))
    y = np.arange(N) % 3
    name = save(tmp_path, "img.npz", stored, y)
    as_nchw = prepared(tmp_path, name, "NCHW")
    as_nhwc = prepared(tmp_path, name, "NHWC")
    assert as_nchw.input_shape == sample_shape
    assert as_nhwc.input_shape == (sample_shape[2], sample_shape[0], sample_shape[1])
    np.testing.assert_array_equal(load_inputs(name, spec(name, "NHWC"), tmp_path),
                                  stored.transpose(0, 3, 1, 2))
    # The same images written unambiguously in the other layout give the same result.
    name2 = save(tmp_path, "other.npz", stored.transpose(0, 3, 1, 2), y)
    assert_same_splits(prepared(tmp_path, name2, "NCHW"), as_nhwc)


@pytest.mark.parametrize("sample_shape", AMBIGUOUS)
def test_ambiguous_array_without_a_layout_is_a_data_error(tmp_path, sample_shape):
    name = save(tmp_path, "img.npz", np.zeros((N, *sample_shape)), np.arange(N) % 3)
    with pytest.raises(DataError) as info:
        prepared(tmp_path, name)
    message = str(info.value)
    assert "\n" not in message
    assert "NHWC or NCHW" in message and "data.layout" in message
    assert "img.npz" in message


def test_a_layout_that_does_not_fit_the_rank_is_a_data_error(tmp_path):
    name = save(tmp_path, "img.npz", np.zeros((N, 4, 4)), np.arange(N) % 3)
    with pytest.raises(DataError, match="3-D image arrays are NHW"):
        prepared(tmp_path, name, "NHWC")


# --- training -------------------------------------------------------------------------


def cnn_config(source, layout="auto"):
    return {
        "name": "layouts", "seed": 0,
        "data": {"source": source, "layout": layout, "validation_split": 0.25,
                 "test_split": 0.25, "normalize": "standard"},
        "model": {"layers": [
            {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same",
             "activation": "relu"},
            {"type": "maxpool2d", "pool_size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 3, "activation": "softmax"}],
            "loss": "categorical_crossentropy"},
        "training": {"epochs": 2, "batch_size": 4, "optimizer": {"type": "adam", "lr": 0.01}},
    }


def trained_weights(tmp_path, tag, source, layout="auto"):
    path = write_config(tmp_path / f"{tag}.yaml", cnn_config(source, layout))
    summary = train(load_config(path), run_dir=tmp_path / f"run-{tag}")
    assert summary["status"] == "finished"
    return checkpoint.load(tmp_path / f"run-{tag}" / "checkpoints" / "last.npz")["model"]


def test_every_layout_trains_to_the_same_weights(tmp_path):
    x, y = nchw(3, 6, 5)
    weights = {}
    for form, arr in layouts_of(x).items():
        weights[form] = trained_weights(tmp_path, form, save(tmp_path, f"{form}.npz", arr, y))
    # An ambiguous copy: (N, 3, 6, 3) is not this data, so use a declared layout instead.
    weights["NHWC declared"] = trained_weights(tmp_path, "declared", "NHWC.npz", "NHWC")
    reference = weights["NCHW"]
    for form, state in weights.items():
        assert state.keys() == reference.keys()
        for key in reference:
            np.testing.assert_array_equal(state[key], reference[key], err_msg=f"{form} {key}")


def test_one_channel_layouts_train_to_the_same_weights(tmp_path):
    x, y = nchw(1, 6, 6)
    weights = [trained_weights(tmp_path, form, save(tmp_path, f"{form}.npz", arr, y))
               for form, arr in layouts_of(x).items()]
    for state in weights[1:]:
        for key in weights[0]:
            np.testing.assert_array_equal(state[key], weights[0][key], err_msg=key)


def test_cli_reports_an_undeclared_ambiguous_layout_in_one_line(tmp_path):
    save(tmp_path, "img.npz", np.zeros((N, 3, 4, 3)), np.arange(N) % 3)
    path = write_config(tmp_path / "c.yaml", cnn_config("img.npz"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    result = subprocess.run([sys.executable, "-m", "dlcli", "train", str(path), "--run-dir",
                             str(tmp_path / "run")], cwd=REPO_ROOT, capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and "set data.layout to NHWC or NCHW" in lines[0]
    assert not (tmp_path / "run").exists()

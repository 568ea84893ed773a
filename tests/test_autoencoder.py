"""Autoencoders (task: reconstruction): data without labels, the target is the input, the
overcomplete warning, ``predict --layer``, the PCA baseline of ``eval`` and ``--images``."""

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from dlcli.cli import cli
from dlcli.config.resolve import resolve
from dlcli.data import BUNDLED_DIR
from dlcli.data.prepare import prepare as prepare_data
from dlcli.errors import DataError
from dlcli.use.evaluate import evaluate_run, load_run
from dlcli.inspect.shapes import shapes_report
from dlcli.train.session import prepare, targets, train
from tests.helpers.configs import write_config

DIGITS = str(BUNDLED_DIR / "digits.npz")


def digits_autoencoder(units=8, epochs=2, **training):
    return {
        "name": "ae", "seed": 0, "task": "reconstruction",
        "data": {"source": DIGITS, "validation_split": 0.1, "test_split": 0.2},
        "model": {"layers": [
            {"type": "flatten"},
            {"type": "dense", "name": "code", "units": units, "activation": "tanh"},
            {"type": "dense", "name": "out", "units": 64},
            {"type": "reshape", "shape": [8, 8, 1]},
        ], "loss": "mse"},
        "training": {"epochs": epochs, "batch_size": 64, **training},
    }


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A tiny autoencoder on the digits, trained for two epochs."""
    root = tmp_path_factory.mktemp("ae")
    config = resolve(digits_autoencoder(), path=root / "ae.yaml")
    train(config, run_dir=root / "run")
    return root / "run"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


# ---- data and targets -------------------------------------------------------------------
def test_the_target_is_the_input(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 5))
    np.savez(tmp_path / "only_x.npz", x=x)  # no y at all
    spec = {"source": "only_x.npz", "validation_split": 0.25, "test_split": 0.25,
            "normalize": "standard"}
    splits = prepare_data(spec, tmp_path, 0, targets=False)
    assert splits.class_names is None and splits.y_train.shape == (len(splits.x_train), 0)
    y_train, y_val, y_test = targets(splits, "reconstruction", np.float64)
    for y, x_split in ((y_train, splits.x_train), (y_val, splits.x_val),
                       (y_test, splits.x_test)):
        np.testing.assert_array_equal(y, x_split)
    with pytest.raises(DataError, match="task: reconstruction"):
        prepare_data(spec, tmp_path, 0)  # other tasks still need targets


def test_labels_are_ignored_and_the_output_must_match_the_input():
    prep = prepare(resolve(digits_autoencoder()))
    assert prep.task == "reconstruction" and prep.splits.class_names is None
    wrong = digits_autoencoder()
    wrong["model"]["layers"] = wrong["model"]["layers"][:2]
    with pytest.raises(Exception, match="must output the input's shape"):
        prepare(resolve(wrong))


# ---- the overcomplete warning -----------------------------------------------------------
def overcomplete_warnings(report):
    return [w for w in report["warnings"] if "overcomplete" in w]


def test_overcomplete_warning(tmp_path):
    assert overcomplete_warnings(shapes_report(resolve(digits_autoencoder(units=8)))) == []
    report = shapes_report(resolve(digits_autoencoder(units=64)))
    [warning] = overcomplete_warnings(report)
    assert "code" in warning and "64" in warning and "identity" in warning
    path = write_config(tmp_path / "over.yaml", digits_autoencoder(units=100))
    result = invoke("shapes", path)
    assert result.exit_code == 0 and "overcomplete autoencoder can learn the identity" in \
        result.output.replace("\n", " ")


# ---- forward_to and predict --layer -------------------------------------------------------
def test_forward_to_matches_the_layers_by_hand(digits_run):
    run = load_run(digits_run)
    x = np.random.default_rng(1).normal(size=(3, 1, 8, 8)).astype(run.model.dtype)
    code = run.model.get_layer("code")
    expected = np.tanh(x.reshape(3, 64) @ code.params["weight"].T + code.params["bias"])
    np.testing.assert_allclose(run.model.forward_to(x, "code"), expected, rtol=1e-5)
    np.testing.assert_allclose(run.model.forward_to(x, "reshape1"), run.model.forward(x))
    with pytest.raises(KeyError):
        run.model.forward_to(x, "nope")


def test_predict_layer_writes_bottleneck_codes(digits_run, tmp_path):
    x = np.load(DIGITS)["x"][:7]
    np.savez(tmp_path / "some.npz", x=x)
    out = tmp_path / "codes.npz"
    result = invoke("predict", digits_run, tmp_path / "some.npz", "--layer", "code", "-o", out)
    assert result.exit_code == 0, result.output
    codes = np.load(out)["outputs"]
    assert codes.shape == (7, 8)  # the bottleneck's shape
    assert np.abs(codes).max() <= 1  # after its tanh
    # Without --layer: reconstructions, in the raw inputs' units and layout.
    result = invoke("predict", digits_run, tmp_path / "some.npz", "-o", tmp_path / "rec.npz")
    assert result.exit_code == 0, result.output
    rec = np.load(tmp_path / "rec.npz")["outputs"]
    assert rec.shape == (7, 8, 8, 1) and rec.max() > 4  # pixels 0..16, not standardized
    result = CliRunner().invoke(cli, ["predict", str(digits_run), str(tmp_path / "some.npz"),
                                      "--layer", "cod", "-o", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "did you mean 'code'" in result.stderr


def test_predict_layer_of_a_classifier_csv(tmp_path):
    config = {"name": "clf", "seed": 0,
              "data": {"source": "synthetic:blobs", "params": {"n_samples": 60}},
              "model": {"layers": [{"type": "dense", "name": "hidden", "units": 5,
                                    "activation": "relu"},
                                   {"type": "dense", "units": 3, "activation": "softmax"}],
                        "loss": "categorical_crossentropy"},
              "training": {"epochs": 1}}
    train(resolve(config), run_dir=tmp_path / "run")
    np.savez(tmp_path / "in.npz", x=np.zeros((4, 2)))
    result = invoke("predict", tmp_path / "run", tmp_path / "in.npz", "--layer", "hidden",
                    "-o", tmp_path / "h.csv")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0] == ",".join(f"hidden_{i}" for i in range(5)) and len(lines) == 5


def test_predict_layer_keeps_image_shapes(tmp_path):
    config = digits_autoencoder(epochs=1)
    config["model"]["layers"] = [
        {"type": "conv2d", "name": "enc", "filters": 2, "kernel_size": 3, "padding": 1},
        {"type": "maxpool2d", "name": "pool", "pool_size": 2},
        {"type": "maxunpool2d", "pool": "pool"},
        {"type": "conv2d", "filters": 1, "kernel_size": 3, "padding": 1},
    ]
    train(resolve(config, path=tmp_path / "c.yaml"), run_dir=tmp_path / "run")
    np.savez(tmp_path / "in.npz", x=np.load(DIGITS)["x"][:3])
    result = invoke("predict", tmp_path / "run", tmp_path / "in.npz", "--layer", "pool",
                    "-o", tmp_path / "p.npz")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "p.npz")["outputs"].shape == (3, 4, 4, 2)  # (N, H, W, C)


# ---- eval: metrics and the PCA baseline ----------------------------------------------------
def test_eval_reports_mse_mae_and_pca(digits_run):
    result = invoke("eval", digits_run, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"loss", "mse", "mae"} <= set(report) and report["loss"] == pytest.approx(report["mse"])
    assert report["bottleneck"] == {"layer": "code", "shape": [8], "size": 8}
    assert report["pca"]["k"] == 8 and 0 < report["pca"]["mse"] < 1
    text = invoke("eval", digits_run).output
    assert "PCA with k=8" in text


def test_linear_autoencoder_approaches_pca(tmp_path):
    """Notes 4.1.2: one linear hidden layer with MSE spans PCA's subspace."""
    rng = np.random.default_rng(0)
    variances = np.array([10.0, 6.0, 3.0, 0.5, 0.3, 0.2, 0.1, 0.05])
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    x = rng.normal(size=(800, 8)) * np.sqrt(variances) @ rotation.T + 2.0
    np.savez(tmp_path / "x.npz", x=x)
    config = {"name": "linear", "seed": 0, "task": "reconstruction", "dtype": "float64",
              "data": {"source": "x.npz", "validation_split": 0.0, "test_split": 0.25,
                       "normalize": "standard"},  # raw: slow, ill-conditioned descent
              "model": {"layers": [{"type": "dense", "name": "code", "units": 3},
                                   {"type": "dense", "units": 8}], "loss": "mse"},
              "training": {"epochs": 40, "batch_size": 32,
                           "optimizer": {"type": "adam", "lr": 0.01}}}
    path = write_config(tmp_path / "linear.yaml", config)
    train(resolve(config, path=path), run_dir=tmp_path / "run")
    run = load_run(tmp_path / "run", "last")
    for split in ("train", "test"):
        result = evaluate_run(run, split)
        assert result["pca"]["k"] == 3
        assert result["mse"] == pytest.approx(result["pca"]["mse"], rel=0.03), split


# ---- eval --images -----------------------------------------------------------------------
def test_images_png(digits_run, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    target = tmp_path / "grid.png"
    result = invoke("eval", digits_run, "--images", target)
    assert result.exit_code == 0, result.output
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(target)
    assert image.ndim == 3 and image.shape[1] > image.shape[0]  # a wide grid: 2 rows, 10 columns
    # Never overwrites.
    result = CliRunner().invoke(cli, ["eval", str(digits_run), "--images", str(target)])
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert target.read_bytes() == data


def test_images_without_matplotlib(digits_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = CliRunner().invoke(cli, ["eval", str(digits_run), "--images",
                                      str(tmp_path / "g.png")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'dlcli[plot]'" in lines[0]
    assert not (tmp_path / "g.png").exists()


def test_images_refused_for_other_tasks(tmp_path):
    config = {"name": "clf", "seed": 0,
              "data": {"source": "synthetic:blobs", "params": {"n_samples": 40}},
              "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}],
                        "loss": "categorical_crossentropy"},
              "training": {"epochs": 1}}
    train(resolve(config), run_dir=tmp_path / "run")
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "run"), "--images",
                                      str(tmp_path / "g.png")])
    assert result.exit_code == 2 and "task is classification" in result.stderr

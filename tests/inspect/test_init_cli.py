"""``dlcli init DATAFILE``: a commented starter config inferred from the data (issue 17,
point 11). Each written config is trained as written, and its choices are checked against
what the data file holds (counted here from the file itself)."""

import csv
import json
import pathlib

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dlcli.cli import cli

REPO = pathlib.Path(__file__).resolve().parents[2]
IRIS = REPO / "datasets" / "iris.csv"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def init(data, out, *extra):
    result = invoke("init", data, "-o", out, *extra)
    assert result.exit_code == 0, result.output
    text = pathlib.Path(out).read_text()
    return yaml.safe_load(text), text, result.output


def train_and_eval(config, run_dir):
    result = invoke("train", config, "--run-dir", run_dir, "-q")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output, result.output
    report = invoke("eval", run_dir, "--json")
    assert report.exit_code == 0, report.output
    return json.loads(report.output)


def test_iris_csv_gives_a_softmax_classifier_that_trains_as_written(tmp_path):
    cfg, text, output = init(IRIS, tmp_path / "iris.yaml")
    with open(IRIS, newline="") as handle:
        rows = list(csv.DictReader(handle))
    species = sorted({r["species"] for r in rows})
    assert cfg["data"]["target"] == "species"
    last = cfg["model"]["layers"][-1]
    assert last["units"] == len(species) and last["activation"] == "softmax"
    assert cfg["model"]["loss"] == "categorical_crossentropy"
    assert cfg["model"]["input_shape"] == [4]
    assert text.count("#") >= 8  # commented for a first reader
    assert "dlcli train" in output
    # the source is written relative to the config, as configs resolve it
    assert (tmp_path / cfg["data"]["source"]).resolve() == IRIS.resolve()
    report = train_and_eval(tmp_path / "iris.yaml", tmp_path / "run")
    assert report["accuracy"] >= 0.8


def test_kaggle_titanic_like_csv(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["PassengerId", "Survived", "Pclass", "Name", "Sex", "Age", "Fare"])
        for i in range(1, 121):
            sex = ["male", "female"][i % 2]
            age = "" if i % 9 == 0 else f"{rng.uniform(1, 70):.0f}"
            survived = int(sex == "female") if i % 7 else 1 - int(sex == "female")
            writer.writerow([i, survived, 1 + i % 3, f"Person {i}, Mr.", sex, age,
                             f"{rng.uniform(5, 100):.2f}"])
    cfg, text, output = init(path, tmp_path / "titanic.yaml")
    assert cfg["data"]["target"] == "Survived"
    assert set(cfg["data"]["exclude"]) == {"PassengerId", "Name"}
    assert cfg["data"]["missing"] == "mean"  # Age has empty cells
    last = cfg["model"]["layers"][-1]
    assert last["units"] == 1 and last["activation"] == "sigmoid"
    assert cfg["model"]["loss"] == "binary_crossentropy"
    assert cfg["model"]["input_shape"] == [1 + 2 + 1 + 1]  # Pclass, Sex one-hot, Age, Fare
    assert "PassengerId" in output and "Name" in output  # says what it left out and why
    report = train_and_eval(tmp_path / "titanic.yaml", tmp_path / "run")
    assert {"precision", "recall", "f1"} <= set(report)


def test_target_option_and_regression(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "houses.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["price", "rooms", "area"])
        for _ in range(80):
            rooms, area = rng.integers(1, 6), rng.uniform(30, 200)
            writer.writerow([f"{0.5 * area + 10 * rooms + rng.normal():.2f}", rooms,
                             f"{area:.1f}"])
    cfg, _, _ = init(path, tmp_path / "h.yaml", "--target", "price")
    assert cfg["data"]["target"] == "price"
    last = cfg["model"]["layers"][-1]
    assert last["units"] == 1 and last["activation"] == "identity"
    assert cfg["model"]["loss"] == "mse"
    assert cfg["model"]["input_shape"] == [2]
    report = train_and_eval(tmp_path / "h.yaml", tmp_path / "run")
    assert "r2" in report
    result = invoke("init", path, "-o", tmp_path / "x.yaml", "--target", "cost")
    assert result.exit_code == 2 and "'cost'" in result.output and "price" in result.output
    assert not (tmp_path / "x.yaml").exists()


def test_images_in_npz(tmp_path):
    cfg, _, _ = init(REPO / "datasets" / "digits.npz", tmp_path / "digits.yaml")
    with np.load(REPO / "datasets" / "digits.npz") as data:
        k = len(np.unique(data["y"]))
        h, w = data["x"].shape[1:3]
    assert cfg["model"]["input_shape"][:2] == [h, w]
    assert cfg["model"]["layers"][0]["type"] == "flatten"
    assert cfg["model"]["layers"][-1]["units"] == k
    result = invoke("train", tmp_path / "digits.yaml", "--run-dir", tmp_path / "run", "-q",
                    "--set", "training.epochs=1")
    assert result.exit_code == 0, result.output


def test_never_overwrites_without_force(tmp_path):
    out = tmp_path / "mine.yaml"
    out.write_text("# my own config\n")
    result = invoke("init", IRIS, "-o", out)
    assert result.exit_code == 2
    assert "already exists" in result.output and "--force" in result.output
    assert out.read_text() == "# my own config\n"
    assert invoke("init", IRIS, "-o", out, "--force").exit_code == 0
    assert yaml.safe_load(out.read_text())["data"]["target"] == "species"


def test_default_output_name_is_the_data_files_stem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("init", IRIS)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "iris.yaml").is_file()


def test_unreadable_data_is_one_line(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    result = invoke("init", bad)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


def test_mnist_idx_files(tmp_path):
    import struct

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 6, 6), dtype=np.uint8)
    labels = (np.arange(40) % 4).astype(np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x03" + struct.pack(">3I", 40, 6, 6) + images.tobytes())
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        b"\x00\x00\x08\x01" + struct.pack(">I", 40) + labels.tobytes())
    cfg, _, _ = init(tmp_path / "train-images-idx3-ubyte", tmp_path / "mnist.yaml")
    assert cfg["model"]["input_shape"] == [6, 6, 1]
    assert cfg["model"]["layers"][-1]["units"] == 4
    result = invoke("train", tmp_path / "mnist.yaml", "--run-dir", tmp_path / "run", "-q",
                    "--set", "training.epochs=1")
    assert result.exit_code == 0, result.output
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    result = invoke("init", tmp_path / "train-images-idx3-ubyte", "-o", tmp_path / "x.yaml")
    assert result.exit_code == 2 and "labels" in result.output

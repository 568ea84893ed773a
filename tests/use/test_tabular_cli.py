"""Tabular data through the CLI (issue 17, point 2): Kaggle's Iris with its Id column, a
text feature column, empty cells; predict reads only the columns the model trained on."""

import csv
import json
import pathlib

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dlcli.cli import cli

REPO = pathlib.Path(__file__).resolve().parents[2]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def kaggle_iris(path):
    """datasets/iris.csv as Kaggle ships it: an Id column first, capitalised names."""
    with open(REPO / "datasets" / "iris.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "SepalLengthCm", "SepalWidthCm", "PetalLengthCm",
                         "PetalWidthCm", "Species"])
        for i, row in enumerate(rows[1:], 1):
            writer.writerow([i, *row[:4], f"Iris-{row[4]}"])
    return path


def config(path, source, **data):
    cfg = {"name": path.stem, "seed": 0,
           "data": {"source": str(source), "target": "Species", **data},
           "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}],
                     "loss": "categorical_crossentropy"},
           "training": {"epochs": 3, "batch_size": 16, "optimizer": {"type": "adam",
                                                                     "lr": 0.05}}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def rows_of(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_kaggle_iris_id_column_warns_and_exclude_leaves_it_out(tmp_path):
    data = kaggle_iris(tmp_path / "Iris.csv")
    result = invoke("train", config(tmp_path / "with_id.yaml", data), "--run-dir",
                    tmp_path / "with_id")
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if "'Id'" in line]
    assert warning and "row id" in warning[0] and "data.exclude" in warning[0]

    result = invoke("train", config(tmp_path / "no_id.yaml", data, exclude=["Id"]),
                    "--run-dir", tmp_path / "no_id")
    assert result.exit_code == 0, result.output
    assert "'Id'" not in result.output
    assert json.loads((tmp_path / "no_id" / "features.json").read_text()) == [
        "SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]
    # predict needs only the trained columns: no Id, no Species, another order
    with open(tmp_path / "new.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["PetalWidthCm", "PetalLengthCm", "SepalWidthCm", "SepalLengthCm"])
        writer.writerow([0.2, 1.4, 3.5, 5.1])
        writer.writerow([2.3, 5.9, 3.0, 6.8])
    out = tmp_path / "pred.csv"
    result = invoke("predict", tmp_path / "no_id", tmp_path / "new.csv", "-o", out)
    assert result.exit_code == 0, result.output
    assert [r["predicted"] for r in rows_of(out)][0] == "Iris-setosa"


def test_feature_globs_through_the_cli(tmp_path):
    data = kaggle_iris(tmp_path / "Iris.csv")
    result = invoke("train", config(tmp_path / "petals.yaml", data, features=["Petal*"]),
                    "--run-dir", tmp_path / "petals")
    assert result.exit_code == 0, result.output
    stored = yaml.safe_load((tmp_path / "petals" / "config.yaml").read_text())
    assert stored["model"]["input_shape"] == [2]


def coloured(path, rows, empty_at=None):
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["size", "colour", "Species"])
        for i in range(rows):
            colour = ("red", "green", "blue")[i % 3]
            size = "" if i == empty_at else f"{i % 3 + rng.normal() * 0.1:.3f}"
            writer.writerow([size, colour, ("a", "b", "c")[i % 3]])
    return path


def test_text_feature_column_one_hot_and_unseen_value_refused(tmp_path):
    data = coloured(tmp_path / "c.csv", 45)
    result = invoke("train", config(tmp_path / "c.yaml", data), "--run-dir", tmp_path / "c")
    assert result.exit_code == 0, result.output
    encoding = json.loads((tmp_path / "c" / "encoding.json").read_text())
    assert encoding["categories"] == {"colour": ["blue", "green", "red"]}
    stored = yaml.safe_load((tmp_path / "c" / "config.yaml").read_text())
    assert stored["model"]["input_shape"] == [4]  # size + three colours
    (tmp_path / "new.csv").write_text("size,colour\n1.0,green\n2.0,purple\n")
    result = invoke("predict", tmp_path / "c", tmp_path / "new.csv", "-o", tmp_path / "p.csv")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "new.csv: row 3" in lines[0] and "'colour'" in lines[0] and "'purple'" in lines[0]


def test_empty_cells_refused_by_default_and_filled_with_missing_mean(tmp_path):
    data = coloured(tmp_path / "gap.csv", 45, empty_at=7)
    result = invoke("train", config(tmp_path / "gap.yaml", data), "--run-dir", tmp_path / "r1")
    assert result.exit_code == 2
    line = result.output.strip()
    assert "gap.csv: row 9" in line and "'size'" in line and "data.missing" in line
    assert not (tmp_path / "r1").exists()

    result = invoke("train", config(tmp_path / "mean.yaml", data, missing="mean"),
                    "--run-dir", tmp_path / "mean")
    assert result.exit_code == 0, result.output
    fill = json.loads((tmp_path / "mean" / "encoding.json").read_text())["fill"]
    # predict fills an empty cell with the stored training mean: same output as the value
    (tmp_path / "gaps.csv").write_text(f"size,colour\n,red\n{fill[0]!r},red\n")
    out = tmp_path / "gaps-pred.csv"
    result = invoke("predict", tmp_path / "mean", tmp_path / "gaps.csv", "-o", out)
    assert result.exit_code == 0, result.output
    first, second = rows_of(out)
    assert first == second
    result = invoke("eval", tmp_path / "mean", "--data", data, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["samples"] == 45

    result = invoke("train", config(tmp_path / "drop.yaml", data, missing="drop"),
                    "--run-dir", tmp_path / "drop")
    assert result.exit_code == 0, result.output
    assert "dropped 1 of 45 rows" in result.output

"""Scoring and inspecting through the CLI as a Keras user expects (issue 17, points 8-9):
``eval --data FILE`` scores the whole file and agrees with ``predict``; a label outside the
model's classes is reported against the data file with its row; binary runs get a
confusion matrix, precision, recall and F1; ``compare`` shows test scores; ``plot`` draws
every metric; ``shapes`` needs no data when the input shape is given; no library's advice
leaks into a message; IDX is documented."""

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


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def blob_rows(n, classes, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = i % len(classes)
        x = rng.normal(size=2) * 0.4 + [2.0 * k, -1.5 * k]
        rows.append([f"{x[0]:.4f}", f"{x[1]:.4f}", classes[k]])
    return rows


def config(source, units, activation, loss, **data):
    return {"name": "csv", "seed": 0,
            "data": {"source": str(source), "target": "label", **data},
            "model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"},
                                 {"type": "dense", "units": units, "activation": activation}],
                      "loss": loss},
            "training": {"epochs": 4, "batch_size": 8, "optimizer": {"type": "adam",
                                                                     "lr": 0.05}}}


def train(tmp, name, cfg, *extra):
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp / name
    result = invoke("train", path, "--run-dir", run_dir, "-q", *extra)
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scoring")
    three = write_csv(tmp / "three.csv", ["f1", "f2", "label"], blob_rows(60, "abc", 0))
    other = write_csv(tmp / "other.csv", ["f1", "f2", "label"], blob_rows(31, "abc", 1))
    binary = write_csv(tmp / "binary.csv", ["f1", "f2", "label"],
                       blob_rows(60, ["no", "yes"], 2))
    runs = {
        "three": train(tmp, "three", config(three, 3, "softmax", "categorical_crossentropy")),
        "binary": train(tmp, "binary", config(binary, 1, "sigmoid", "binary_crossentropy")),
    }
    return tmp, {"three": three, "other": other, "binary": binary}, runs


def predicted(tmp, run_dir, source, name):
    out = tmp / f"{name}.csv"
    result = invoke("predict", run_dir, source, "-o", out)
    assert result.exit_code == 0, result.output
    with open(out, newline="") as handle:
        return [row["predicted"] for row in csv.DictReader(handle)]


def labels_of(path):
    with open(path, newline="") as handle:
        return [row["label"] for row in csv.DictReader(handle)]


# ---- eval --data: the whole file, agreeing with predict ------------------------------------

def test_eval_data_scores_the_whole_file_and_agrees_with_predict(data):
    tmp, files, runs = data
    result = invoke("eval", runs["three"], "--data", files["other"], "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["samples"] == 31 and report["split"] == "all"
    truth = labels_of(files["other"])
    guesses = predicted(tmp, runs["three"], files["other"], "other-pred")
    expected = np.mean([t == g for t, g in zip(truth, guesses)])
    assert report["accuracy"] == pytest.approx(expected)
    assert np.sum(report["confusion_matrix"]) == 31


def test_eval_data_split_only_when_asked(data):
    tmp, files, runs = data
    result = invoke("eval", runs["three"], "--data", files["other"], "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["split"] == "test" and report["samples"] == round(0.2 * 31)


def test_eval_data_of_a_run_without_test_split(data):
    tmp, files, _ = data
    cfg = config(files["three"], 3, "softmax", "categorical_crossentropy", test_split=0.0)
    run_dir = train(tmp, "no_test", cfg)
    result = invoke("eval", run_dir, "--data", files["other"], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["samples"] == 31


def test_eval_without_data_still_scores_the_test_split(data):
    _, _, runs = data
    report = json.loads(invoke("eval", runs["three"], "--json").output)
    assert report["split"] == "test" and report["samples"] == 12


# ---- labels outside the classes: blamed on the data, with the row --------------------------

def test_unknown_class_name_in_eval_data_names_file_value_and_row(data):
    tmp, files, runs = data
    rows = blob_rows(8, "abc", 3)
    rows[4][2] = "d"
    bad = write_csv(tmp / "unknown.csv", ["f1", "f2", "label"], rows)
    line = one_line_error(invoke("eval", runs["three"], "--data", bad),
                          str(bad), "row 6", "'d'")
    assert "a, b, c" in line
    assert "units" not in line


def test_integer_label_outside_the_models_classes_names_row(tmp_path):
    rows = [[f"{v:.3f}", f"{-v:.3f}", str(i % 3)] for i, v in
            enumerate(np.linspace(0, 1, 30))]
    good = write_csv(tmp_path / "ints.csv", ["f1", "f2", "label"], rows)
    run_dir = train(tmp_path, "ints", config(good, 3, "softmax", "categorical_crossentropy"))
    rows[9][2] = "7"
    bad = write_csv(tmp_path / "seven.csv", ["f1", "f2", "label"], rows)
    line = one_line_error(invoke("eval", run_dir, "--data", bad), str(bad), "row 11", "7")
    assert "units" not in line


def test_training_label_outside_the_output_width_names_the_data_row(tmp_path):
    rows = [[f"{v:.3f}", f"{-v:.3f}", str(i % 3)] for i, v in
            enumerate(np.linspace(0, 1, 30))]
    rows[9][2] = "7"  # a typo among labels 0, 1, 2
    path = write_csv(tmp_path / "typo.csv", ["f1", "f2", "label"], rows)
    cfg_path = tmp_path / "typo.yaml"
    cfg_path.write_text(yaml.safe_dump(config(path, 3, "softmax",
                                              "categorical_crossentropy")))
    result = invoke("train", cfg_path, "--run-dir", tmp_path / "r")
    line = one_line_error(result, str(path), "row 11", "label 7")
    assert "units: 8" in line  # the other way out is still named


# ---- binary metrics -------------------------------------------------------------------------

def test_binary_eval_has_confusion_precision_recall_f1(data):
    tmp, files, runs = data
    report = json.loads(invoke("eval", runs["binary"], "--data", files["binary"],
                               "--json").output)
    truth = labels_of(files["binary"])
    guesses = predicted(tmp, runs["binary"], files["binary"], "binary-pred")
    tp = sum(t == "yes" and g == "yes" for t, g in zip(truth, guesses))
    fp = sum(t == "no" and g == "yes" for t, g in zip(truth, guesses))
    fn = sum(t == "yes" and g == "no" for t, g in zip(truth, guesses))
    tn = sum(t == "no" and g == "no" for t, g in zip(truth, guesses))
    assert report["confusion_matrix"] == [[tn, fp], [fn, tp]]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    assert report["precision"] == pytest.approx(precision)
    assert report["recall"] == pytest.approx(recall)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    assert report["f1"] == pytest.approx(f1)
    assert report["positive_class"] == "yes"
    text = invoke("eval", runs["binary"]).output
    for word in ("precision", "recall", "f1", "support", "confusion matrix", "yes"):
        assert word in text


def test_per_class_table_has_f1_and_support(data):
    _, _, runs = data
    text = invoke("eval", runs["three"]).output
    header = next(line for line in text.splitlines() if "precision" in line and "class" in line)
    assert "f1" in header and "support" in header


def test_plot_confusion_of_a_binary_run(data):
    pytest.importorskip("matplotlib")
    tmp, _, runs = data
    out = tmp / "binary-confusion.png"
    result = invoke("plot", runs["binary"], "--confusion", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- compare shows the test scores of scored runs --------------------------------------------

def test_compare_shows_test_metrics_of_scored_runs(data):
    tmp, files, _ = data
    pair = [train(tmp, f"three_{seed}", config(files["three"], 3, "softmax",
                                               "categorical_crossentropy"), "--seed", seed)
            for seed in ("3", "4")]
    before = json.loads(invoke("compare", *pair, "--json").output)
    assert not any(k.startswith("test_") for k in before["final"])
    scores = {run: json.loads(invoke("eval", run, "--json").output) for run in pair}
    after = invoke("compare", *pair, "--json")
    assert after.exit_code == 0, after.output
    final = json.loads(after.output)["final"]
    assert final["test_accuracy"] == [pytest.approx(scores[r]["accuracy"]) for r in pair]
    assert final["test_loss"] == [pytest.approx(scores[r]["loss"]) for r in pair]
    assert "test_accuracy" in invoke("compare", *pair).output


# ---- plot draws every metric -----------------------------------------------------------------

def test_plot_draws_every_metric_by_default(tmp_path):
    pytest.importorskip("matplotlib")
    from dlcli.use.plots import curves_figure
    from dlcli.use.runs import load

    run = tmp_path / "many"
    run.mkdir()
    names = ["loss", "a", "b", "c", "d", "e"]
    with open(run / "metrics.jsonl", "w") as handle:
        for epoch in (1, 2, 3):
            handle.write(json.dumps({"epoch": epoch, **{n: 1.0 / epoch for n in names}}) + "\n")
    fig = curves_figure([load(run)])
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == names


# ---- shapes needs neither data nor loss with an input shape -----------------------------------

def test_shapes_with_input_shape_needs_no_data_nor_loss(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"model": {"input_shape": [8, 8, 1], "layers": [
        {"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]}}))
    result = invoke("shapes", path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["total_params"] == 64 * 10 + 10
    assert report["loss"] is None
    text = invoke("shapes", path)
    assert text.exit_code == 0 and "650" in text.output


def test_shapes_without_input_shape_nor_data_says_what_is_needed(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"model": {"layers": [
        {"type": "dense", "units": 10, "activation": "softmax"}]}}))
    one_line_error(invoke("shapes", path), "model.input_shape", "data.source")


def test_train_still_requires_data_and_loss(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"model": {"input_shape": [4], "layers": [
        {"type": "dense", "units": 1, "activation": "sigmoid"}]}}))
    result = invoke("train", path)
    assert result.exit_code == 2
    assert "data" in result.output and "model.loss" in result.output


# ---- no library's advice in dlcli's messages ---------------------------------------------------

def test_a_text_file_named_npz_gets_dlclis_message(tmp_path):
    fake = tmp_path / "table.npz"
    fake.write_text("a,b,label\n1,2,0\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": "table.npz"}, "model": {
        "layers": [{"type": "dense", "units": 1, "activation": "sigmoid"}],
        "loss": "binary_crossentropy"}}))
    line = one_line_error(invoke("train", cfg), str(fake), "not an .npz archive")
    assert "allow_pickle" not in line and "pickle.load" not in line and "unsafe" not in line
    line = one_line_error(invoke("train", cfg, "--set", f"model.init_from={fake}",
                                 "--set", f"data.source={REPO / 'datasets' / 'iris.csv'}",
                                 "--set", "model.layers[0].units=3",
                                 "--set", "model.layers[0].activation=softmax",
                                 "--set", "model.loss=categorical_crossentropy"))
    assert "allow_pickle" not in line and "pickle.load" not in line


# ---- IDX documented ----------------------------------------------------------------------------

def test_idx_is_documented_in_help_and_readme():
    assert "IDX" in invoke("--help").output
    assert "IDX" in invoke("predict", "--help").output
    assert "IDX" in invoke("eval", "--help").output
    readme = (REPO / "README.md").read_text()
    assert "IDX" in readme and "ubyte" in readme

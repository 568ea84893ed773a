"""What a user meets on the command line beyond the happy path: CSV columns by name, class
labels with any loss, other data for eval, pipes, threads, run names, resume edge cases."""

import csv
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from dlcli.cli import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
IRIS = ROOT / "datasets" / "iris.csv"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("iris") / "run"
    result = invoke("train", ROOT / "configs" / "softmax_regression.yaml", "--run-dir", run,
                    "-q", "--set", "training.epochs=30")
    assert result.exit_code == 0, result.stderr
    return run


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_predict_picks_csv_columns_by_name_not_position(iris_run, tmp_path):
    rows = read_rows(IRIS)
    header, data = rows[0], rows[1:11]
    order = [2, 0, 3, 1, 4]  # features shuffled, species kept
    shuffled = tmp_path / "shuffled.csv"
    with open(shuffled, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([header[i] for i in order])
        writer.writerows([[r[i] for i in order] for r in data])
    plain = tmp_path / "plain.csv"
    with open(plain, "w", newline="") as handle:
        csv.writer(handle).writerows([header] + data)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert invoke("predict", iris_run, plain, "-o", a).exit_code == 0
    assert invoke("predict", iris_run, shuffled, "-o", b).exit_code == 0
    assert read_rows(a) == read_rows(b)
    renamed = tmp_path / "renamed.csv"
    with open(renamed, "w", newline="") as handle:
        csv.writer(handle).writerows([["a", "b", "c", "d", "species"]] + data)
    result = invoke("predict", iris_run, renamed, "-o", tmp_path / "c.csv")
    assert result.exit_code == 2 and "sepal_length" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_eval_on_other_data_refuses_a_class_the_run_never_saw(iris_run, tmp_path):
    rows = read_rows(IRIS)
    rows[5][4] = "unicorn"
    other = tmp_path / "other.csv"
    with open(other, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    result = invoke("eval", iris_run, "--data", other)
    assert result.exit_code == 2, result.stderr
    assert "unicorn" in result.stderr and "Traceback" not in result.stderr


def test_class_labels_train_with_mse_as_one_hot_rows(tmp_path):
    run = tmp_path / "run"
    result = invoke("train", ROOT / "configs" / "softmax_regression.yaml", "--run-dir", run,
                    "-q", "--set", "model.loss=mse", "--set", "task=classification",
                    "--set", "training.epochs=40")
    assert result.exit_code == 0, result.stderr
    assert "usually pairs" in result.stderr  # softmax + MSE is unusual, not wrong
    scored = json.loads(invoke("eval", run, "--json").stdout)
    assert scored["accuracy"] > 0.6  # learns: 3 classes, chance is 1/3


def test_a_closed_pipe_does_not_kill_training(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        f"{sys.executable} -m dlcli train configs/xor_mlp.yaml --run-dir {run} | head -1",
        shell=True, cwd=ROOT, capture_output=True, text=True, timeout=300)
    # the first line is the run's header (issue 17); every epoch line after it meets a
    # closed pipe
    assert proc.stdout.split()[:2] == ["training", f"{run}:"]
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"


def test_threads_option_sets_the_blas_thread_count_before_numpy_loads(tmp_path):
    code = ("import sys; from dlcli.cli import main; sys.argv = ['dlcli', '--threads', '1', "
            "'config', 'configs/xor_mlp.yaml']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "import os; print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.splitlines()[-1] == "1 1", proc.stderr


def test_a_run_name_cannot_leave_the_runs_directory(tmp_path):
    result = invoke("config", ROOT / "configs" / "xor_mlp.yaml", "--set", "name=../../evil")
    assert result.exit_code == 2 and "name:" in result.stderr


def test_gradcheck_explains_why_the_learning_rules_are_not_gradients():
    for config in ("perceptron.yaml", "adaline_unit_norm.yaml"):
        result = invoke("gradcheck", ROOT / "configs" / config, "--json")
        assert result.exit_code == 0
        report = json.loads(result.stdout)
        assert report["applicable"] is False and "rule" in report["reason"]
    result = invoke("gradcheck", ROOT / "configs" / "adaline.yaml", "--json")
    assert json.loads(result.stdout)["applicable"] is True


def test_resume_of_a_finished_run_and_with_a_new_seed(tmp_path):
    run = tmp_path / "run"
    assert invoke("train", ROOT / "configs" / "xor_mlp.yaml", "--run-dir", run, "-q",
                  "--set", "training.epochs=2").exit_code == 0
    result = invoke("train", "--resume", run)
    assert result.exit_code == 2 and "already finished" in result.stderr
    result = invoke("train", "--resume", run, "--seed", "5")
    assert result.exit_code == 2 and "seed: 0 -> 5" in result.stderr


def test_a_manifest_given_for_a_checkpoint_is_named_as_such(tmp_path):
    run = tmp_path / "run"
    assert invoke("train", ROOT / "configs" / "xor_mlp.yaml", "--run-dir", run, "-q",
                  "--set", "training.epochs=1").exit_code == 0
    result = invoke("eval", run / "checkpoints" / "best.json")
    assert result.exit_code == 2 and "manifest" in result.stderr and "best.npz" in result.stderr


@pytest.mark.parametrize("override", ["model.layers[0].type=[dense]",
                                      "training.optimizer.type=[adam]",
                                      "model.layers[0].activation={type: [relu]}",
                                      "training.schedule={type: [step]}"])
def test_a_list_where_a_name_belongs_is_a_config_error(override):
    result = invoke("config", ROOT / "configs" / "xor_mlp.yaml", "--set", override)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert override.split("=")[0].split("{")[0] in result.stderr


def test_a_yaml_key_that_is_a_list_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("? [a, b]\n: 1\n")
    result = invoke("config", bad)
    assert result.exit_code == 2 and "line 1" in result.stderr


def test_a_misspelt_monitor_is_refused_with_a_suggestion(tmp_path):
    result = invoke("train", ROOT / "configs" / "xor_mlp.yaml", "--run-dir", tmp_path / "r",
                    "--set", "training.monitor=val_acc")
    assert result.exit_code == 2 and "did you mean 'val_accuracy'" in result.stderr
    assert not (tmp_path / "r").exists()


def test_improving_epochs_are_marked_in_the_output_and_the_metrics(tmp_path):
    run = tmp_path / "r"
    result = invoke("train", ROOT / "configs" / "xor_mlp.yaml", "--run-dir", run,
                    "--set", "training.epochs=3")
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["val_loss"] for r in rows]
    improved = [i == 0 or losses[i] < min(losses[:i]) for i in range(3)]
    assert [r["best"] for r in rows] == improved
    marks = [l.endswith(" *") for l in result.stdout.splitlines() if l.startswith("epoch ")]
    assert marks == improved


def test_the_perceptron_loss_refuses_a_sigmoid_output(tmp_path):
    result = invoke("train", ROOT / "configs" / "perceptron.yaml", "--run-dir", tmp_path / "r",
                    "--set", "model.layers[0].activation=sigmoid")
    assert result.exit_code == 2 and "binary_step or identity" in result.stderr


def test_resuming_mid_epoch_with_other_data_restarts_that_epoch(tmp_path, monkeypatch):
    from dlcli.config import load_config
    from dlcli.train import session
    from tests.helpers.interrupt import train_until_interrupted

    run = tmp_path / "r"
    train_until_interrupted(monkeypatch, load_config(ROOT / "configs" / "xor_mlp.yaml",
                                                     ["training.epochs=2"]), run, step=3)
    config, changes = session.open_resume(run, None, ["data.test_split=0.5"], True)
    summary = session.train(config, run_dir=run, resume=True, changes=changes)
    assert summary["status"] == "finished"
    assert any("restarts from its beginning" in w for w in summary["warnings"])


def test_diagnostics_mark_the_epoch_a_resume_continued_from_inside(tmp_path, monkeypatch):
    from dlcli.config import load_config
    from dlcli.train import session
    from tests.helpers.interrupt import train_until_interrupted

    run = tmp_path / "r"
    config = load_config(ROOT / "configs" / "xor_mlp.yaml",
                         ["training.epochs=2", "training.diagnostics=true"])
    train_until_interrupted(monkeypatch, config, run, step=3)
    config, changes = session.open_resume(run, None, (), False)
    session.train(config, run_dir=run, resume=True, changes=changes)
    rows = [json.loads(l) for l in (run / "diagnostics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r.get("partial", False)) for r in rows] == [(1, True), (2, False)]


def _forward_batches(monkeypatch):
    """Record the batch size of every forward pass of a loaded run's model."""
    from dlcli.nn.model import Model
    seen = []
    original = Model.forward

    def forward(self, x, *args, **kwargs):
        seen.append(len(x))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(Model, "forward", forward)
    return seen


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    # one epoch of the digits MLP in batches of 100: its test split holds 360 images
    run = tmp_path_factory.mktemp("digits") / "run"
    result = invoke("train", ROOT / "configs" / "mlp_digits.yaml", "--run-dir", run, "-q",
                    "--set", "training.epochs=1", "--set", "training.batch_size=100")
    assert result.exit_code == 0, result.stderr
    return run


def test_eval_and_predict_score_in_batches_of_the_training_batch_size(digits_run, tmp_path,
                                                                      monkeypatch):
    # eval and predict never run the model on more samples at once than training did (a
    # conv net that trained within memory scores within it), unless --batch-size says
    # otherwise; the scores agree whatever the batch
    seen = _forward_batches(monkeypatch)
    small = invoke("eval", digits_run, "--json")
    assert small.exit_code == 0, small.stderr
    samples = json.loads(small.stdout)["samples"]
    assert samples > 300 and seen == [100] * (samples // 100) + [samples % 100]
    seen.clear()
    whole = invoke("eval", digits_run, "--json", "--batch-size", 1000)
    assert whole.exit_code == 0, whole.stderr
    assert seen == [samples]
    a, b = json.loads(small.stdout), json.loads(whole.stdout)
    assert a["accuracy"] == b["accuracy"]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)

    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=np.load(ROOT / "datasets" / "digits.npz")["x"][:250])
    seen.clear()
    out = tmp_path / "p.csv"
    result = invoke("predict", digits_run, inputs, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert seen == [100, 100, 50]
    seen.clear()
    out2 = tmp_path / "p2.csv"
    assert invoke("predict", digits_run, inputs, "-o", out2, "--batch-size", 7).exit_code == 0
    assert seen == [7] * 35 + [5]
    first, second = read_rows(out), read_rows(out2)
    assert [r[0] for r in first] == [r[0] for r in second]  # the same predicted classes
    np.testing.assert_allclose(np.array(first[1:])[:, 1:].astype(float),
                               np.array(second[1:])[:, 1:].astype(float), rtol=1e-5, atol=1e-12)


def test_predict_a_layer_in_several_batches_writes_every_input(digits_run, tmp_path):
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=np.load(ROOT / "datasets" / "digits.npz")["x"][:250])
    one, many = tmp_path / "one.npz", tmp_path / "many.npz"
    assert invoke("predict", digits_run, inputs, "-o", one, "--layer", "dense1",
                  "--batch-size", 1000).exit_code == 0
    assert invoke("predict", digits_run, inputs, "-o", many, "--layer", "dense1",
                  "--batch-size", 7).exit_code == 0
    whole, parts = np.load(one), np.load(many)
    key = next(iter(whole.files))
    assert whole[key].shape[0] == parts[key].shape[0] == 250
    np.testing.assert_allclose(parts[key], whole[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("trained, scored", [(1, 64), (16, 64), (64, 64), (100, 100),
                                             ("full", 1024)])
def test_the_scoring_batch_follows_training_with_a_floor(trained, scored):
    from types import SimpleNamespace

    from dlcli.use.evaluate import scoring_batch_size
    run = SimpleNamespace(config={"training": {"batch_size": trained}})
    assert scoring_batch_size(run) == scored


def test_eval_batch_size_must_be_positive(iris_run):
    result = invoke("eval", iris_run, "--batch-size", 0)
    assert result.exit_code == 2 and "--batch-size" in result.stderr

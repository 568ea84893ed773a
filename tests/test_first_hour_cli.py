"""A new user's first hour, through the installed ``dlcli`` command (issue 17, points 1, 2,
4, 5, 6, 7, 9 and 11; 3, 8 and 10 in tests/train/test_threads.py,
tests/use/test_scoring_cli.py, tests/train/test_progress_display.py): refusals before any
computation, messages a Keras user can act on, paths that work from anywhere, text that
survives narrow and non-UTF-8 terminals, cheap checkpoints, an F1 per epoch, a shuffled CSV
from init to predict."""

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
    (["epochs=5", "lr=0.1"], "--set training.epochs=5 --set training.optimizer.lr=0.1"),
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


# ---- point 5: paths and outputs --------------------------------------------------------
def small_npz(path, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(80, 2))
    np.savez(path, x=x, y=(x[:, 0] + x[:, 1] > 0).astype(int))
    return path


def npz_config(source):
    raw = moons_mlp(epochs=2)
    raw["data"] = {"source": str(source)}
    return raw


def test_printed_config_trains_from_another_directory(dlcli_exe, tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    small_npz(project / "points.npz")
    config = write_config(project / "net.yaml", npz_config("points.npz"))  # relative path
    printed = run_dlcli(dlcli_exe, "config", config, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert yaml.safe_load(printed.stdout)["data"]["source"] == str(project / "points.npz")
    (elsewhere / "mine.yaml").write_text(printed.stdout)
    result = run_dlcli(dlcli_exe, "train", "mine.yaml", "--run-dir", "run", cwd=elsewhere)
    assert result.returncode == 0, result.stderr


def test_set_paths_resolve_against_the_working_directory(dlcli_exe, tmp_path):
    configs, work = tmp_path / "configs", tmp_path / "work"
    configs.mkdir(), work.mkdir()
    config = write_config(configs / "net.yaml", moons_mlp(epochs=1))
    small_npz(work / "mine.npz")
    result = run_dlcli(dlcli_exe, "train", config, "--set", "data.source=mine.npz",
                       "--run-dir", "run", cwd=work)
    assert result.returncode == 0, result.stderr
    stored = yaml.safe_load((work / "run" / "config.yaml").read_text())
    assert stored["data"]["source"] == str(work / "mine.npz")


def test_init_from_accepts_a_run_directory(dlcli_exe, tmp_path):
    config = write_config(tmp_path / "moons.yaml", moons_mlp(epochs=2))
    assert run_dlcli(dlcli_exe, "train", config, "--run-dir", "first",
                     cwd=tmp_path).returncode == 0
    runs = {}
    for name, init in (("from_dir", "first"), ("from_file", "first/checkpoints/best.npz")):
        result = run_dlcli(dlcli_exe, "train", config, "--set", f"model.init_from={init}",
                           "--set", "training.epochs=1", "--run-dir", name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        runs[name] = (tmp_path / name / "metrics.jsonl").read_text()
    # the run directory means its best checkpoint, as in eval and predict
    first = [json.loads(l) for l in runs["from_dir"].splitlines()]
    second = [json.loads(l) for l in runs["from_file"].splitlines()]
    assert [r["loss"] for r in first] == [r["loss"] for r in second]


def test_force_overwrites_a_user_named_output(dlcli_exe, tmp_path):
    pytest.importorskip("matplotlib")
    config = write_config(tmp_path / "moons.yaml", moons_mlp(epochs=2))
    assert run_dlcli(dlcli_exe, "train", config, "--run-dir", "run",
                     cwd=tmp_path).returncode == 0
    (tmp_path / "docs").mkdir()
    target = tmp_path / "docs" / "learning-curves.png"
    target.write_bytes(b"old figure")
    refused = run_dlcli(dlcli_exe, "plot", "run", "-o", target, cwd=tmp_path)
    lines = errors_of(refused)
    assert len(lines) == 1 and "--force" in lines[0]
    assert target.read_bytes() == b"old figure"
    forced = run_dlcli(dlcli_exe, "plot", "run", "-o", target, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert target.read_bytes().startswith(b"\x89PNG")

    small_npz(tmp_path / "inputs.npz")
    out = tmp_path / "predictions.csv"
    out.write_text("old\n")
    lines = errors_of(run_dlcli(dlcli_exe, "predict", "run", "inputs.npz", "-o", out,
                                cwd=tmp_path))
    assert "--force" in lines[0] and out.read_text() == "old\n"
    forced = run_dlcli(dlcli_exe, "predict", "run", "inputs.npz", "-o", out, "--force",
                       cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert out.read_text().splitlines()[0].startswith("predicted")
    assert len(out.read_text().splitlines()) == 81


# ---- point 2: data.target on arrays is refused, never ignored ------------------------------
def test_target_with_an_npz_is_refused_naming_file_and_key(dlcli_exe, tmp_path):
    raw = npz_config(small_npz(tmp_path / "d.npz"))
    raw["data"]["target"] = "label"
    config = write_config(tmp_path / "c.yaml", raw)
    lines = errors_of(run_dlcli(dlcli_exe, "train", config, "--run-dir", tmp_path / "run"))
    assert len(lines) == 1
    assert str(tmp_path / "d.npz") in lines[0] and "data.target" in lines[0]
    assert "x and y" in lines[0]
    assert not (tmp_path / "run").exists()


# ---- point 4: cheap durability -------------------------------------------------------------
def test_auto_checkpoints_of_xor_hold_the_end_and_the_best_epoch(dlcli_exe, tmp_path):
    """configs/xor_mlp.yaml as shipped (checkpoint_every: auto): last holds epoch 50, best
    the epoch metrics.jsonl marks as the last improvement, both CSV and JSON lines hold
    every epoch, and eval reads both checkpoints."""
    import numpy as np
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = tmp_path / "run"
    done = run_dlcli(dlcli_exe, "train", os.path.join(root, "configs", "xor_mlp.yaml"),
                     "--run-dir", run, "-q")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 51))
    assert len((run / "metrics.csv").read_text().splitlines()) == 51
    summary = json.loads((run / "summary.json").read_text())
    assert summary["checkpoint_every"] == "auto"
    best_epoch = max(r["epoch"] for r in rows if r["best"])
    assert summary["best_epoch"] == best_epoch
    for name, epoch in (("last", 50), ("best", best_epoch)):
        with np.load(run / "checkpoints" / f"{name}.npz", allow_pickle=False) as npz:
            assert int(npz["trainer/epoch"]) == epoch
        scored = run_dlcli(dlcli_exe, "eval", run, "--checkpoint", name, "--json")
        assert scored.returncode == 0, scored.stderr


# ---- point 9: an F1 per epoch for every classifier --------------------------------------
@pytest.mark.parametrize("config, key", [("xor_mlp.yaml", "val_f1"),
                                         ("softmax_regression.yaml", "val_macro_f1")])
def test_classifiers_log_a_validation_f1_each_epoch(dlcli_exe, tmp_path, config, key):
    """Binary runs log val_f1 (the positive class's), multi-class runs val_macro_f1, each
    epoch; the last row's value is the F1 of eval's confusion matrix of the same split and
    checkpoint, 2TP / (2TP + FP + FN) per class; and the metric can be monitored."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = tmp_path / "run"
    done = run_dlcli(dlcli_exe, "train", os.path.join(root, "configs", config), "--run-dir",
                     run, "-q", "--set", "training.epochs=4", "--set",
                     f"training.monitor={key}")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(key in r for r in rows)
    scored = run_dlcli(dlcli_exe, "eval", run, "--split", "val", "--checkpoint", "last",
                       "--json")
    assert scored.returncode == 0, scored.stderr
    confusion = json.loads(scored.stdout)["confusion_matrix"]
    k = len(confusion)
    f1 = []
    for c in range(k):
        tp = confusion[c][c]
        fp = sum(confusion[r][c] for r in range(k)) - tp
        fn = sum(confusion[c]) - tp
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    expected = f1[1] if key == "val_f1" else sum(f1) / k
    assert rows[-1][key] == pytest.approx(expected, abs=1e-12)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["monitor"] == key
    assert summary["best"] == max(r[key] for r in rows)  # an F1 is better higher


# ---- points 2 and 11: a new user's own CSV, from init to predict ---------------------------
def test_a_shuffled_csv_with_an_id_and_a_text_column_from_init_to_predict(dlcli_exe, tmp_path):
    """A Kaggle-style file in shuffled order: an Id column (not in file order), a text
    column, a text target. init leaves the Id out and encodes the text column; train, eval
    and predict run as printed; predict needs neither the Id nor the target."""
    import numpy as np
    rng = np.random.default_rng(0)
    species, colors = ["setosa", "versicolor", "virginica"], ["red", "green", "blue"]
    ids = rng.permutation(150) + 1
    lines = ["Id,SepalLengthCm,PetalLengthCm,Color,Species"]
    for i in ids:
        s = int(i) % 3
        sepal, petal = 5.0 + 0.9 * s + rng.normal(0, 0.3), 1.5 + 2.7 * s + rng.normal(0, 0.3)
        lines.append(f"{i},{sepal:.2f},{petal:.2f},{colors[rng.integers(3)]},{species[s]}")
    (tmp_path / "flowers.csv").write_text("\n".join(lines) + "\n")
    made = run_dlcli(dlcli_exe, "init", "flowers.csv", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    config = yaml.safe_load((tmp_path / "flowers.yaml").read_text())
    assert config["data"]["target"] == "Species" and config["data"]["exclude"] == ["Id"]
    assert config["model"]["input_shape"] == [2 + 3]  # two numbers, Color one-hot
    trained = run_dlcli(dlcli_exe, "train", "flowers.yaml", "--run-dir", "run", "-q",
                        cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "row id" not in trained.stderr + trained.stdout
    scored = run_dlcli(dlcli_exe, "eval", "run", "--json", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["accuracy"] > 0.9
    (tmp_path / "new.csv").write_text("\n".join(
        ",".join(line.split(",")[1:4]) for line in lines[:6]) + "\n")  # no Id, no Species
    predicted = run_dlcli(dlcli_exe, "predict", "run", "new.csv", "-o", "p.csv", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    out = (tmp_path / "p.csv").read_text().splitlines()
    assert out[0].split(",")[0] == "predicted" and len(out) == 6
    truth = [line.split(",")[-1] for line in lines[1:6]]
    assert sum(row.split(",")[0] == t for row, t in zip(out[1:], truth)) >= 4

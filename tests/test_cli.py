"""End to end through the installed ``dlcli`` command: train, eval, predict, shapes,
config, gradcheck, and the exit-code contract (0 success; 2 with exactly one line on stderr
and no traceback for user mistakes)."""

import csv
import json

import numpy as np
import pytest
import yaml

from dlcli.config.schema import DATA, MODEL, TOP, TRAINING
from tests.helpers.cli import installed_dlcli, run_dlcli
from tests.helpers.configs import moons_mlp, write_config


@pytest.fixture(scope="session")
def dlcli_exe(tmp_path_factory):
    return installed_dlcli(tmp_path_factory.mktemp("dlcli-install"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def config_path(workdir):
    return write_config(workdir / "moons.yaml", moons_mlp(epochs=3))


@pytest.fixture(scope="module")
def trained(dlcli_exe, workdir, config_path):
    run_dir = workdir / "run1"
    result = run_dlcli(dlcli_exe, "train", config_path, "--run-dir", run_dir, cwd=workdir)
    assert result.returncode == 0, result.stderr
    return run_dir, result


def assert_usage_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_help(dlcli_exe):
    result = run_dlcli(dlcli_exe, "--help")
    assert result.returncode == 0
    for command in ("train", "eval", "predict", "shapes", "config", "gradcheck"):
        assert command in result.stdout
    assert run_dlcli(dlcli_exe, "train", "--help").returncode == 0


def test_train_writes_a_run_directory(trained):
    run_dir, result = trained
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "classes.json",
                 "checkpoints/best.npz", "checkpoints/last.npz"):
        assert (run_dir / name).is_file(), name
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    # not a terminal: exactly one plain line per epoch
    assert sum(line.startswith("epoch ") for line in result.stdout.splitlines()) == 3
    assert str(run_dir) in result.stdout
    with np.load(run_dir / "checkpoints" / "best.npz", allow_pickle=False) as archive:
        assert archive["dense1.weight"].shape == (8, 2)


def test_eval_json(dlcli_exe, trained, workdir):
    run_dir, _ = trained
    result = run_dlcli(dlcli_exe, "eval", run_dir, "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"loss", "accuracy"} <= set(report)
    assert report["loss"] > 0 and 0 <= report["accuracy"] <= 1
    assert report["split"] == "test" and report["samples"] == 24  # 20% of 120
    assert report["class_names"] == ["0", "1"]
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum() == 24
    assert np.trace(matrix) / 24 == pytest.approx(report["accuracy"])


def test_predict_writes_one_row_per_input(dlcli_exe, trained, workdir):
    run_dir, _ = trained
    x = np.random.default_rng(0).normal(size=(7, 2))
    np.savez(workdir / "inputs.npz", x=x)
    out = workdir / "predictions.csv"
    result = run_dlcli(dlcli_exe, "predict", run_dir, workdir / "inputs.npz", "-o", out,
                       cwd=workdir)
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7
    assert list(rows[0]) == ["predicted", "p_0", "p_1"]
    for row in rows:
        p = [float(row["p_0"]), float(row["p_1"])]
        assert sum(p) == pytest.approx(1, abs=1e-5)
        assert row["predicted"] == ("0" if p[0] > p[1] else "1")
    again = run_dlcli(dlcli_exe, "predict", run_dir, workdir / "inputs.npz", "-o", out,
                      cwd=workdir)
    assert again.returncode != 0  # never overwrites
    assert "Traceback" not in again.stderr


def test_shapes_json(dlcli_exe, config_path, workdir):
    result = run_dlcli(dlcli_exe, "shapes", config_path, "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [row["name"] for row in report["layers"]] == ["input", "dense1", "dense2"]
    assert [row["output_shape"] for row in report["layers"]] == [[2], [8], [2]]
    assert report["total_params"] == (2 * 8 + 8) + (8 * 2 + 2)
    assert report["memory_bytes"]["total"] > 0
    assert report["memory_bytes"]["parameters"] == 4 * report["total_params"]  # float32


def test_config_prints_every_key(dlcli_exe, config_path, workdir):
    result = run_dlcli(dlcli_exe, "config", config_path, "--set", "training.optimizer.lr=1e-3",
                       cwd=workdir)
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert set(printed) == set(TOP)
    assert set(printed["data"]) == set(DATA)
    assert set(printed["model"]) == set(MODEL)
    assert set(printed["training"]) == set(TRAINING)
    for layer in printed["model"]["layers"]:
        assert {"type", "name", "units", "activation", "initializer", "use_bias"} <= set(layer)
    assert printed["training"]["optimizer"]["lr"] == 0.001
    assert printed["training"]["optimizer"]["betas"] == [0.9, 0.999]
    assert printed["model"]["layers"][0]["initializer"] == "xavier"  # tanh layer


def test_gradcheck_command(dlcli_exe, config_path, workdir):
    result = run_dlcli(dlcli_exe, "gradcheck", config_path, "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True and len(report["params"]) == 4


# ---- exit code 2: one line on stderr, no traceback ------------------------------------

def test_bad_yaml(dlcli_exe, workdir):
    path = write_config(workdir / "broken.yaml", "data: [1, 2\n")
    line = assert_usage_error(run_dlcli(dlcli_exe, "train", path, cwd=workdir),
                              "broken.yaml", "invalid YAML")
    assert "line 2" in line


def test_unknown_key(dlcli_exe, workdir):
    raw = moons_mlp()
    raw["training"]["epoch"] = 3
    path = write_config(workdir / "typo.yaml", raw)
    assert_usage_error(run_dlcli(dlcli_exe, "train", path, cwd=workdir),
                       "typo.yaml", "training.epoch", "did you mean 'epochs'")


def test_missing_file(dlcli_exe, workdir):
    assert_usage_error(run_dlcli(dlcli_exe, "train", workdir / "absent.yaml", cwd=workdir),
                       "absent.yaml")
    assert_usage_error(run_dlcli(dlcli_exe, "eval", workdir / "no_run", cwd=workdir),
                       "no_run")


@pytest.mark.parametrize("item, fragment", [
    ("training.epochs", "key.path=value"),
    ("model.layers[7].units=3", "model.layers[7]"),
    ("training.epochs=-1", "training.epochs"),
])
def test_bad_set(dlcli_exe, config_path, workdir, item, fragment):
    assert_usage_error(run_dlcli(dlcli_exe, "config", config_path, "--set", item, cwd=workdir),
                       fragment)


def test_existing_run_dir_is_refused(dlcli_exe, trained, config_path, workdir):
    run_dir, _ = trained
    before = sorted(p.name for p in run_dir.iterdir())
    assert_usage_error(run_dlcli(dlcli_exe, "train", config_path, "--run-dir", run_dir,
                                 cwd=workdir), str(run_dir), "already exists")
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_unknown_command_and_option(dlcli_exe):
    assert_usage_error(run_dlcli(dlcli_exe, "trian"))
    assert_usage_error(run_dlcli(dlcli_exe, "train", "--bogus", "x.yaml"))

"""Sweep spec errors: exit 2, every problem of a pass with its key path and a suggestion."""

import pytest

from tests.helpers.sweep import dlcli, write_sweep

GOOD = {"method": "random", "trials": 2, "metric": {"name": "val_accuracy"},
        "parameters": {"training.optimizer.lr": {"loguniform": [1.0e-3, 1.0e-1]}}}


def errors_of(tmp_path, spec):
    path = write_sweep(tmp_path, spec)
    proc = dlcli("sweep", path, "--dry-run", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "sweeps").exists()
    return proc.stderr


def test_every_spec_error_of_a_pass_is_reported_with_its_key_path(tmp_path):
    text = errors_of(tmp_path, {
        "method": "grdi", "trials": 2, "metrc": {"name": "val_accuracy"},
        "parameters": {"training.optimizer.lr": {"loguniform": [0, 0.1]},
                       "model.layers[0].units": {"int": [4, 64], "logg": True},
                       "training.batch_size": {"values": []}},
        "executor": {"type": "local", "paralel": 2}})
    for expected in ["method: expected one of grid, random, tpe, got 'grdi' (did you mean "
                     "'grid'?)",
                     "metrc: unknown key; did you mean 'metric'?",
                     "metric: required key is missing",
                     "parameters['training.optimizer.lr'].loguniform: a log scale needs "
                     "low > 0, got [0, 0.1]",
                     "parameters['model.layers[0].units'].logg: unknown key; did you mean "
                     "'log'?",
                     "parameters['training.batch_size'].values: expected a non-empty list",
                     "executor.paralel: unknown key; did you mean 'parallel'?"]:
        assert expected in text, text
    # One line per problem, each naming the file.
    lines = text.strip().splitlines()
    assert len(lines) == 7 and all(line.startswith(f"error: {tmp_path / 'spec.yaml'}: ")
                                   for line in lines), text


@pytest.mark.parametrize("change, expected", [
    ({"method": "grid"}, "parameters['training.optimizer.lr']: method grid takes {values: "
                         "[...]} only"),
    ({"trials": None}, "trials: method random needs the number of trials"),
    ({"set": {"training.optimizer.lr": 0.1}}, "set['training.optimizer.lr']: is also a "
                                              "swept parameter"),
    ({"parameters": {"training.optimizr.lr": {"uniform": [0.1, 0.2]}}},
     "parameters['training.optimizr.lr']: "),
    ({"parameters": {"model.layers[7].units": {"values": [3]}}},
     "parameters['model.layers[7].units']: "),
    ({"metric": {"name": "val_acuracy"}}, "metric.name: classification runs log no metric "
                                          "'val_acuracy'; did you mean 'val_accuracy'?"),
    ({"parameters": {"training.lr": {"values": [0.1]}}}, "base.yaml: training.lr: unknown key"),
    ({"executor": {"type": "local", "address": "tcp://127.0.0.1:1"}},
     "executor.address: only a dask executor takes an address"),
    ({"parameters": {"training.optimizer.lr": {"uniform": [0.2, 0.1]}}},
     "parameters['training.optimizer.lr'].uniform: expected low < high, got [0.2, 0.1]"),
])
def test_spec_mistakes_name_their_key(tmp_path, change, expected):
    text = errors_of(tmp_path, {k: v for k, v in {**GOOD, **change}.items() if v is not None})
    assert expected in text, text


def test_a_trial_value_the_config_refuses_is_caught_before_any_trial_runs(tmp_path):
    spec = {**GOOD, "method": "grid", "trials": None,
            "parameters": {"model.layers[0].units": {"values": [4, -3]}}}
    text = errors_of(tmp_path, spec)
    assert ("parameters['model.layers[0].units']: " in text and
            "base.yaml: model.layers[0].units: expected a positive integer, got -3" in text), text


def test_a_problem_no_single_parameter_owns_names_its_trial_and_values(tmp_path):
    spec = {**GOOD, "method": "grid", "trials": None, "set": {"model.input_shape": [2]},
            "parameters": {"model.layers[0].type": {"values": ["dense", "conv2d"]}}}
    text = errors_of(tmp_path, spec)
    assert "trial 1: " in text and '(with model.layers[0].type="conv2d")' in text, text


def test_command_line_mistakes(tmp_path):
    path = write_sweep(tmp_path, GOOD)
    assert "give one of SPEC" in dlcli("sweep", cwd=tmp_path, check=2).stderr
    assert "--json goes with --show" in dlcli("sweep", path, "--json", cwd=tmp_path,
                                              check=2).stderr
    assert "not a dlcli sweep directory" in dlcli("sweep", "--resume", tmp_path,
                                                  cwd=tmp_path, check=2).stderr
    (tmp_path / "taken").mkdir()
    assert "already exists" in dlcli("sweep", path, "--dir", tmp_path / "taken",
                                     cwd=tmp_path, check=2).stderr

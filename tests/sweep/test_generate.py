"""Trial generation: grid order, random draws as functions of (seed, i), reloaded specs."""

import itertools
import math

import numpy as np
import pytest

from dlcli.sweep import driver, generate
from dlcli.sweep.spec import load_spec
from tests.helpers.sweep import write_sweep

RANDOM = {
    "method": "random", "trials": 400, "seed": 7, "metric": {"name": "val_accuracy"},
    "parameters": {"training.optimizer.lr": {"loguniform": [1.0e-4, 1.0e-1]},
                   "training.batch_size": {"values": [8, 16, 32]},
                   "model.layers[0].units": {"int": [2, 64], "log": True},
                   "model.layers[1].rate": {"uniform": [0.0, 0.5]},
                   "training.epochs": {"int": [1, 4]}},
}


def spec_of(tmp_path, **changes):
    return load_spec(write_sweep(tmp_path, {**RANDOM, **changes}))


def test_grid_is_the_product_in_order_first_parameter_slowest(tmp_path):
    params = {"training.optimizer.lr": {"values": [0.1, 0.01]},
              "training.batch_size": {"values": [8, 16, 32]},
              "training.optimizer.type": {"values": ["adam", "sgd"]}}
    spec = spec_of(tmp_path, method="grid", trials=None, parameters=params)
    expected = [dict(zip(params, combo)) for combo in
                itertools.product([0.1, 0.01], [8, 16, 32], ["adam", "sgd"])]
    assert generate.trial_count(spec) == 12
    assert [generate.values_for(spec, i) for i in range(12)] == expected
    first = spec_of(tmp_path, method="grid", trials=5, parameters=params)
    assert generate.trial_count(first) == 5
    assert [generate.values_for(first, i) for i in range(5)] == expected[:5]


def test_random_same_seed_same_trials_other_seed_other_trials(tmp_path):
    a, b = spec_of(tmp_path), spec_of(tmp_path)
    other = spec_of(tmp_path, seed=8)
    trials_a = [generate.values_for(a, i) for i in range(20)]
    assert trials_a == [generate.values_for(b, i) for i in range(20)]
    assert trials_a != [generate.values_for(other, i) for i in range(20)]
    # A function of (seed, i): trial 13 alone is what it was in the sequence.
    assert generate.values_for(a, 13) == trials_a[13]
    # Trials differ from each other.
    assert len({t["training.optimizer.lr"] for t in trials_a}) == 20


def test_adding_a_parameter_leaves_the_others_draws_alone(tmp_path):
    fewer = dict(RANDOM["parameters"])
    del fewer["model.layers[1].rate"]
    spec, smaller = spec_of(tmp_path), spec_of(tmp_path, parameters=fewer)
    for i in range(10):
        full = generate.values_for(spec, i)
        del full["model.layers[1].rate"]
        assert generate.values_for(smaller, i) == full


def test_random_draws_follow_their_distributions(tmp_path):
    spec = spec_of(tmp_path)
    trials = [generate.values_for(spec, i) for i in range(400)]
    lr = np.array([t["training.optimizer.lr"] for t in trials])
    units = np.array([t["model.layers[0].units"] for t in trials])
    rate = np.array([t["model.layers[1].rate"] for t in trials])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-1
    # log-uniform: log10(lr) uniform on [-4, -1]; each decade holds about a third.
    decades = np.histogram(np.log10(lr), bins=[-4, -3, -2, -1])[0] / len(lr)
    assert np.all(np.abs(decades - 1 / 3) < 0.08), decades
    assert units.dtype.kind == "i" and units.min() >= 2 and units.max() <= 64
    # int with log: below the geometric middle of [2, 65) about half the time.
    assert abs(np.mean(units < math.sqrt(2 * 65)) - 0.5) < 0.08
    assert 0.0 <= rate.min() and rate.max() < 0.5 and abs(rate.mean() - 0.25) < 0.03
    assert {t["training.batch_size"] for t in trials} == {8, 16, 32}
    assert {t["training.epochs"] for t in trials} == {1, 2, 3, 4}


def test_a_reloaded_sweep_generates_the_same_values(tmp_path):
    spec = spec_of(tmp_path, trials=6)
    trials = driver.validate(spec)
    sweep_dir = driver.create(spec, trials, tmp_path / "sweep")
    reloaded = driver.open_sweep(sweep_dir)
    assert [generate.values_for(reloaded, i) for i in range(6)] == [v for _, v in trials]
    assert generate.trial_count(reloaded) == 6


@pytest.mark.parametrize("params, expected", [
    ({"a.b": {"values": [1, 2, 3]}, "c": {"uniform": [0.0, 1.0]}},
     [{"a.b": 1, "c": 0.0}, {"a.b": 3, "c": 1.0}, {"a.b": 2, "c": 0.0}]),
    ({"n": {"int": [1, 8], "log": True}}, [{"n": 1}, {"n": 8}]),
])
def test_corner_values_touch_every_value_and_both_ends(params, expected):
    assert generate.corner_values(params) == expected

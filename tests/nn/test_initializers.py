"""Initializers: the notes' formulas (1.9), their statistics, and seeded reproducibility."""

import numpy as np
import pytest

import dlcli.nn.initializers  # noqa: F401  (registers the initializers)
from dlcli.nn.model import build_layer
from dlcli.registry import INITIALIZERS

SHAPE, FAN_IN, FAN_OUT = (300, 400), 400, 300  # 120,000 draws


def draw(name, seed=0, shape=SHAPE, fan_in=FAN_IN, fan_out=FAN_OUT):
    return INITIALIZERS.get(name)(shape, fan_in, fan_out, np.random.default_rng(seed))


@pytest.mark.parametrize("name, gain", [("xavier", 1.0), ("he", 2.0)])
def test_normal_initializers_are_standard_normal_times_sqrt_gain_over_fan_in(name, gain):
    w = draw(name, seed=3)
    # Exactly the notes' recipe: W ~ N(0, 1), then W · sqrt(gain / n_in), from the given rng.
    expected = np.random.default_rng(3).standard_normal(SHAPE) * np.sqrt(gain / FAN_IN)
    np.testing.assert_allclose(w, expected, rtol=1e-15)
    # Statistics: the std of 120k draws is within ~0.3% of sigma; allow 2%.
    sigma = np.sqrt(gain / FAN_IN)
    assert w.std() == pytest.approx(sigma, rel=0.02)
    assert abs(w.mean()) < 5 * sigma / np.sqrt(w.size)


def test_xavier_and_he_depend_on_fan_in_only():
    a = draw("he", fan_in=100, fan_out=5)
    b = draw("he", fan_in=100, fan_out=500)
    np.testing.assert_array_equal(a, b)
    assert draw("xavier", fan_in=25).std() == pytest.approx(0.2, rel=0.02)


def test_glorot_uniform_bounds_and_variance():
    w = draw("glorot_uniform")
    limit = np.sqrt(6.0 / (FAN_IN + FAN_OUT))
    assert np.all(np.abs(w) <= limit)
    assert w.max() > 0.99 * limit and w.min() < -0.99 * limit  # fills the interval
    assert w.var() == pytest.approx(limit ** 2 / 3, rel=0.02)  # variance of U(-a, a)


def test_small_normal_and_uniform_and_zeros():
    assert draw("normal").std() == pytest.approx(0.05, rel=0.02)
    u = draw("uniform")
    assert np.all(np.abs(u) <= 0.05) and u.max() > 0.0499
    np.testing.assert_array_equal(draw("zeros"), np.zeros(SHAPE))


@pytest.mark.parametrize("name", [n for n in INITIALIZERS.names() if n != "zeros"])
def test_seeded_reproducibility(name):
    np.testing.assert_array_equal(draw(name, seed=11), draw(name, seed=11))
    assert not np.array_equal(draw(name, seed=11), draw(name, seed=12))


def test_initializers_never_touch_the_global_rng():
    np.random.seed(5)
    before = np.random.random()
    np.random.seed(5)
    for name in INITIALIZERS.names():
        draw(name)
    assert np.random.random() == before


def test_dense_layer_weight_is_the_initializer_draw_with_fan_in_equal_to_inputs():
    layer = build_layer({"type": "dense", "units": 7, "initializer": "he"})
    layer.build((13,), np.random.default_rng(9), np.float64)
    expected = np.random.default_rng(9).standard_normal((7, 13)) * np.sqrt(2.0 / 13)
    np.testing.assert_allclose(layer.params["weight"], expected, rtol=1e-15)
    np.testing.assert_array_equal(layer.params["bias"], np.zeros(7))
    layer32 = build_layer({"type": "dense", "units": 7, "initializer": "he"})
    layer32.build((13,), np.random.default_rng(9))
    assert layer32.params["weight"].dtype == np.float32
    np.testing.assert_allclose(layer32.params["weight"], expected, rtol=1e-6)

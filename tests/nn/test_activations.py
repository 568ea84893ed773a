"""Activations against the formulas of notes 1.2.1 and 1.6.3, and one-hot encoding (1.6.2)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dlcli.data.encoding import one_hot
from dlcli.nn.activations import make_activation
from dlcli.inspect.gradcheck import check_layer
from dlcli.nn.model import build_layer, load_layer_modules
from dlcli.registry import ACTIVATIONS
from tests.helpers.numeric import assert_close, distinct_values

load_layer_modules()


def logistic(x):
    """σ(x) = 1 / (1 + e^(−x)) written directly from the notes (moderate x only)."""
    return 1.0 / (1.0 + np.exp(-x))


def run(name, x, dy=None, **options):
    layer = make_activation({"type": name, **options} if options else name)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y) if dy is None else dy)
    return y, dx


X = np.linspace(-6, 6, 49).reshape(7, 7)


def test_sigmoid_value_and_derivative_sigma_times_one_minus_sigma():
    dy = np.random.default_rng(0).standard_normal(X.shape)
    y, dx = run("sigmoid", X, dy)
    s = logistic(X)
    assert_close(y, s)
    assert_close(dx, dy * s * (1 - s))


def test_sigmoid_of_minus_x_is_one_minus_sigmoid():
    y, _ = run("sigmoid", X)
    y_neg, _ = run("sigmoid", -X)
    assert_close(y_neg, 1 - y, atol=1e-15)


def test_tanh_is_a_rescaled_sigmoid():
    t, dx = run("tanh", X)
    s2, _ = run("sigmoid", 2 * X)
    assert_close(t, 2 * s2 - 1, atol=1e-14)
    assert_close(t, (np.exp(X) - np.exp(-X)) / (np.exp(X) + np.exp(-X)), atol=1e-14)
    assert_close(dx, 1 - t ** 2)


def test_softmax_values_and_jacobian_from_unit_vectors():
    x = np.array([[0.3, -1.2, 2.0, 0.7]])
    e = np.exp(x[0])
    s = e / e.sum()
    layer = make_activation("softmax")
    assert_close(layer.forward(x)[0], s)
    n = x.shape[1]
    jacobian = np.empty((n, n))
    for i in range(n):  # backward(e_i) = row i of J: dS_i/dx_j for every j
        layer.forward(x)
        jacobian[i] = layer.backward(np.eye(n)[i:i + 1])[0]
    for i in range(n):
        for j in range(n):
            expected = s[i] * (1 - s[i]) if i == j else -s[i] * s[j]
            assert jacobian[i, j] == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("shift", [-50.0, 3.0, 1000.0])
def test_softmax_shift_invariance(shift):
    x = np.array([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
    y, _ = run("softmax", x)
    y_shift, _ = run("softmax", x + shift)
    assert np.all(np.isfinite(y_shift))
    assert_close(y_shift, y, rtol=1e-12)
    assert_close(y.sum(axis=1), [1.0, 1.0])
    assert_close(y[1], [1 / 3] * 3)


FINITE = st.floats(-40, 40, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (3, 4), elements=FINITE), st.floats(-500, 500))
def test_softmax_shift_invariance_property(x, shift):
    y, _ = run("softmax", x)
    assert_close(run("softmax", x + shift)[0], y, rtol=1e-9, atol=1e-14)
    assert_close(y.sum(axis=1), np.ones(3), rtol=1e-12)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (8,), elements=FINITE))
def test_sigmoid_symmetry_property(x):
    assert_close(run("sigmoid", -x)[0], 1 - run("sigmoid", x)[0], rtol=1e-12, atol=1e-15)


def test_relu_and_identity():
    y, dx = run("relu", np.array([-2.0, -0.5, 0.5, 3.0]))
    assert_close(y, [0, 0, 0.5, 3])
    assert_close(dx, [0, 0, 1, 1])
    y, dx = run("identity", X, 2 * X)
    assert_close(y, X)
    assert_close(dx, 2 * X)


def test_leaky_relu_default_slope_is_the_notes_0_1():
    x = np.array([-10.0, -2.0, -0.5, 0.5, 3.0])
    y, dx = run("leaky_relu", x)
    assert_close(y, np.maximum(0.1 * x, x))
    assert_close(y, [-1.0, -0.2, -0.05, 0.5, 3.0])
    assert_close(dx, [0.1, 0.1, 0.1, 1, 1])
    y, _ = run("leaky_relu", x, negative_slope=0.25)
    assert_close(y, np.maximum(0.25 * x, x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_step_is_one_at_zero(dtype):
    x = np.array([-1.0, -1e-30, 0.0, -0.0, 1e-30, 2.0], dtype=dtype)
    y, dx = run("binary_step", x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, [0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(dx, np.zeros_like(x))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "softmax",
                                  "identity", "binary_step"])
def test_activations_keep_float32(name):
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    y, dx = run(name, x)
    assert y.dtype == np.float32 and dx.dtype == np.float32


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_every_activation_passes_gradcheck(name):
    rng = np.random.default_rng(42)
    layer = build_layer({"type": "activation", "activation": name})
    layer.build((5,), rng, np.float64)
    # distinct values away from the kinks of relu/leaky_relu/binary_step at 0
    errors = check_layer(layer, distinct_values(rng, (4, 5), scale=3.0), rng)
    assert max(errors.values()) < 1e-7, errors


def test_leaky_relu_with_other_slope_passes_gradcheck():
    rng = np.random.default_rng(1)
    layer = build_layer({"type": "activation", "activation": "leaky_relu", "negative_slope": 0.3})
    layer.build((5,), rng, np.float64)
    assert layer.get_config()["negative_slope"] == 0.3
    assert max(check_layer(layer, distinct_values(rng, (3, 5)), rng).values()) < 1e-7


def test_leaky_relu_rejects_slope_outside_0_1():
    with pytest.raises(ValueError, match="negative_slope"):
        make_activation({"type": "leaky_relu", "negative_slope": 1.5})


# ---- one-hot encoding: the notes' examples (1.6.2) -----------------------------------

def test_one_hot_examples_of_the_notes():
    np.testing.assert_array_equal(one_hot([4], 5), [[0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(one_hot([3, 0, 2]), [
        [0, 0, 0, 1],
        [1, 0, 0, 0],
        [0, 0, 1, 0],
    ])
    np.testing.assert_array_equal(one_hot([5, 0, 4, 4, 3]), [
        [0, 0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 1, 0, 0],
    ])
    assert one_hot([3, 0, 2]).shape == (3, 4)
    assert one_hot([5, 0, 4, 4, 3]).shape == (5, 6)


def test_relu_of_infinities_and_nan():
    # relu(-inf) = 0 and relu(inf) = inf; a NaN stays NaN (the divergence check sees it)
    y, dx = run("relu", np.array([-np.inf, np.inf, np.nan, -1.0, 2.0]))
    np.testing.assert_array_equal(y, [0.0, np.inf, np.nan, 0.0, 2.0])
    np.testing.assert_array_equal(dx, [0.0, 1.0, 0.0, 0.0, 1.0])


def test_relu_is_max_zero_for_every_batch_shape_it_meets():
    # the zero array it compares with follows the input's shape and dtype
    layer = build_layer({"type": "activation", "activation": "relu"})
    rng = np.random.default_rng(0)
    for shape, dtype in [((4, 3), np.float32), ((2, 3), np.float32), ((2, 3, 5, 5), np.float64),
                         ((4, 4096), np.float32), ((3, 8, 32, 32), np.float32),
                         ((6, 1024), np.float64), ((37, 256), np.float32)]:
        x = rng.standard_normal(shape).astype(dtype)
        y = layer.forward(x, training=True)
        assert y.dtype == dtype
        np.testing.assert_array_equal(y, np.where(x > 0, x, 0))

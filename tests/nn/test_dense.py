"""Dense, flatten and dropout against direct loop references."""

import numpy as np
import pytest

from dlcli.inspect.gradcheck import check_layer
from dlcli.nn.layers.base import IncompatibleShape
from dlcli.nn.model import build_layer
from tests.helpers.numeric import assert_close


def built(config, input_shape, seed=0, dtype=np.float64):
    layer = build_layer(config)
    layer.build(input_shape, np.random.default_rng(seed), dtype)
    return layer


def test_dense_forward_and_backward_match_loops():
    rng = np.random.default_rng(0)
    layer = built({"type": "dense", "units": 3, "initializer": "normal"}, (4,))
    layer.params["bias"][...] = rng.normal(size=3)
    W, b = layer.params["weight"], layer.params["bias"]
    assert W.shape == (3, 4)  # (out, in), the notes' W^(m)
    x = rng.normal(size=(5, 4))
    dy = rng.normal(size=(5, 3))
    y = layer.forward(x)
    # x_i^(m) = Σ_j w_ij y_j^(m-1) + b_i (notes 1.2.2), one sample at a time
    for n in range(5):
        for i in range(3):
            assert y[n, i] == pytest.approx(sum(W[i, j] * x[n, j] for j in range(4)) + b[i])
    dx = layer.backward(dy)
    for i in range(3):
        for j in range(4):
            expected = sum(dy[n, i] * x[n, j] for n in range(5))
            assert layer.grads["weight"][i, j] == pytest.approx(expected)
        assert layer.grads["bias"][i] == pytest.approx(dy[:, i].sum())
    for n in range(5):
        for j in range(4):
            assert dx[n, j] == pytest.approx(sum(dy[n, i] * W[i, j] for i in range(3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_term_products_are_exact_single_products(dtype):
    # Where a sum has a single term each entry is one rounded product, whatever computes
    # it: one sample's weight gradient dy_i x_j (SGD, batch size 1), the input gradient
    # dy W of a one-unit layer, and the forward of a one-feature input x W^T.
    rng = np.random.default_rng(4)
    layer = built({"type": "dense", "units": 300, "initializer": "normal"}, (70,), dtype=dtype)
    x = rng.normal(size=(1, 70)).astype(dtype)
    dy = rng.normal(size=(1, 300)).astype(dtype)
    layer.forward(x, training=True)
    layer.zero_grad()
    layer.backward(dy)
    expected = np.array([[dy[0, i] * x[0, j] for j in range(70)] for i in range(300)], dtype)
    np.testing.assert_array_equal(layer.grads["weight"], expected)
    layer.grads["weight"][...] = 3.0
    layer.backward(dy)  # a second backward writes the same gradient again
    np.testing.assert_array_equal(layer.grads["weight"], expected)

    unit = built({"type": "dense", "units": 1, "initializer": "normal"}, (40,), dtype=dtype)
    w = unit.params["weight"]
    dy = rng.normal(size=(50, 1)).astype(dtype)
    unit.forward(rng.normal(size=(50, 40)).astype(dtype), training=True)
    dx = unit.backward(dy)
    np.testing.assert_array_equal(dx, [[dy[n, 0] * w[0, j] for j in range(40)] for n in range(50)])

    wide = built({"type": "dense", "units": 90, "initializer": "normal", "use_bias": False},
                 (1,), dtype=dtype)
    x = rng.normal(size=(60, 1)).astype(dtype)
    w = wide.params["weight"]
    np.testing.assert_array_equal(wide.forward(x), [[x[n, 0] * w[i, 0] for i in range(90)]
                                                    for n in range(60)])


def test_dense_gradcheck_float64():
    rng = np.random.default_rng(3)
    layer = built({"type": "dense", "units": 4}, (6,))
    layer.params["bias"] += rng.normal(size=4)
    errors = check_layer(layer, rng.normal(size=(3, 6)), rng)
    assert max(errors.values()) < 1e-7, errors


def test_dense_without_bias_has_only_a_weight():
    layer = built({"type": "dense", "units": 2, "use_bias": False}, (3,))
    assert set(layer.params) == {"weight"} == set(layer.grads)
    x = np.ones((1, 3))
    assert_close(layer.forward(x), x @ layer.params["weight"].T)


def test_dense_unit_norm_update_divides_by_the_norm_of_x_with_its_bias_input():
    layer = built({"type": "dense", "units": 1, "update": "unit_norm"}, (2,))
    x = np.array([[3.0, 4.0]])  # x̃ = [3, 4, 1], ‖x̃‖ = sqrt(26)
    layer.forward(x)
    layer.backward(np.array([[2.0]]))
    assert_close(layer.grads["weight"], [[2 * 3 / np.sqrt(26), 2 * 4 / np.sqrt(26)]])
    assert_close(layer.grads["bias"], [2 / np.sqrt(26)])
    # stale values from a previous step are overwritten
    layer.grads["weight"][...] = 5.0
    layer.grads["bias"][...] = 5.0
    layer.backward(np.array([[2.0]]))
    assert_close(layer.grads["weight"], [[2 * 3 / np.sqrt(26), 2 * 4 / np.sqrt(26)]])
    assert_close(layer.grads["bias"], [2 / np.sqrt(26)])


def test_dense_skips_the_input_gradient_when_nobody_needs_it():
    layer = built({"type": "dense", "units": 2}, (3,))
    layer.need_input_grad = False
    layer.forward(np.ones((2, 3)))
    assert layer.backward(np.ones((2, 2))) is None
    assert_close(layer.grads["weight"], 2 * np.ones((2, 3)))


def test_dense_rejects_an_image_input_and_suggests_flatten():
    layer = build_layer({"type": "dense", "units": 2})
    with pytest.raises(IncompatibleShape, match="flatten"):
        layer.output_shape((1, 8, 8))


def test_dense_keeps_float32():
    layer = built({"type": "dense", "units": 3}, (4,), dtype=np.float32)
    x = np.ones((2, 4), dtype=np.float32)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads.values())


def test_flatten_uses_channel_row_column_order():
    layer = built({"type": "flatten"}, (2, 3, 4))
    x = np.arange(2 * 2 * 3 * 4, dtype=float).reshape(2, 2, 3, 4)  # (N, C, H, W)
    y = layer.forward(x)
    assert y.shape == (2, 24) and layer.output_shape((2, 3, 4)) == (24,)
    for c in range(2):
        for h in range(3):
            for w in range(4):
                assert y[1, (c * 3 + h) * 4 + w] == x[1, c, h, w]
    assert_close(layer.backward(y), x)


def test_dropout_is_identity_at_evaluation_and_scales_kept_units_in_training():
    layer = built({"type": "dropout", "rate": 0.25}, (1000,))
    x = np.ones((20, 1000))
    assert_close(layer.forward(x, training=False), x)
    y = layer.forward(x, training=True)
    kept = y != 0
    assert_close(y[kept], np.full(kept.sum(), 1 / 0.75))  # inverted dropout
    assert kept.mean() == pytest.approx(0.75, abs=0.01)
    dy = np.arange(20 * 1000, dtype=float).reshape(20, 1000)
    assert_close(layer.backward(dy), dy * kept / 0.75)


def test_dropout_masks_come_from_the_given_generator():
    a = built({"type": "dropout", "rate": 0.5}, (50,), seed=4)
    b = built({"type": "dropout", "rate": 0.5}, (50,), seed=4)
    x = np.ones((3, 50))
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))

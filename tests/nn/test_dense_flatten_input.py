"""``dense`` with ``flatten_input: true`` takes an image input, as the notes' FC3 (fig. 3.5)."""

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


def test_shapes_and_parameters_of_fc3_on_the_pool2_output():
    layer = build_layer({"type": "dense", "units": 120, "flatten_input": True})
    assert layer.output_shape((16, 5, 5)) == (120,)  # internal (C, H, W) of (5, 5, 16)
    assert layer.param_shapes((16, 5, 5)) == {"weight": (120, 400), "bias": (120,)}
    assert layer.mult_adds((16, 5, 5)) == 48000


def test_forward_equals_flatten_then_dense_in_channel_row_column_order():
    rng = np.random.default_rng(1)
    layer = built({"type": "dense", "units": 3, "flatten_input": True}, (2, 3, 4))
    layer.params["bias"][...] = rng.normal(size=3)
    W, b = layer.params["weight"], layer.params["bias"]
    assert W.shape == (3, 24)
    x = rng.normal(size=(5, 2, 3, 4))  # (N, C, H, W)
    y = layer.forward(x)
    # PyTorch's Linear after nn.Flatten(): input feature (c*H + h)*W + w.
    for n in range(5):
        for o in range(3):
            expected = b[o] + sum(W[o, (c * 3 + h) * 4 + w] * x[n, c, h, w]
                                  for c in range(2) for h in range(3) for w in range(4))
            assert y[n, o] == pytest.approx(expected)
    dy = rng.normal(size=(5, 3))
    dx = layer.backward(dy)
    assert dx.shape == x.shape
    assert_close(dx, (dy @ W).reshape(x.shape))
    assert_close(layer.grads["weight"], dy.T @ x.reshape(5, -1))


def test_gradcheck_on_an_image_input_float64():
    rng = np.random.default_rng(2)
    layer = built({"type": "dense", "units": 4, "flatten_input": True}, (3, 2, 2))
    layer.params["bias"] += rng.normal(size=4)
    errors = check_layer(layer, rng.normal(size=(3, 3, 2, 2)), rng)
    assert max(errors.values()) < 1e-7, errors


def test_vector_inputs_behave_as_before():
    rng = np.random.default_rng(3)
    plain = built({"type": "dense", "units": 2}, (5,), seed=7)
    flat = built({"type": "dense", "units": 2, "flatten_input": True}, (5,), seed=7)
    x = rng.normal(size=(4, 5))
    assert_close(flat.forward(x), plain.forward(x))


def test_default_still_rejects_an_image_and_names_both_remedies():
    layer = build_layer({"type": "dense", "units": 2})
    with pytest.raises(IncompatibleShape, match=r"flatten layer.*flatten_input: true") as info:
        layer.output_shape((1, 8, 6))
    assert "(8, 6, 1)" in str(info.value)  # shown in the notes' (height, width, channels)


def test_config_round_trips():
    layer = build_layer({"type": "dense", "units": 2, "flatten_input": True})
    assert layer.get_config()["flatten_input"] is True
    again = build_layer(layer.get_config())
    assert again.flatten_input and again.output_shape((2, 3, 3)) == (2,)

"""The reshape layer: shapes in the notes' (H, W, C) order, values in internal row-major order."""

import re

import numpy as np
import pytest

from dlcli.inspect.gradcheck import check_layer
from dlcli.nn.layers.base import IncompatibleShape
from dlcli.nn.layers.reshape import Reshape
from dlcli.registry import LAYERS


def built(layer, shape, dtype=np.float64):
    layer.build(shape, np.random.default_rng(0), dtype)
    return layer


@pytest.mark.parametrize("target, input_shape, expected", [
    ([7, 7, 16], (784,), (16, 7, 7)),        # (H, W, C) -> internal (C, H, W)
    ([64], (4, 4, 4), (64,)),
    ([2, 3, 4], (4, 6), (4, 2, 3)),
    ([-1], (3, 5, 2), (30,)),
    ([4, -1, 2], (24,), (2, 4, 3)),
])
def test_output_shape(target, input_shape, expected):
    assert Reshape(target).output_shape(input_shape) == expected


def test_impossible_shapes_give_the_numbers():
    with pytest.raises(IncompatibleShape, match=re.escape(
            "cannot reshape 400 values into (7, 7, 16) = 784")):
        Reshape([7, 7, 16]).output_shape((16, 5, 5))
    with pytest.raises(IncompatibleShape, match=re.escape(
            "cannot reshape 10 values into (-1, 3): 10 is not a multiple of 3")):
        Reshape([-1, 3]).output_shape((10,))


@pytest.mark.parametrize("shape", [[], [0, 3], [-1, -1], [-2], "7x7", [2.5], [True]])
def test_bad_shape_hyperparameter(shape):
    with pytest.raises(ValueError, match="shape"):
        Reshape(shape)


def test_vector_to_image_reads_values_in_channel_height_width_order():
    """Same order as flatten and PyTorch's view: v[(c*H + h)*W + w] lands at (c, h, w)."""
    layer = built(Reshape([2, 3, 4]), (24,))
    x = np.arange(48, dtype=float).reshape(2, 24)
    y = layer.forward(x)
    assert y.shape == (2, 4, 2, 3)
    for n in range(2):
        for c in range(4):
            for h in range(2):
                for w in range(3):
                    assert y[n, c, h, w] == x[n, (c * 2 + h) * 3 + w]


@pytest.mark.parametrize("target, input_shape", [([7, 7, 16], (784,)), ([12], (3, 2, 2)),
                                                  ([2, 2, 3], (2, 3, 2)), ([-1], (2, 3))])
def test_backward_inverts_forward_and_gradchecks(target, input_shape):
    layer = built(Reshape(target), input_shape)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *input_shape))
    y = layer.forward(x)
    assert y.shape == (2, *layer.output_shape(input_shape))
    np.testing.assert_array_equal(layer.backward(y), x)
    if np.prod(input_shape) <= 12:
        assert check_layer(layer, x, rng)["input"] < 1e-6


def test_float32_and_no_input_grad():
    layer = built(Reshape([2, 2, 1]), (4,), np.float32)
    y = layer.forward(np.ones((3, 4), np.float32))
    assert y.dtype == np.float32
    assert layer.backward(y).dtype == np.float32
    layer.need_input_grad = False
    assert layer.backward(y) is None


def test_config_round_trip():
    layer = Reshape([7, 7, 16], name="r")
    config = layer.get_config()
    assert config == {"type": "reshape", "shape": [7, 7, 16], "name": "r"}
    rebuilt = LAYERS.get("reshape")(**{k: v for k, v in config.items() if k != "type"})
    assert rebuilt.get_config() == config
    assert layer.param_shapes((784,)) == {} and layer.mult_adds((784,)) == 0

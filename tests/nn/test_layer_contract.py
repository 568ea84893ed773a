"""One contract, checked for every registered layer type (DESIGN.md, "Interfaces"):

builds from a config dict, forward shape equals ``output_shape``, ``dx`` has the input's
shape, ``get_config`` round-trips, gradcheck passes in float64, and backward writes every
gradient over a previous step's values. A registered type without a sample below is skipped by name, so
a new layer shows up as a visible gap until it gets one.
"""

import numpy as np
import pytest

from dlcli.inspect.gradcheck import check_layer
from dlcli.nn.model import build_layer, load_layer_modules
from dlcli.registry import LAYERS
from tests.helpers.numeric import distinct_values

load_layer_modules()

BATCH = 3


def _link_unpool(layer, rng):
    """maxunpool2d undoes a named maxpool2d: build that pool and run its forward first."""
    pool = build_layer({"type": "maxpool2d", "pool_size": 2, "name": "pool1"})
    pool.build((2, 4, 4), rng, np.float64)
    layer.link({"pool1": pool, layer.name: layer})
    pool.forward(distinct_values(rng, (BATCH, 2, 4, 4)))
    return pool


# type -> (config, internal input shape (no batch axis), optional setup(layer, rng))
SAMPLES = {
    "dense": ({"type": "dense", "units": 3, "initializer": "xavier"}, (5,), None),
    "activation": ({"type": "activation", "activation": "tanh"}, (4,), None),
    "flatten": ({"type": "flatten"}, (2, 3, 3), None),
    "dropout": ({"type": "dropout", "rate": 0.3}, (6,), None),
    "reshape": ({"type": "reshape", "shape": [3, 2, 2]}, (12,), None),
    "conv2d": ({"type": "conv2d", "filters": 2, "kernel_size": 3, "stride": 1, "padding": 1},
               (2, 5, 5), None),
    "conv_transpose2d": ({"type": "conv_transpose2d", "filters": 2, "kernel_size": 3,
                          "stride": 2}, (2, 3, 3), None),
    "maxpool2d": ({"type": "maxpool2d", "pool_size": 2}, (2, 4, 4), None),
    "avgpool2d": ({"type": "avgpool2d", "pool_size": 2, "stride": 1}, (2, 4, 4), None),
    "maxunpool2d": ({"type": "maxunpool2d", "pool": "pool1"}, (2, 2, 2), _link_unpool),
}

TYPES = LAYERS.names()


def make(kind, seed=0):
    """(layer built in float64, input batch, sample config) for ``kind``, or skip."""
    if kind not in SAMPLES:
        pytest.skip(f"no sample config for layer type {kind!r}: add one to SAMPLES")
    config, shape, setup = SAMPLES[kind]
    rng = np.random.default_rng(seed)
    layer = build_layer({**config, "name": "layer"})
    if setup is not None:
        setup(layer, rng)
    layer.build(shape, rng, np.float64)
    for value in layer.params.values():  # nonzero biases so that a dropped bias term shows
        value += rng.normal(0, 0.1, size=value.shape)
    return layer, distinct_values(rng, (BATCH,) + shape), config


def test_every_sample_is_a_registered_type():
    assert set(SAMPLES) <= set(TYPES)


@pytest.mark.parametrize("kind", TYPES)
def test_forward_shape_is_output_shape_and_dx_has_input_shape(kind):
    layer, x, _ = make(kind)
    y = layer.forward(x)
    assert y.shape == (BATCH,) + tuple(layer.output_shape(x.shape[1:]))
    assert y.dtype == np.float64
    dx = layer.backward(np.random.default_rng(1).standard_normal(y.shape))
    assert dx.shape == x.shape
    assert set(layer.params) == set(layer.grads)
    for key in layer.params:
        assert layer.grads[key].shape == layer.params[key].shape
        assert layer.param_shapes(x.shape[1:])[key] == layer.params[key].shape


@pytest.mark.parametrize("kind", TYPES)
def test_config_round_trips(kind):
    layer, _, config = make(kind)
    saved = layer.get_config()
    assert saved["type"] == kind and saved["name"] == "layer"
    for key, value in config.items():  # every given key comes back unchanged
        assert saved[key] == value, key
    rebuilt = build_layer(saved)
    assert type(rebuilt) is type(layer)
    assert rebuilt.get_config() == saved


@pytest.mark.parametrize("kind", TYPES)
def test_gradcheck_float64(kind):
    layer, x, _ = make(kind)
    errors = check_layer(layer, x, np.random.default_rng(2))
    assert set(errors) == {"input", *layer.params}
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("kind", TYPES)
def test_backward_writes_every_gradient_over_a_previous_steps_values(kind):
    # the trainer zeroes nothing between steps: each backward must overwrite every
    # gradient, in place, never add to what an earlier step left there
    layer, x, _ = make(kind)
    dy = np.random.default_rng(3).standard_normal(layer.forward(x).shape)
    layer.zero_grad()
    dx1 = layer.backward(dy.copy())
    once = {k: g.copy() for k, g in layer.grads.items()}
    arrays = {k: g for k, g in layer.grads.items()}
    for g in layer.grads.values():
        g[...] = 1e6  # a previous step's gradient
    dx2 = layer.backward(dy.copy())
    np.testing.assert_array_equal(dx2, dx1)  # backward itself has no side effect
    for key, grad in layer.grads.items():
        assert grad is arrays[key], key  # written in place (views of the packed buffer)
        assert np.any(once[key] != 0), key
        np.testing.assert_array_equal(grad, once[key], err_msg=key)
    layer.zero_grad()
    assert all(not np.any(g) for g in layer.grads.values())


@pytest.mark.parametrize("kind", TYPES)
def test_output_shape_is_pure(kind):
    layer, x, _ = make(kind)
    before = {k: v.copy() for k, v in layer.params.items()}
    first = layer.output_shape(x.shape[1:])
    assert layer.output_shape(x.shape[1:]) == first
    for key, value in layer.params.items():
        np.testing.assert_array_equal(value, before[key])

"""An activation attached to a layer (``activation: relu``) is an op of its own, named
``<layer>.<activation>``: the model's ``ops`` and the one forward loop that runs them. The
references are the layers and activations applied by hand."""

import numpy as np
import pytest

from dlcli.nn.activations import LeakyReLU, ReLU, Softmax
from dlcli.nn.model import Model

LAYERS = [{"type": "dense", "units": 5, "activation": "relu"},
          {"type": "dense", "name": "mid", "units": 4,
           "activation": {"type": "leaky_relu", "negative_slope": 0.2}},
          {"type": "dense", "units": 3},
          {"type": "activation", "activation": "tanh"},
          {"type": "dense", "units": 2, "activation": "softmax"}]


@pytest.fixture
def model():
    return Model.from_config(LAYERS, (6,), np.float64).build(np.random.default_rng(0))


def test_attached_activations_are_ops_named_after_their_layer(model):
    assert [op.name for op in model.ops] == [
        "dense1", "dense1.relu", "mid", "mid.leaky_relu", "dense3", "activation1",
        "dense4", "dense4.softmax"]
    assert [layer.name for layer in model.layers] == [
        "dense1", "mid", "dense3", "activation1", "dense4"]
    assert isinstance(model.activation_of(model.layers[0]), ReLU)
    assert isinstance(model.activation_of(model.layers[1]), LeakyReLU)
    assert model.activation_of(model.layers[1]).negative_slope == 0.2
    assert model.activation_of(model.layers[2]) is None
    assert all(model.layer_of(op).name == op.name.split(".")[0] for op in model.ops)
    assert isinstance(model.output_activation(), Softmax)


def test_configs_and_parameter_names_are_the_layers(model):
    assert [c.get("activation") for c in (layer.get_config() for layer in model.layers)
            if c["type"] == "dense"] == ["relu", {"type": "leaky_relu", "negative_slope": 0.2},
                                          None, "softmax"]
    assert [key for key, _, _ in model.parameters()] == [
        f"{name}.{p}" for name in ("dense1", "mid", "dense3", "dense4") for p in ("weight", "bias")]
    assert [layer.name for layer, _, _ in model.shapes()] == [l.name for l in model.layers]


def test_forward_outputs_and_forward_to_agree_with_the_layers_by_hand(model):
    x = np.random.default_rng(1).standard_normal((7, 6))
    d1, mid, d2, _, d3 = model.layers
    h = np.maximum(d1.forward(x), 0)
    g = mid.forward(h)
    g = np.where(g > 0, g, 0.2 * g)
    t = np.tanh(d2.forward(g))
    z = d3.forward(t)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(model.forward(x), p, rtol=1e-12)
    np.testing.assert_allclose(model.forward_to(x, "dense1"), h, rtol=1e-12)
    np.testing.assert_allclose(model.forward_to(x, "mid"), g, rtol=1e-12)
    np.testing.assert_allclose(model.forward_to(x, "activation1"), t, rtol=1e-12)
    outputs = dict((op.name, y) for op, y in model.outputs(x))
    np.testing.assert_allclose(outputs["mid"], mid.forward(h), rtol=1e-12)
    np.testing.assert_allclose(outputs["dense4.softmax"], p, rtol=1e-12)
    model.fused_output = True  # the loss computes the softmax: forward stops at the logits
    np.testing.assert_allclose(model.forward(x, logits=True), z, rtol=1e-12)
    with pytest.raises(KeyError):
        model.forward_to(x, "dense1.relu")  # a layer's name, not an op's

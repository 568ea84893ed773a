"""``dlcli.nn.losses.fuse_output``: the one place a loss is wired to a model's output
activation."""

import numpy as np

from dlcli.nn.activations import softmax
from dlcli.nn.losses import fuse_output
from dlcli.nn.model import Model, load_layer_modules
from dlcli.registry import LOSSES

load_layer_modules()


def model_ending_in(activation):
    model = Model.from_config([{"type": "dense", "units": 3, "activation": activation,
                                "name": "out"}], (4,), np.float64)
    return model.build(np.random.default_rng(0))


def test_softmax_with_cross_entropy_is_fused_and_computed_from_logits():
    model, loss = model_ending_in("softmax"), LOSSES.get("categorical_crossentropy")()
    assert fuse_output(model, loss)
    x = np.random.default_rng(1).standard_normal((5, 4))
    y = np.array([0, 2, 1, 1, 0])
    logits = model.forward(x, logits=True)
    probabilities = model.forward(x)
    np.testing.assert_allclose(softmax(logits), probabilities, rtol=1e-12)
    expected = -np.mean(np.log(probabilities[np.arange(5), y]))  # the unfused formula
    np.testing.assert_allclose(loss.forward(logits, y), expected, rtol=1e-12)


def test_pairs_outside_the_fused_ones_are_left_alone():
    for activation, loss_name in (("softmax", "mse"), ("relu", "categorical_crossentropy"),
                                  ("sigmoid", "categorical_crossentropy")):
        model, loss = model_ending_in(activation), LOSSES.get(loss_name)()
        assert not fuse_output(model, loss)
        assert not model.fused_output and not loss.from_logits

"""dlcli's engine against PyTorch's numbers, without PyTorch: every layer, activation, loss and
optimizer replays the inputs stored in tests/golden/*.npz and must give the forward outputs,
gradients and optimizer trajectories that torch 2.13.0 computed from them (the files and the
command that made them: tests/golden/make_golden.py). Everything runs in float64.
"""

import json
import pathlib

import numpy as np
import pytest

import dlcli.nn.activations  # noqa: F401 - registers the activations
import dlcli.nn.losses  # noqa: F401 - registers the losses
import dlcli.nn.optim  # noqa: F401 - registers the optimizers
from dlcli.nn.model import load_layer_modules
from dlcli.registry import ACTIVATIONS, LAYERS, LOSSES, OPTIMIZERS

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden"
load_layer_modules()


def cases(name):
    data = np.load(GOLDEN / f"{name}.npz")
    grouped = {}
    for key in data.files:
        case, _, field = key.partition("/")
        grouped.setdefault(case, {})[field] = data[key]
    for case, fields in sorted(grouped.items()):
        fields["config"] = json.loads(str(fields["config"]))
        yield pytest.param(fields, id=case)


def test_every_registered_component_has_a_golden_case():
    layer_types = {c.values[0]["config"]["type"] for c in cases("layers")}
    activations = {c.values[0]["config"].get("activation") for c in cases("layers")}
    losses = {c.values[0]["config"]["type"] for c in cases("losses")}
    optimizers = {c.values[0]["config"]["type"] for c in cases("optimizers")}
    # binary_step and the perceptron have no torch counterpart (a step has no gradient):
    # tests/nn/test_learning_rules.py checks them by hand.
    assert set(LAYERS.names()) <= layer_types
    assert set(ACTIVATIONS.names()) - {"binary_step"} <= activations
    assert set(LOSSES.names()) - {"perceptron"} <= losses
    assert set(OPTIMIZERS.names()) <= optimizers


def _build(config, shape):
    options = {k: v for k, v in config.items() if k not in ("type", "input_shape", "pool_layer")}
    rng = np.random.default_rng(0)
    if config["type"] == "maxunpool2d":  # the pooling layer it undoes comes first
        pool = LAYERS.get("maxpool2d")(name=config["pool"], **config["pool_layer"])
        pool.build(shape, rng, np.float64)
        unpool = LAYERS.get("maxunpool2d")(**options)
        unpool.link({pool.name: pool})
        unpool.build(pool.output_shape(shape), rng, np.float64)
        return [pool, unpool]
    layer = LAYERS.get(config["type"])(**options)
    layer.build(shape, rng, np.float64)
    return [layer]


@pytest.mark.parametrize("case", cases("layers"))
def test_layer_forward_and_gradients_match_torch(case):
    config = case["config"]
    layers = _build(config, tuple(config["input_shape"]))
    layer = layers[-1]
    for key in layer.params:
        layer.params[key][...] = case[f"param.{key}"]
    assert set(layer.params) == {k[len("param."):] for k in case if k.startswith("param.")}
    y = case["x"]
    for each in layers:
        y = each.forward(y, training=config["type"] != "dropout")
    np.testing.assert_allclose(y, case["y"], rtol=1e-10, atol=1e-12)
    dx = case["dy"]
    for each in reversed(layers):
        dx = each.backward(dx)
    np.testing.assert_allclose(dx, case["dx"], rtol=1e-10, atol=1e-12)
    for key in layer.params:
        np.testing.assert_allclose(layer.grads[key], case[f"grad.{key}"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", cases("losses"))
def test_loss_and_its_gradient_match_torch(case):
    config = case["config"]
    loss = LOSSES.get(config["type"])()
    loss.from_logits = config.get("from_logits", False)
    target = case["target"]
    if target.ndim == 1:  # class labels
        target = target.astype(np.int64)
    value = loss.forward(case["pred"], target)
    np.testing.assert_allclose(value, case["loss"], rtol=1e-10)
    np.testing.assert_allclose(loss.backward(), case["dpred"], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("case", cases("optimizers"))
def test_optimizer_trajectory_matches_torch(case):
    config = dict(case["config"])
    steps, cut_at, cut = config.pop("steps"), config.pop("cut_at"), config.pop("cut")
    optimizer = OPTIMIZERS.get(config.pop("type"))(**config)
    names = sorted(k[len("start."):] for k in case if k.startswith("start."))
    params = {k: case[f"start.{k}"].copy() for k in names}
    for i in range(steps):
        if i == cut_at:
            optimizer.lr *= cut
        optimizer.step([(k, params[k], case[f"grads.{k}"][i]) for k in names])
        for k in names:
            np.testing.assert_allclose(params[k], case[f"path.{k}"][i], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{k} after step {i + 1}")

"""The delta rules of notes 1.3-1.6, run through dlcli (config -> Model, the loss it fuses,
SGD, the Trainer with batch size 1 and no shuffling) and compared with the update written
out in plain Python, sample by sample, with the augmented W = [w, b] and x = [x, 1].
"""

import numpy as np
import pytest

from dlcli.config import resolve
from dlcli.config.resolve import infer_task, pairing_warnings
from dlcli.nn.model import Model
from dlcli.registry import OPTIMIZERS
from dlcli.train.session import make_loss
from dlcli.train.trainer import Trainer

ETA = 0.5
X = np.array([[1.0, 2.0], [-1.5, 0.5], [2.0, -1.0], [0.5, 0.5], [-2.0, -1.0]])
Y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])


def single_unit_model(loss, initial=None, **dense):
    """Model of one dense unit built through dlcli's config validation."""
    raw = {"data": {"source": "synthetic:linearly_separable"},
           "model": {"input_shape": [2], "loss": loss,
                     "layers": [{"type": "dense", "units": 1, "initializer": "zeros", **dense}]},
           "training": {"batch_size": 1, "optimizer": {"type": "sgd", "lr": ETA}}}
    config = resolve(raw)
    model = Model.from_config(config["model"]["layers"], (2,), np.float64)
    model.build(np.random.default_rng(0))
    if initial is not None:  # W = [w, b]
        layer = model.layers[0]
        layer.params["weight"][...] = [initial[:2]]
        layer.params["bias"][...] = [initial[2]]
    opt = dict(config["training"]["optimizer"])
    optimizer = OPTIMIZERS.get(opt.pop("type"))(**opt)
    return config, model, make_loss(config, model), optimizer


def train_one_epoch(model, loss, optimizer, x, y, task):
    trainer = Trainer(model, loss, optimizer, task=task, batch_size=1, epochs=1,
                      rng=np.random.default_rng(0), shuffle=False)
    trainer.fit(x, y.reshape(-1, 1))
    assert trainer.step == len(x)
    layer = model.layers[0]
    return np.concatenate([layer.params["weight"][0], layer.params["bias"]])


def augmented(x):
    return list(x) + [1.0]


def step(z):
    return 1.0 if z >= 0 else 0.0


def dot(W, x):
    return sum(wi * xi for wi, xi in zip(W, x))


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_perceptron_rule_from_zero_weights():
    config, model, loss, optimizer = single_unit_model("perceptron", activation="binary_step")
    assert model.fused_output  # the loss sees z = xᵀW, not step(z)
    W = [0.0, 0.0, 0.0]  # notes 1.3.2: initialize W = [w, b] = 0
    history = []
    for x, y in zip(X, Y):
        xa = augmented(x)
        y_hat = step(dot(W, xa))  # ŷ = g(xᵀW)
        e = y - y_hat
        W = [w + ETA * e * xi for w, xi in zip(W, xa)]  # W = W + η e x
        history.append(e)
    assert {-1.0, 0.0} <= set(history)  # the data exercise both a mistake and a correct guess
    np.testing.assert_allclose(train_one_epoch(model, loss, optimizer, X, Y, "binary"), W,
                               rtol=1e-12, atol=1e-15)


def test_perceptron_single_step_by_hand():
    # W = [0, 0, 0], x = [1, 2], y = 0: ŷ = step(0) = 1, e = -1, W = -η[1, 2, 1]
    _, model, loss, optimizer = single_unit_model("perceptron", activation="binary_step")
    W = train_one_epoch(model, loss, optimizer, X[:1], np.array([0.0]), "binary")
    np.testing.assert_allclose(W, [-0.5, -1.0, -0.5])


def test_adaline_widrow_hoff_rule():
    initial = [0.3, -0.2, 0.1]
    _, model, loss, optimizer = single_unit_model("widrow_hoff", initial=initial)
    assert not model.fused_output
    W = list(initial)
    for x, y in zip(X, Y):
        xa = augmented(x)
        z = dot(W, xa)  # the linear output before any threshold
        W = [w + ETA * (y - z) * xi for w, xi in zip(W, xa)]  # W = W + η(y - z)x
    got = train_one_epoch(model, loss, optimizer, X, Y, "regression")
    np.testing.assert_allclose(got, W, rtol=1e-12)


def test_adaline_single_step_by_hand():
    # W = [0.3, -0.2, 0.1], x = [1, 2], y = 1: z = 0.3 - 0.4 + 0.1 = 0, W += 0.5·1·[1, 2, 1]
    _, model, loss, optimizer = single_unit_model("widrow_hoff", initial=[0.3, -0.2, 0.1])
    W = train_one_epoch(model, loss, optimizer, X[:1], np.array([1.0]), "regression")
    np.testing.assert_allclose(W, [0.8, 0.8, 0.6], atol=1e-15)


def test_unit_norm_widrow_hoff_rule():
    initial = [0.3, -0.2, 0.1]
    _, model, loss, optimizer = single_unit_model("widrow_hoff", initial=initial,
                                                  update="unit_norm")
    W = list(initial)
    for x, y in zip(X, Y):
        xa = augmented(x)
        z = dot(W, xa)
        norm = np.sqrt(sum(xi * xi for xi in xa))  # ‖x̃‖ includes the bias input 1
        W = [w + ETA * (y - z) * xi / norm for w, xi in zip(W, xa)]
    got = train_one_epoch(model, loss, optimizer, X, Y, "regression")
    np.testing.assert_allclose(got, W, rtol=1e-12)


def test_logistic_regression_step_is_sigma_minus_y_times_x():
    initial = [0.3, -0.2, 0.1]
    _, model, loss, optimizer = single_unit_model("binary_crossentropy", initial=initial,
                                                  activation="sigmoid")
    assert model.fused_output and loss.from_logits
    W = list(initial)
    for x, y in zip(X, Y):
        xa = augmented(x)
        W = [w - ETA * (sigmoid(dot(W, xa)) - y) * xi for w, xi in zip(W, xa)]  # notes 1.5.3
    got = train_one_epoch(model, loss, optimizer, X, Y, "binary")
    np.testing.assert_allclose(got, W, rtol=1e-12)


def test_softmax_regression_step_is_s_minus_y_outer_x():
    raw = {"data": {"source": "synthetic:blobs"},
           "model": {"input_shape": [2], "loss": "categorical_crossentropy",
                     "layers": [{"type": "dense", "units": 3, "activation": "softmax"}]}}
    config = resolve(raw)
    model = Model.from_config(config["model"]["layers"], (2,), np.float64)
    model.build(np.random.default_rng(5))
    loss = make_loss(config, model)
    layer = model.layers[0]
    W = np.concatenate([layer.params["weight"], layer.params["bias"][:, None]], axis=1)
    labels = np.array([2, 0, 1])
    for x, c in zip(X[:3], labels):
        xa = np.array(augmented(x))
        z = W @ xa
        s = np.exp(z) / np.exp(z).sum()
        W = W - ETA * np.outer(s - np.eye(3)[c], xa)
    trainer = Trainer(model, loss, OPTIMIZERS.get("sgd")(lr=ETA), task="classification",
                      batch_size=1, epochs=1, rng=np.random.default_rng(0), shuffle=False)
    trainer.fit(X[:3], labels)
    np.testing.assert_allclose(layer.params["weight"], W[:, :2], rtol=1e-12)
    np.testing.assert_allclose(layer.params["bias"], W[:, 2], rtol=1e-12)


def test_perceptron_converges_on_linearly_separable_data():
    from dlcli.data.synthetic import linearly_separable
    x, y = linearly_separable(np.random.default_rng(0), n_samples=60, margin=0.5)
    _, model, loss, optimizer = single_unit_model("perceptron", activation="binary_step")
    trainer = Trainer(model, loss, optimizer, task="binary", batch_size=1, epochs=50,
                      rng=np.random.default_rng(1))
    history = trainer.fit(x, y.reshape(-1, 1).astype(float))
    assert history[-1]["loss"] == 0.0  # no mistakes in the last epoch
    assert np.all(model.forward(x) == y.reshape(-1, 1))


@pytest.mark.parametrize("loss_name, activation", [("perceptron", "binary_step"),
                                                  ("widrow_hoff", "identity")])
def test_learning_rule_pairs_are_the_notes_usual_ones(loss_name, activation):
    # Figure 1.10 of the notes: these pairs must not draw a "usually pairs" warning.
    config, model, *_ = single_unit_model(loss_name, activation=activation)
    task = infer_task(config, 1)
    assert task == ("binary" if loss_name == "perceptron" else "regression")
    assert pairing_warnings(task, activation, loss_name) == []
    assert pairing_warnings(task, "softmax", loss_name) != []

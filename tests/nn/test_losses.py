"""Losses: values by hand, fused (from logits) against unfused, float32 extremes, and
gradients against central differences in float64."""

import math

import numpy as np
import pytest

import dlcli.nn.losses  # noqa: F401  (registers the losses)
from dlcli.nn.activations import make_activation
from dlcli.registry import LOSSES
from tests.helpers.numeric import assert_close, central_gradient


def make(name, from_logits=False):
    loss = LOSSES.get(name)()
    loss.from_logits = from_logits
    return loss


def logistic(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax_rows(z):
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---- values by hand ------------------------------------------------------------------

def test_mse_by_hand():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    target = np.array([[0.0, 2.0], [5.0, 1.0]])
    loss = make("mse")
    # differences 1, 0, -2, 3 -> squares 1, 0, 4, 9 -> mean 14/4
    assert loss.forward(pred, target) == pytest.approx(3.5)
    # dL/dŷ = 2(ŷ - y)/(N·K) = 2·diff/4
    assert_close(loss.backward(), [[0.5, 0.0], [-1.0, 1.5]])


def test_widrow_hoff_by_hand():
    pred = np.array([[1.0], [3.0]])
    target = np.array([[0.0], [5.0]])
    loss = make("widrow_hoff")
    # ½ Σ (y - z)² / N = ½ (1 + 4) / 2
    assert loss.forward(pred, target) == pytest.approx(1.25)
    assert_close(loss.backward(), [[0.5], [-1.0]])  # (z - y)/N


def test_binary_crossentropy_by_hand():
    p = np.array([[0.8], [0.3]])
    y = np.array([[1.0], [0.0]])
    # -(1·log 0.8 + 1·log 0.7)/2 = (0.2231435513 + 0.3566749439)/2
    expected = -(math.log(0.8) + math.log(0.7)) / 2
    assert expected == pytest.approx(0.2899092476, abs=1e-10)
    loss = make("binary_crossentropy")
    assert loss.forward(p, y) == pytest.approx(expected, rel=1e-12)
    # dL/dp = (p - y)/(p(1 - p))/N
    assert_close(loss.backward(), [[(0.8 - 1) / (0.8 * 0.2) / 2], [0.3 / (0.3 * 0.7) / 2]])


@pytest.mark.parametrize("labels_as", ["indices", "one_hot"])
def test_categorical_crossentropy_by_hand(labels_as):
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([1, 2])
    target = labels if labels_as == "indices" else np.eye(3)[labels]
    # -(log 0.2 + log 0.8)/2 = (1.6094379124 + 0.2231435513)/2
    expected = 0.9162907319
    loss = make("categorical_crossentropy")
    assert loss.forward(p, target) == pytest.approx(expected, abs=1e-10)
    assert_close(loss.backward(), [[0, -1 / 0.2 / 2, 0], [0, 0, -1 / 0.8 / 2]])


def test_perceptron_loss_counts_mistakes_and_hands_back_step_minus_y():
    z = np.array([[0.5], [-0.2], [0.0], [-3.0]])
    y = np.array([[0.0], [0.0], [0.0], [1.0]])
    loss = make("perceptron")
    # ŷ = step(z) = [1, 0, 1, 0]: three mistakes of four
    assert loss.forward(z, y) == pytest.approx(0.75)
    assert_close(loss.backward(), [[0.25], [0.0], [0.25], [-0.25]])
    np.testing.assert_array_equal(loss.output(z), [[1], [0], [1], [0]])


# ---- fused from logits == unfused ----------------------------------------------------

def test_fused_binary_crossentropy_equals_sigmoid_then_loss():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, size=(6, 3))
    y = (rng.random((6, 3)) > 0.5).astype(float)
    fused = make("binary_crossentropy", from_logits=True)
    plain = make("binary_crossentropy")
    p = logistic(z)
    assert fused.forward(z, y) == pytest.approx(plain.forward(p, y), rel=1e-10)
    # chain rule through the sigmoid: dL/dz = dL/dp · p(1 - p)
    assert_close(fused.backward(), plain.backward() * p * (1 - p), rtol=1e-8)
    # and the notes' closed form (σ(z) - y)/(N·K) (1.5.3)
    assert_close(fused.backward(), (p - y) / y.size, rtol=1e-10)
    assert_close(fused.output(z), p, rtol=1e-12)


@pytest.mark.parametrize("labels_as", ["indices", "one_hot"])
def test_fused_categorical_crossentropy_equals_softmax_then_loss(labels_as):
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, size=(5, 4))
    labels = rng.integers(0, 4, size=5)
    target = labels if labels_as == "indices" else np.eye(4)[labels]
    fused = make("categorical_crossentropy", from_logits=True)
    plain = make("categorical_crossentropy")
    s = softmax_rows(z)
    assert fused.forward(z, target) == pytest.approx(plain.forward(s, target), rel=1e-10)
    g = plain.backward()
    # J^T g per row with J = diag(S) - S Sᵀ (notes 1.6.3)
    chained = np.stack([(np.diag(s[i]) - np.outer(s[i], s[i])).T @ g[i] for i in range(5)])
    assert_close(fused.backward(), chained, rtol=1e-8, atol=1e-12)
    assert_close(fused.backward(), (s - np.eye(4)[labels]) / 5, rtol=1e-10, atol=1e-15)


# ---- float32 extremes ----------------------------------------------------------------

BIG = np.array([[1e4, -1e4], [-1e4, 1e4], [0.0, 1e4]], dtype=np.float32)


def test_sigmoid_and_softmax_are_finite_for_huge_float32_logits():
    for name in ("sigmoid", "softmax"):
        layer = make_activation(name)
        y = layer.forward(BIG)
        dx = layer.backward(np.ones_like(y))
        assert y.dtype == np.float32 and dx.dtype == np.float32
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx)), name
        assert np.all((y >= 0) & (y <= 1))
    np.testing.assert_allclose(make_activation("sigmoid").forward(BIG)[0], [1.0, 0.0])
    np.testing.assert_allclose(make_activation("softmax").forward(BIG)[0], [1.0, 0.0])


def test_binary_crossentropy_from_huge_float32_logits_is_finite_and_right():
    y = np.array([[1, 1], [0, 1], [1, 0]], dtype=np.float32)
    loss = make("binary_crossentropy", from_logits=True)
    value = loss.forward(BIG, y)
    grad = loss.backward()
    assert math.isfinite(value) and np.all(np.isfinite(grad)) and grad.dtype == np.float32
    # per element: z=1e4,y=1 -> 0; z=-1e4,y=1 -> 1e4; z=-1e4,y=0 -> 0; z=1e4,y=1 -> 0;
    # z=0,y=1 -> log 2; z=1e4,y=0 -> 1e4.  Mean over 6.
    assert value == pytest.approx((2e4 + math.log(2)) / 6, rel=1e-6)
    assert_close(grad, [[0, -1 / 6], [0, 0], [-0.5 / 6, 1 / 6]], rtol=1e-6, atol=1e-7)


def test_categorical_crossentropy_from_huge_float32_logits_is_finite_and_right():
    labels = np.array([0, 0, 1])
    loss = make("categorical_crossentropy", from_logits=True)
    value = loss.forward(BIG, labels)
    grad = loss.backward()
    assert math.isfinite(value) and np.all(np.isfinite(grad)) and grad.dtype == np.float32
    # row losses: 0, 2e4, 0 -> mean 2e4/3
    assert value == pytest.approx(2e4 / 3, rel=1e-6)
    assert_close(grad, [[0, 0], [-1 / 3, 1 / 3], [0, 0]], atol=1e-7)


def test_unfused_losses_clip_probabilities_of_exactly_0_and_1():
    p = np.array([[0.0, 1.0]], dtype=np.float32)
    y = np.array([[1.0, 0.0]], dtype=np.float32)
    for name in ("binary_crossentropy", "categorical_crossentropy"):
        loss = make(name)
        assert math.isfinite(loss.forward(p, y)) and np.all(np.isfinite(loss.backward()))


# ---- gradients against central differences (float64) --------------------------------

def _cases():
    rng = np.random.default_rng(7)
    z = rng.normal(0, 1.5, size=(4, 3))
    probs = rng.uniform(0.1, 0.9, size=(4, 3))
    bits = (rng.random((4, 3)) > 0.5).astype(float)
    labels = np.array([0, 2, 1, 2])
    softmaxed = softmax_rows(z)
    return [
        ("mse", False, z, rng.normal(size=(4, 3))),
        ("widrow_hoff", False, z, rng.normal(size=(4, 3))),
        ("binary_crossentropy", False, probs, bits),
        ("binary_crossentropy", True, z, bits),
        ("categorical_crossentropy", False, softmaxed, np.eye(3)[labels]),
        ("categorical_crossentropy", False, softmaxed, labels),
        ("categorical_crossentropy", True, z, labels),
        ("categorical_crossentropy", True, z, np.eye(3)[labels]),
    ]


@pytest.mark.parametrize("name, from_logits, pred, target", _cases(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_loss_gradient_matches_central_differences(name, from_logits, pred, target):
    pred = pred.copy()
    loss = make(name, from_logits)
    loss.forward(pred, target)
    analytic = loss.backward().copy()
    numeric = central_gradient(lambda: loss.forward(pred, target), pred)
    assert_close(analytic, numeric, rtol=1e-6, atol=1e-9)


# ---- whole models: ``dlcli gradcheck`` per loss ---------------------------------------

def _model_config(loss, source, layers):
    return {"seed": 2, "data": {"source": source, "params": {"n_samples": 40}},
            "model": {"layers": layers, "loss": loss}}


GRADCHECK_CONFIGS = {
    "mse": _model_config("mse", "synthetic:regression", [
        {"type": "dense", "units": 4, "activation": "tanh"}, {"type": "dense", "units": 1}]),
    "widrow_hoff": _model_config("widrow_hoff", "synthetic:regression", [
        {"type": "dense", "units": 3, "activation": "sigmoid"}, {"type": "dense", "units": 1}]),
    "binary_crossentropy": _model_config("binary_crossentropy", "synthetic:moons", [
        {"type": "dense", "units": 4, "activation": "tanh"},
        {"type": "dense", "units": 1, "activation": "sigmoid"}]),
    "categorical_crossentropy": _model_config("categorical_crossentropy", "synthetic:blobs", [
        {"type": "dense", "units": 4, "activation": "leaky_relu"},
        {"type": "dense", "units": 3, "activation": "softmax"}]),
    # perceptron: not checked. Its "gradient" (step(z) - y)/N is the perceptron rule, not
    # the derivative of the reported loss (a step function, flat almost everywhere), so
    # finite differences cannot agree with it; tests/nn/test_learning_rules.py checks it.
}


def test_every_differentiable_loss_has_a_gradcheck_config():
    assert set(GRADCHECK_CONFIGS) == set(LOSSES.names()) - {"perceptron"}


@pytest.mark.parametrize("loss_name", sorted(GRADCHECK_CONFIGS))
def test_model_gradcheck_passes_for_each_loss(loss_name):
    from dlcli.inspect.gradcheck import run_gradcheck
    from dlcli.config import resolve

    result = run_gradcheck(resolve(GRADCHECK_CONFIGS[loss_name]), samples=4, entries=20)
    assert result["loss"] == loss_name
    assert [row["param"] for row in result["params"]] == [
        "dense1.weight", "dense1.bias", "dense2.weight", "dense2.bias"]
    assert result["passed"], result["params"]
    assert all(row["relative_error"] < 1e-6 for row in result["params"])


def test_model_gradcheck_catches_a_wrong_backward(monkeypatch):
    from dlcli.inspect.gradcheck import run_gradcheck
    from dlcli.config import resolve
    from dlcli.nn.layers.dense import Dense

    original = Dense.backward

    def off_by_one_percent(self, dy):
        return original(self, dy * 1.01)

    monkeypatch.setattr(Dense, "backward", off_by_one_percent)
    result = run_gradcheck(resolve(GRADCHECK_CONFIGS["mse"]))
    assert not result["passed"]


def test_fused_categorical_crossentropy_of_fortran_ordered_logits():
    # the label entries are found by flat position: any memory order must give the same
    rng = np.random.default_rng(4)
    z, labels = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    loss = LOSSES.get("categorical_crossentropy")()
    loss.from_logits = True
    value, grad = loss.forward(z, labels), loss.backward().copy()
    assert loss.forward(np.asfortranarray(z), labels) == value
    np.testing.assert_array_equal(loss.backward(), grad)
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        loss.forward(z, labels + 5)


def test_unfused_categorical_crossentropy_takes_any_shape():
    # -sum t log p / N over every output, e.g. a (N, C, H, W) map against a target map
    p = np.random.default_rng(5).uniform(0.1, 0.9, (2, 3, 4, 4))
    t = np.random.default_rng(6).uniform(0, 1, (2, 3, 4, 4))
    loss = LOSSES.get("categorical_crossentropy")()
    assert math.isclose(loss.forward(p, t), -np.sum(t * np.log(p)) / 2, rel_tol=1e-12)

"""One training step (``Trainer.train_step``): each step's gradients written afresh and the non-finite
gradient check, on the packed buffers and without them."""

import numpy as np
import pytest

import dlcli.nn.losses  # noqa: F401  (registers the losses)
import dlcli.nn.optim  # noqa: F401  (registers the optimizers)
from dlcli.errors import TrainingError
from dlcli.nn.model import Model
from dlcli.registry import LOSSES, OPTIMIZERS
from dlcli.train.trainer import Trainer

LAYERS = [{"type": "dense", "units": 4, "activation": "tanh"}, {"type": "dense", "units": 2}]


class ScaledMSE(LOSSES.get("mse")):
    """MSE whose backward returns ``factor`` times the true gradient (NaN, inf or huge)."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def backward(self):
        return super().backward() * self.factor


def setup(factor=1.0, packed=True, seed=0):
    model = Model.from_config(LAYERS, (3,), np.float32).build(np.random.default_rng(seed))
    if not packed:
        model._flat = None
    trainer = Trainer(model, ScaledMSE(factor), OPTIMIZERS.get("sgd")(lr=1e-30),
                      task="regression", batch_size=4, epochs=1, rng=np.random.default_rng(0))
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = rng.standard_normal((4, 2)).astype(np.float32)
    return model, trainer, x, y


def step(model, trainer, x, y):
    params = model.parameters()
    grads = [g for _, _, g in params]
    return trainer.train_step(x, y, params, grads, model.flat_buffers(), 3, 7)


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("factor", [np.nan, np.inf, -np.inf])
def test_a_non_finite_gradient_stops_training_and_names_the_parameter(factor, packed):
    model, trainer, x, y = setup(factor, packed)
    assert (model.flat_buffers() is not None) == packed
    with np.errstate(all="ignore"), pytest.raises(TrainingError) as info:
        step(model, trainer, x, y)
    # every gradient is non-finite here; the first in parameter order is named
    assert "the gradient of dense1.weight became non-finite at epoch 3, step 7" \
        in str(info.value)
    assert info.value.status == "diverged"


@pytest.mark.parametrize("packed", [True, False])
def test_a_huge_but_finite_gradient_is_not_reported(packed):
    # ‖g‖² overflows float32 (the fast test's false alarm); every element is finite
    model, trainer, x, y = setup(1e30, packed)
    step(model, trainer, x, y)
    grads = [g for _, _, g in model.parameters()]
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert max(float(np.max(np.abs(g))) for g in grads) > 1e19


@pytest.mark.parametrize("packed", [True, False])
def test_each_steps_gradients_are_that_steps_gradients(packed):
    # after a step, each gradient equals the one a fresh model computes from zeroed buffers
    # (nothing zeroes them between steps: backward must not leave the previous step's in)
    model, trainer, x, y = setup(1.0, packed)
    step(model, trainer, x, y)
    step(model, trainer, x * 2, y)
    fresh, _, _, _ = setup(1.0, packed)
    fresh.load_state_dict(model.state_dict())
    fresh.zero_grad()
    loss = ScaledMSE(1.0)
    loss.forward(fresh.forward(x * 2, training=True, logits=True), y)
    fresh.backward(loss.backward())
    for (key, _, g), (_, _, expected) in zip(model.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(g, expected, err_msg=key)


@pytest.mark.parametrize("packed", [True, False])
def test_zero_grad_clears_every_gradient(packed):
    model, _, _, _ = setup(packed=packed)
    for _, _, g in model.parameters():
        g[...] = 7.0
    model.zero_grad()
    assert all(not np.any(g) for _, _, g in model.parameters())


def test_gather_copies_the_indexed_rows_into_the_reused_buffers():
    from dlcli.train.trainer import gather
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3, 4)).astype(np.float32)
    y = rng.integers(0, 5, 50)
    x_buf, y_buf = np.empty((8, 3, 4), np.float32), np.empty(8, np.int64)
    index = rng.permutation(50)[:5]  # a short last batch uses the first rows
    xb, yb = gather(x, y, index, x_buf, y_buf)
    assert np.shares_memory(xb, x_buf) and np.shares_memory(yb, y_buf)
    for row, i in enumerate(index):
        np.testing.assert_array_equal(xb[row], x[i])
        assert yb[row] == y[i]


@pytest.mark.parametrize("order", [np.array([0, 1, 1, 3]), np.array([0, 1, 2, 7]),
                                   np.array([0.0, 1.0, 2.0, 3.0]), np.array([[0, 1], [2, 3]])])
def test_a_saved_batch_order_that_is_not_a_permutation_is_refused(order):
    # batches are gathered without bounds checks, so a checkpoint's order is checked once
    model, trainer, _, _ = setup()
    state = trainer.state_dict()
    state.update({"order": order, "batch": np.int64(1), "seen": np.int64(4),
                  "loss_sum": np.float64(0.0), "batch_size": np.int64(4)})
    with pytest.raises(ValueError, match="not a permutation"):
        trainer.load_state_dict(state)
    state["order"] = np.array([2, 0, 3, 1])
    trainer.load_state_dict(state)
    assert trainer.resumes_mid_epoch


def test_fit_refuses_inputs_and_targets_of_different_lengths():
    # batches are gathered without bounds checks: a short y must not be clipped silently
    model, trainer, x, y = setup()
    with pytest.raises(ValueError, match="x has 4 samples but y has 3"):
        trainer.fit(x, y[:3])

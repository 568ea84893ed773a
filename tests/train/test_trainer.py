"""The trainer loop (notes 1.8) and what a run writes: steps per epoch, reordering, the
weighted epoch loss, seeds, early stopping, checkpoints, metrics.jsonl and dtypes."""

import json

import numpy as np
import pytest

import dlcli.nn.losses  # noqa: F401  (registers the losses)
import dlcli.nn.optim  # noqa: F401  (registers the optimizers)
from dlcli.config import resolve
from dlcli.nn.layers.base import Layer
from dlcli.nn.model import Model
from dlcli.registry import LOSSES, OPTIMIZERS
from dlcli.train.session import make_loss, train
from dlcli.train.trainer import Callback, Trainer
from tests.helpers.configs import moons_mlp



class Recorder(Layer):
    """Identity layer that records the batches it sees in training."""

    type_name = "recorder"

    def __init__(self):
        super().__init__("recorder")
        self.batches = []

    def forward(self, x, training=False):
        if training:
            self.batches.append(x[:, 0].copy())
        return x

    def backward(self, dy):
        return dy


class CountSteps(Callback):
    def __init__(self):
        self.per_epoch = []

    def on_epoch_begin(self, trainer, epoch):
        self.per_epoch.append(0)

    def on_batch_end(self, trainer, batch, logs):
        self.per_epoch[-1] += 1


def linear_setup(n=10, features=2, seed=0, lr=0.1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(dtype)
    y = (x @ np.array([1.5, -2.0][:features]) + 0.5 + rng.normal(0, 0.1, n)).reshape(-1, 1)
    recorder = Recorder()
    model = Model.from_config([{"type": "dense", "units": 1, "initializer": "normal"}],
                              (features,), dtype)
    model.layers.insert(0, recorder)
    model.build(np.random.default_rng(seed))
    return model, recorder, x, y.astype(dtype), OPTIMIZERS.get("sgd")(lr=lr)


def fit(model, x, y, optimizer, *, batch_size, epochs=1, seed=0, shuffle=True, loss="mse"):
    counter = CountSteps()
    trainer = Trainer(model, LOSSES.get(loss)(), optimizer, task="regression",
                      batch_size=batch_size, epochs=epochs, rng=np.random.default_rng(seed),
                      shuffle=shuffle, callbacks=[counter])
    history = trainer.fit(x, y)
    return trainer, counter, history


@pytest.mark.parametrize("batch_size, steps, sizes", [
    ("full", 1, [10]),         # BGD: one step on all the data
    (10, 1, [10]),
    (1, 10, [1] * 10),         # SGD: one step per sample
    (4, 3, [4, 4, 2]),         # MBGD: the last batch holds the rest
    (64, 1, [10]),
])
def test_steps_per_epoch(batch_size, steps, sizes):
    model, recorder, x, y, opt = linear_setup()
    trainer, counter, _ = fit(model, x, y, opt, batch_size=batch_size, epochs=2)
    assert counter.per_epoch == [steps, steps]
    assert trainer.step == 2 * steps
    assert [len(b) for b in recorder.batches] == sizes * 2


def test_bgd_step_is_the_full_batch_gradient_step():
    model, _, x, y, opt = linear_setup(lr=0.1)
    dense = model.layers[1]
    W, b = dense.params["weight"][0].copy(), dense.params["bias"][0]
    fit(model, x, y, opt, batch_size="full")
    # MSE J = (1/N) Σ (ŷ - y)²: dJ/dw = (2/N) Σ (ŷ - y) x, dJ/db = (2/N) Σ (ŷ - y)
    residual = x @ W + b - y[:, 0]
    W_new = W - 0.1 * 2 / len(x) * (residual @ x)
    b_new = b - 0.1 * 2 / len(x) * residual.sum()
    np.testing.assert_allclose(dense.params["weight"][0], W_new, rtol=1e-12)
    np.testing.assert_allclose(dense.params["bias"][0], b_new, rtol=1e-12)


def test_data_is_reordered_each_epoch_from_the_seed():
    model, recorder, _, _, opt = linear_setup()
    x = np.arange(8, dtype=np.float64).reshape(8, 1) * np.ones((1, 2))
    y = np.zeros((8, 1))
    fit(model, x, y, opt, batch_size=1, epochs=3, seed=5)
    orders = np.array(recorder.batches).reshape(3, 8)
    reference = np.random.default_rng(5)
    for epoch in range(3):
        assert sorted(orders[epoch]) == list(range(8))  # every sample once per epoch
        np.testing.assert_array_equal(orders[epoch], reference.permutation(8))
    assert not np.array_equal(orders[0], orders[1])


def test_no_shuffle_keeps_the_file_order():
    model, recorder, _, _, opt = linear_setup()
    x = np.arange(6, dtype=np.float64).reshape(6, 1) * np.ones((1, 2))
    fit(model, x, np.zeros((6, 1)), opt, batch_size=4, epochs=2, shuffle=False)
    np.testing.assert_array_equal(np.concatenate(recorder.batches), list(range(6)) * 2)


def test_epoch_loss_is_weighted_by_batch_size():
    # With lr = 0 nothing moves, so the epoch loss must be the mean loss over all samples;
    # an unweighted mean of the batch losses (batches of 4, 4, 2) would differ.
    model, _, x, y, _ = linear_setup(n=10)
    y[-2:] += 50.0  # the short last batch has a much larger loss
    out = model.forward(x)
    full = float(np.mean((out - y) ** 2))
    _, _, history = fit(model, x, y, OPTIMIZERS.get("sgd")(lr=0.0), batch_size=4,
                        shuffle=False)
    batch_means = [np.mean((out[s] - y[s]) ** 2) for s in (slice(0, 4), slice(4, 8), slice(8, 10))]
    assert abs(np.mean(batch_means) - full) > 1.0
    assert history[0]["loss"] == pytest.approx(full, rel=1e-12)


# ---- whole runs through dlcli.train.session -----------------------------------------

def run(tmp_path, name, **changes):
    raw = moons_mlp(**changes.pop("training", {}))
    for key, value in changes.items():
        raw[key] = value
    run_dir = tmp_path / name
    summary = train(resolve(raw), run_dir=run_dir)
    return run_dir, summary


def weights(run_dir, which="last"):
    with np.load(run_dir / "checkpoints" / f"{which}.npz", allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if "/" not in k}


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a, _ = run(tmp_path, "a", seed=3)
    b, _ = run(tmp_path, "b", seed=3)
    c, _ = run(tmp_path, "c", seed=4)
    wa, wb, wc = weights(a), weights(b), weights(c)
    assert wa.keys() == wb.keys() == wc.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key])
    assert any(not np.array_equal(wa[k], wc[k]) for k in wa)


def test_run_directory_checkpoints_and_metrics(tmp_path):
    run_dir, summary = run(tmp_path, "r", training={"epochs": 4})
    for which in ("best", "last"):
        path = run_dir / "checkpoints" / f"{which}.npz"
        with np.load(path, allow_pickle=False) as archive:
            assert archive["dense1.weight"].shape == (8, 2)  # (out, in)
            assert archive["dense1.bias"].shape == (8,)
            assert archive["dense2.weight"].shape == (2, 8)
            assert archive["dense1.weight"].dtype == np.float32
            assert int(archive["trainer/epoch"]) >= 1
    with np.load(run_dir / "checkpoints" / "last.npz", allow_pickle=False) as archive:
        assert int(archive["trainer/epoch"]) == 4
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 4 and all(isinstance(r, dict) for r in rows)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    for row in rows:
        assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(row)
        assert isinstance(row["loss"], float) and row["loss"] > 0
    assert summary["epochs_done"] == 4 and summary["status"] == "finished"
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["steps"] == summary["steps"]
    # 120 samples: 24 test, round(0.1 · 96) = 10 validation, 86 train -> 6 batches of 16
    assert summary["steps"] == 4 * 6


@pytest.mark.parametrize("patience, stops_at", [(0, 2), (1, 2), (3, 4)])
def test_early_stopping_stops(tmp_path, patience, stops_at):
    # lr = 0: the loss of epoch 1 is never beaten (min_delta absorbs float32 rounding), so
    # epochs 2, 3, ... do not improve. The run stops after "patience" epochs without
    # improvement (as Keras counts); patience 0 stops at the first one.
    _, summary = run(tmp_path, "es", data={"source": "synthetic:moons", "validation_split": 0.0,
                                           "params": {"n_samples": 60}},
                     training={"epochs": 20, "optimizer": {"type": "sgd", "lr": 0.0},
                               "early_stopping": {"patience": patience, "min_delta": 1e-4}})
    expected = stops_at
    assert summary["monitor"] == "loss"
    assert summary["stopped_early"] is True
    assert summary["epochs_done"] == expected
    assert summary["best_epoch"] == 1


def test_early_stopping_waits_while_the_loss_improves(tmp_path):
    _, summary = run(tmp_path, "es", training={"epochs": 6, "early_stopping": {"patience": 1},
                                               "optimizer": {"type": "sgd", "lr": 0.1}},
                     data={"source": "synthetic:moons", "validation_split": 0.0})
    assert summary["epochs_done"] == 6 and summary["stopped_early"] is False


# ---- dtypes -------------------------------------------------------------------------

def _record_dtypes(model):
    seen = []
    for op in model.ops:
        forward, backward = op.forward, op.backward

        def fwd(x, training=False, _f=forward, _op=op, **kwargs):
            y = _f(x, training, **kwargs)
            seen.append((f"{_op.type_name} forward", y.dtype))
            return y

        def bwd(dy, _b=backward, _op=op):
            dx = _b(dy)
            if dx is not None:
                seen.append((f"{_op.type_name} backward", dx.dtype))
            return dx

        op.forward, op.backward = fwd, bwd
    return seen


CNN = {"data": {"source": "synthetic:images"}, "model": {
    "input_shape": [6, 6, 1], "loss": "categorical_crossentropy", "layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": 1, "activation": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 4, "activation": "tanh"},
        {"type": "dropout", "rate": 0.2},
        {"type": "dense", "units": 3, "activation": "softmax"}]}}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_training_step_stays_in_the_model_dtype(dtype):
    config = resolve(CNN)
    model = Model.from_config(config["model"]["layers"], (1, 6, 6), dtype)
    model.build(np.random.default_rng(0))
    model.set_rng(np.random.default_rng(1))
    loss = make_loss(config, model)
    seen = _record_dtypes(model)
    x = np.random.default_rng(2).normal(size=(5, 1, 6, 6)).astype(dtype)
    y = np.array([0, 1, 2, 1, 0])
    optimizer = OPTIMIZERS.get("adam")(lr=0.01)
    trainer = Trainer(model, loss, optimizer, task="classification", batch_size=5, epochs=2,
                      rng=np.random.default_rng(3), n_classes=3)
    trainer.fit(x, y)
    assert len(seen) > 10
    assert all(d == dtype for _, d in seen), [s for s in seen if s[1] != dtype]
    for key, param, grad in model.parameters():
        assert param.dtype == dtype and grad.dtype == dtype, key
    for key, state in optimizer.state.items():
        for name, value in state.items():
            if name != "step":
                assert value.dtype == dtype, (key, name)
    assert loss.backward().dtype == dtype


def test_float32_by_default_and_float64_on_request(tmp_path):
    run32, _ = run(tmp_path, "f32", training={"epochs": 1})
    run64, _ = run(tmp_path, "f64", training={"epochs": 1}, dtype="float64")
    assert all(w.dtype == np.float32 for w in weights(run32).values())
    assert all(w.dtype == np.float64 for w in weights(run64).values())


def test_validation_runs_in_batches_of_the_training_batch_size():
    # as Keras' validation_batch_size defaults to batch_size: a convolutional model's
    # validation then needs no larger buffers than its training steps
    config = resolve(CNN)
    model = Model.from_config(config["model"]["layers"], (1, 6, 6), np.float32)
    model.build(np.random.default_rng(0))
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 1, 6, 6)).astype(np.float32), rng.integers(0, 3, 30)
    sizes = []
    conv = model.layers[0]
    forward = conv.forward

    def spy(batch, training=False, **kwargs):
        if not training:
            sizes.append(len(batch))
        return forward(batch, training, **kwargs)

    conv.forward = spy
    trainer = Trainer(model, make_loss(config, model), OPTIMIZERS.get("adam")(lr=0.01),
                      task="classification", batch_size=4, epochs=1,
                      rng=np.random.default_rng(3), n_classes=3)
    history = trainer.fit(x[:8], y[:8], x[8:], y[8:])  # 22 to score: 5 batches of 4, then 2
    assert sizes == [4, 4, 4, 4, 4, 2] and "val_loss" in history[-1]

"""Training diagnostics against hand computations on a tiny network whose dead and alive
ReLU units are set by hand, and end to end on the shipped mlp_digits config."""

import json
import math
import pathlib

import numpy as np
import pytest
from click.testing import CliRunner

import dlcli.nn.losses  # noqa: F401 - registers the losses
import dlcli.nn.optim  # noqa: F401 - registers the optimizers
from dlcli.nn.model import Model
from dlcli.registry import LOSSES, OPTIMIZERS
from dlcli.train.diagnostics import (Diagnostics, dead_fraction, layer_warnings,
                                     saturated_fraction)
from dlcli.train.io import truncate_jsonl
from dlcli.train.trainer import Trainer

REPO = pathlib.Path(__file__).resolve().parents[2]
LR = 0.05


def test_dead_fraction_by_hand():
    mask = np.array([[True, False, False, False],
                     [False, False, True, False],
                     [True, False, False, False]])
    # units 0 and 2 fire for some sample; units 1 and 3 for none
    assert dead_fraction(mask) == 0.5
    conv = np.zeros((2, 3, 4, 4), dtype=bool)  # (N, C, H, W): a unit is a channel
    conv[1, 2, 3, 0] = True
    assert dead_fraction(conv) == pytest.approx(2 / 3)


def test_saturated_fraction_by_hand():
    y = np.array([[0.005, 0.5, 0.995, 0.99], [0.01, 0.2, 0.999, 0.0]])
    # outside [0.01, 0.99]: 0.005, 0.995, 0.999, 0.0
    assert saturated_fraction(y, "sigmoid") == 4 / 8
    t = np.array([[-0.999, 0.5], [0.991, 0.99]])
    assert saturated_fraction(t, "tanh") == 2 / 4


def tiny_model():
    """3 -> dense(4, relu) -> dense(1), float64; units 0 and 1 of dense1 are dead for any
    input here (bias −100), unit 2 is relu(x₀), unit 3 always alive (bias +100)."""
    model = Model.from_config([{"type": "dense", "units": 4, "activation": "relu"},
                               {"type": "dense", "units": 1}], (3,), np.float64)
    model.build(np.random.default_rng(0))
    first, second = model.layers
    first.params["weight"][...] = [[0.1, 0.2, 0.3], [-0.2, 0.1, 0.0], [1.0, 0.0, 0.0],
                                   [0.01, -0.02, 0.03]]
    first.params["bias"][...] = [-100.0, -100.0, 0.0, 100.0]
    second.params["weight"][...] = [[0.3, -0.4, 0.5, 0.01]]
    second.params["bias"][...] = [0.2]
    return model


def data():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(8, 3))
    x[:4, 0] = np.abs(x[:4, 0]) + 0.1  # first batch: unit 2 fires
    x[4:, 0] = -np.abs(x[4:, 0]) - 0.5  # second batch: unit 2 silent
    y = rng.normal(size=(8, 1))
    return x, y


def hand_steps(model, x, y, batch):
    """SGD on MSE written out: per step the layers' gradient norms, then the weights."""
    W1, b1 = (model.layers[0].params[k].copy() for k in ("weight", "bias"))
    W2, b2 = (model.layers[1].params[k].copy() for k in ("weight", "bias"))
    steps = []
    for start in range(0, len(x), batch):
        xb, yb = x[start:start + batch], y[start:start + batch]
        z = xb @ W1.T + b1
        h = np.maximum(z, 0)
        out = h @ W2.T + b2
        dout = 2 * (out - yb) / out.size
        dW2, db2 = dout.T @ h, dout.sum(0)
        dz = (dout @ W2) * (z > 0)
        dW1, db1 = dz.T @ xb, dz.sum(0)
        before = [W1.copy(), b1.copy(), W2.copy(), b2.copy()]
        W1, b1, W2, b2 = W1 - LR * dW1, b1 - LR * db1, W2 - LR * dW2, b2 - LR * db2
        steps.append({
            "g1": math.sqrt((dW1 ** 2).sum() + (db1 ** 2).sum()),
            "g2": math.sqrt((dW2 ** 2).sum() + (db2 ** 2).sum()),
            "dead": np.mean(~np.any(z > 0, axis=0)),
            "before": before, "after": [W1, b1, W2, b2]})
    return steps


def norm(*arrays):
    return math.sqrt(sum((a ** 2).sum() for a in arrays))


@pytest.mark.parametrize("batch", [8, 4])
def test_diagnostics_match_a_hand_computation(batch, tmp_path):
    model = tiny_model()
    x, y = data()
    steps = hand_steps(tiny_model(), x, y, batch)
    diag = Diagnostics(tmp_path)
    trainer = Trainer(model, LOSSES.get("mse")(), OPTIMIZERS.get("sgd")(lr=LR),
                      task="regression", batch_size=batch, epochs=1,
                      rng=np.random.default_rng(0), shuffle=False, callbacks=[diag])
    trainer.fit(x, y)
    row = json.loads((tmp_path / "diagnostics.jsonl").read_text())
    assert row == diag.rows[0] and row["epoch"] == 1
    d1, d2 = row["layers"]["dense1"], row["layers"]["dense2"]
    assert (d1["type"], d1["activation"], d2["activation"]) == ("dense", "relu", None)
    assert "dead_fraction" not in d2 and "saturated_fraction" not in d1
    # gradient norm: mean over the epoch's steps
    assert d1["grad_norm"] == pytest.approx(np.mean([s["g1"] for s in steps]), rel=1e-10)
    assert d2["grad_norm"] == pytest.approx(np.mean([s["g2"] for s in steps]), rel=1e-10)
    # weight norm at the end, update ratio of the last step
    W1, b1, W2, b2 = steps[-1]["after"]
    B1, c1, B2, c2 = steps[-1]["before"]
    assert d1["weight_norm"] == pytest.approx(norm(W1, b1), rel=1e-10)
    assert d1["update_ratio"] == pytest.approx(norm(W1 - B1, b1 - c1) / norm(W1, b1), rel=1e-8)
    assert d2["update_ratio"] == pytest.approx(norm(W2 - B2, b2 - c2) / norm(W2, b2), rel=1e-8)
    # SGD: the last update is lr times the last gradient
    assert d1["update_ratio"] == pytest.approx(LR * steps[-1]["g1"] / norm(W1, b1), rel=1e-8)
    # dead units: 2 of 4 in the first half of the data, 3 of 4 in the second
    want = {8: 0.5, 4: (0.5 + 0.75) / 2}[batch]
    assert [s["dead"] for s in steps] == ([0.5] if batch == 8 else [0.5, 0.75])
    assert d1["dead_fraction"] == pytest.approx(want)
    assert len(diag.warnings) == (1 if want > 0.5 else 0)  # more than half dead: warned


def test_saturation_and_warnings_at_the_end():
    model = Model.from_config([{"type": "dense", "units": 5, "activation": "tanh"},
                               {"type": "dense", "units": 3, "activation": "sigmoid"}],
                              (2,), np.float64)
    model.build(np.random.default_rng(0))
    model.layers[0].params["weight"][...] = 50.0 * np.array(
        [[1, 0], [0, 1], [1, 1], [0.001, 0], [0, 0.001]])
    x = np.random.default_rng(2).uniform(-1, 1, size=(16, 2))
    y = np.random.default_rng(3).uniform(0, 1, size=(16, 3))
    diag = Diagnostics()
    trainer = Trainer(model, LOSSES.get("mse")(), OPTIMIZERS.get("sgd")(lr=0.0),
                      task="regression", batch_size="full", epochs=2,
                      rng=np.random.default_rng(0), shuffle=False, callbacks=[diag])
    trainer.fit(x, y)
    z = x @ model.layers[0].params["weight"].T + model.layers[0].params["bias"]
    tanh = np.tanh(z)
    h2 = 1 / (1 + np.exp(-(tanh @ model.layers[1].params["weight"].T
                           + model.layers[1].params["bias"])))
    layers = diag.rows[-1]["layers"]
    assert layers["dense1"]["saturated_fraction"] == pytest.approx(np.mean(np.abs(tanh) > 0.99))
    assert layers["dense2"]["saturated_fraction"] == pytest.approx(
        np.mean((h2 < 0.01) | (h2 > 0.99)))
    assert layers["dense1"]["update_ratio"] == 0.0  # lr 0: nothing moves
    assert layers["dense1"]["saturated_fraction"] > 0.5
    assert len(diag.warnings) == 1 and "dense1" in diag.warnings[0]
    assert "saturated" in diag.warnings[0]


def test_fused_output_activation_is_skipped():
    model = Model.from_config([{"type": "dense", "units": 3, "activation": "sigmoid"}],
                              (2,), np.float64)
    model.build(np.random.default_rng(0))
    model.fused_output = True
    entries = Diagnostics()._discover(model)
    assert [(e.name, e.kind) for e in entries] == [("dense1", None)]


def test_layer_warnings_and_truncate(tmp_path):
    rows = [{"epoch": 1, "layers": {"a": {"dead_fraction": 0.9}}},
            {"epoch": 2, "layers": {"a": {"dead_fraction": 0.6}, "b": {"dead_fraction": 0.2},
                                    "c": {"saturated_fraction": 0.7, "activation": "tanh"}}}]
    warnings = layer_warnings(rows)
    assert len(warnings) == 2
    assert warnings[0].startswith("layer a: 60%") and "layer c: 70%" in warnings[1]
    assert layer_warnings([]) == []
    (tmp_path / "diagnostics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 3, "la')
    truncate_jsonl(tmp_path / "diagnostics.jsonl", 1)
    lines = (tmp_path / "diagnostics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]


def test_end_to_end_on_mlp_digits(tmp_path, monkeypatch):
    """Train the shipped config with the callback attached (as the session does for
    ``training.diagnostics: true``) and draw the figure from the run directory."""
    from dlcli.cli import cli
    from dlcli.config.schema import TRAINING
    from dlcli.train import trainer as trainer_module

    run = tmp_path / "run"
    args = ["train", str(REPO / "configs" / "mlp_digits.yaml"), "--run-dir", str(run), "-q",
            "--set", "training.epochs=2"]
    if "diagnostics" in TRAINING:
        args += ["--set", "training.diagnostics=true"]
    else:  # not wired into the session yet: attach the callback around Trainer.fit
        fit = trainer_module.Trainer.fit

        def fit_with_diagnostics(self, *a, **k):
            logger = next(c for c in self.callbacks if hasattr(c, "jsonl"))
            self.callbacks.append(Diagnostics(logger.jsonl.parent))
            return fit(self, *a, **k)

        monkeypatch.setattr(trainer_module.Trainer, "fit", fit_with_diagnostics)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run / "diagnostics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    layers = rows[-1]["layers"]
    assert list(layers) == ["dense1", "dense2", "dense3"]  # flatten/dropout have no params
    for name in ("dense1", "dense2"):
        assert layers[name]["activation"] == "relu"
        assert 0 <= layers[name]["dead_fraction"] <= 1
        assert layers[name]["grad_norm"] > 0 and layers[name]["weight_norm"] > 0
        assert 0 < layers[name]["update_ratio"] < 1
    assert layers["dense3"]["activation"] == "softmax"
    assert "saturated_fraction" not in layers["dense3"]  # softmax fused into the loss
    pytest.importorskip("matplotlib")
    out = tmp_path / "diag.png"
    result = CliRunner().invoke(cli, ["plot", str(run), "--diagnostics", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

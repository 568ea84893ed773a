"""``dlcli gradcheck`` checks the code that trains: the model runs in training mode (the
conv->pool handoff of training included) with dropout masks held fixed."""

import pathlib

import numpy as np

from dlcli.config import load_config
from dlcli.inspect.gradcheck import run_gradcheck
from dlcli.nn.functional import conv_stride1

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"


def test_cnn_gradcheck_passes_through_the_fused_conv_pool_handoff(monkeypatch):
    handoffs = []
    original = conv_stride1.WideOutput.__init__

    def counting(self, *args, **kwargs):
        handoffs.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(conv_stride1.WideOutput, "__init__", counting)
    result = run_gradcheck(load_config(CONFIGS / "cnn_digits.yaml"), samples=2, entries=5)
    assert result["passed"], result["params"]
    assert handoffs, "the check never ran the conv->pool handoff that training runs"
    assert all(row["relative_error"] < 1e-5 for row in result["params"])


def test_dropout_masks_are_held_fixed_so_training_mode_checks_pass():
    config = load_config(CONFIGS / "mlp_digits.yaml")  # two dropout layers, rate 0.4
    result = run_gradcheck(config, samples=3, entries=5)
    assert result["passed"], result["params"]
    assert max(row["relative_error"] for row in result["params"]) < 1e-5


def test_a_wrong_backward_in_training_mode_is_caught(monkeypatch):
    from dlcli.nn.layers.dense import Dropout

    original = Dropout.backward
    monkeypatch.setattr(Dropout, "backward", lambda self, dy: original(self, dy) * 1.01)
    result = run_gradcheck(load_config(CONFIGS / "mlp_digits.yaml"), samples=3, entries=5)
    assert not result["passed"]
    assert np.isfinite([row["relative_error"] for row in result["params"]]).all()

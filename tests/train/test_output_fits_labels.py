"""A task whose output layer and loss cannot represent the labels is refused before any
computation, with what would fit (issue 17, point 1)."""

import numpy as np
import pytest

from dlcli.config import resolve
from dlcli.errors import ConfigError
from dlcli.train.session import prepare
from tests.helpers.configs import moons_mlp


def blobs(classes, last, loss, **data):
    raw = moons_mlp()
    raw["data"] = {"source": "synthetic:blobs",
                   "params": {"n_samples": 90, "n_classes": classes}, **data}
    raw["model"]["layers"][-1] = last
    raw["model"]["loss"] = loss
    return raw


def refusal(raw) -> str:
    with pytest.raises(ConfigError) as info:
        prepare(resolve(raw))
    return str(info.value)


def test_binary_loss_on_ten_classes_is_refused_with_what_fits():
    text = refusal(blobs(10, {"type": "dense", "units": 1, "activation": "sigmoid"},
                         "binary_crossentropy"))
    assert "10 classes" in text and "binary_crossentropy" in text
    assert "units: 10" in text and "softmax" in text and "categorical_crossentropy" in text


def test_three_class_string_csv_target_with_one_sigmoid_unit_is_refused(tmp_path):
    rows = ["a,b,species"] + [f"{i},{i % 7},{['setosa', 'versicolor', 'virginica'][i % 3]}"
                              for i in range(30)]
    (tmp_path / "flowers.csv").write_text("\n".join(rows) + "\n")
    raw = moons_mlp()
    raw["data"] = {"source": str(tmp_path / "flowers.csv"), "target": "species"}
    raw["model"]["layers"][-1] = {"type": "dense", "units": 1, "activation": "sigmoid"}
    raw["model"]["loss"] = "binary_crossentropy"
    text = refusal(raw)
    assert "3 classes" in text and "units: 3" in text


def test_perceptron_on_three_classes_is_refused():
    text = refusal(blobs(3, {"type": "dense", "units": 1, "activation": "binary_step"},
                         "perceptron"))
    assert "3 classes" in text


def test_softmax_width_other_than_the_classes_says_what_fits():
    text = refusal(blobs(3, {"type": "dense", "units": 5, "activation": "softmax"},
                         "categorical_crossentropy"))
    assert "3 classes" in text and "units: 3" in text


def test_cross_entropy_on_values_outside_zero_one_is_refused():
    raw = moons_mlp()
    raw["data"] = {"source": "synthetic:regression", "params": {"n_samples": 60}}
    raw["model"]["layers"][-1] = {"type": "dense", "units": 1, "activation": "sigmoid"}
    raw["model"]["loss"] = "binary_crossentropy"
    raw["task"] = "regression"
    text = refusal(raw)
    assert "[0, 1]" in text and "mse" in text


def test_bce_autoencoder_on_standardized_inputs_is_refused():
    raw = moons_mlp()
    raw["task"] = "reconstruction"
    raw["data"] = {"source": "synthetic:moons", "params": {"n_samples": 60}}
    raw["model"]["layers"] = [{"type": "dense", "units": 1, "activation": "tanh"},
                              {"type": "dense", "units": 2, "activation": "sigmoid"}]
    raw["model"]["loss"] = "binary_crossentropy"
    text = refusal(raw)
    assert "normalize: minmax" in text
    raw["data"]["normalize"] = "minmax"  # inputs in [0, 1]: a valid target
    prepared = prepare(resolve(raw))
    assert prepared.task == "reconstruction"


def test_two_classes_with_one_sigmoid_unit_still_trains():
    prepared = prepare(resolve(blobs(2, {"type": "dense", "units": 1,
                                         "activation": "sigmoid"}, "binary_crossentropy")))
    assert prepared.task == "binary"
    assert set(np.unique(prepared.splits.y_train)) <= {0, 1}

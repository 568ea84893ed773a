"""Messages a Keras or Lightning user can act on (issue 17, point 7): one line per error, a
hint for each misplaced well-known key, names matched case-insensitively with aliases."""

import pytest

from dlcli.config import load_config, resolve
from dlcli.errors import ConfigError
from tests.helpers.configs import moons_mlp, write_config


def error_of(raw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        resolve(raw)
    return info.value


def test_each_error_on_a_line_of_its_own(tmp_path):
    raw = moons_mlp()
    raw["training"]["epochs"] = 0
    raw["model"]["loss"] = "msee"
    path = write_config(tmp_path / "two.yaml", raw)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert any("training.epochs: expected a positive integer, got 0" in line for line in lines)
    assert any("model.loss: unknown loss 'msee'" in line for line in lines)


@pytest.mark.parametrize("section, key, target", [
    (None, "epochs", "training.epochs"),
    (None, "batch_size", "training.batch_size"),
    (None, "optimizer", "training.optimizer"),
    (None, "loss", "model.loss"),
    (None, "layers", "model.layers"),
    (None, "learning_rate", "training.optimizer.lr"),
    ("training", "lr", "training.optimizer.lr"),
    ("training", "learning_rate", "training.optimizer.lr"),
    ("training", "loss", "model.loss"),
    ("training", "max_epochs", "training.epochs"),
    ("training", "validation_split", "data.validation_split"),
    ("training", "patience", "training.early_stopping.patience"),
    ("model", "optimizer", "training.optimizer"),
    ("model", "epochs", "training.epochs"),
    ("data", "batch_size", "training.batch_size"),
    ("training.optimizer", "learning_rate", "training.optimizer.lr"),
])
def test_misplaced_keys_get_their_place(section, key, target):
    raw = moons_mlp()
    node = raw
    for part in (section.split(".") if section else []):
        node = node[part]
    node[key] = 5
    err = error_of(raw)
    where = f"{section}.{key}" if section else key
    messages = [m for p, m in err.errors if p == where]
    assert messages, err.errors
    assert f"{target}" in messages[0] and "did you mean" in messages[0], messages[0]


@pytest.mark.parametrize("given, canonical", [
    ("ReLU", "relu"), ("linear", "identity"), ("Softmax", "softmax"), ("TANH", "tanh"),
    ("LeakyReLU", "leaky_relu"),
])
def test_activation_names_case_insensitive_with_aliases(given, canonical):
    raw = moons_mlp()
    raw["model"]["layers"][0]["activation"] = given
    assert resolve(raw)["model"]["layers"][0]["activation"] == canonical


@pytest.mark.parametrize("section, key, given, canonical", [
    ("training.optimizer", "type", "Adam", "adam"),
    ("training.optimizer", "type", "SGD", "sgd"),
    ("training.optimizer", "type", "RMSprop", "rmsprop"),
    ("model", "loss", "CategoricalCrossentropy", "categorical_crossentropy"),
    ("model", "loss", "sparse_categorical_crossentropy", "categorical_crossentropy"),
])
def test_optimizer_and_loss_names_with_aliases(section, key, given, canonical):
    raw = moons_mlp()
    node = raw
    for part in section.split("."):
        node = node[part]
    node[key] = given
    resolved = resolve(raw)
    node = resolved.data
    for part in section.split("."):
        node = node[part]
    assert node[key] == canonical


def test_layer_type_aliases():
    raw = moons_mlp()
    raw["model"]["layers"][0]["type"] = "Dense"
    raw["model"]["layers"].insert(1, {"type": "Dropout", "rate": 0.1})
    layers = resolve(raw)["model"]["layers"]
    assert [layer["type"] for layer in layers] == ["dense", "dropout", "dense"]


def test_string_optimizer_shorthand_takes_an_alias():
    raw = moons_mlp()
    raw["training"]["optimizer"] = "Adam"
    assert resolve(raw)["training"]["optimizer"]["type"] == "adam"


def test_unknown_name_still_refused_with_known_ones():
    raw = moons_mlp()
    raw["model"]["layers"][0]["activation"] = "swishy"
    path, message = error_of(raw).errors[0]
    assert path == "model.layers[0].activation" and "known:" in message

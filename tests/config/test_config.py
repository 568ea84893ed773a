"""Config: defaults filled in, --set overrides, YAML number traps, default layer names."""

import inspect

import pytest
import yaml

from dlcli.config import load_config, resolve
from dlcli.config.resolve import apply_overrides, parse_key_path
from dlcli.config.schema import DATA, MODEL, TOP, TRAINING
from dlcli.errors import ConfigError
from dlcli.nn.layers.dense import Dense
from dlcli.registry import OPTIMIZERS
from tests.helpers.configs import moons_mlp, write_config

MINIMAL = {
    "data": {"source": "synthetic:moons"},
    "model": {"layers": [{"type": "dense", "units": 2, "activation": "softmax"}],
              "loss": "categorical_crossentropy"},
}


def test_defaults_are_filled_in_for_every_key():
    data = resolve(MINIMAL).data
    assert set(data) == set(TOP)
    assert set(data["data"]) == set(DATA)
    assert set(data["model"]) == set(MODEL)
    assert set(data["training"]) == set(TRAINING)
    dense = data["model"]["layers"][0]
    signature = set(inspect.signature(Dense.__init__).parameters) - {"self"}
    assert set(dense) == signature | {"type"}
    adam = data["training"]["optimizer"]
    assert set(adam) == set(OPTIMIZERS.get("adam").hyperparameters()) | {"type"}
    # a few defaults written out
    assert data["name"] == "run" and data["seed"] == 0 and data["dtype"] == "float32"
    assert data["data"]["validation_split"] == 0.1 and data["data"]["test_split"] == 0.2
    assert data["data"]["normalize"] == "standard"
    assert data["training"]["epochs"] == 10 and data["training"]["batch_size"] == 32
    assert adam["type"] == "adam" and adam["lr"] == 0.001 and adam["betas"] == [0.9, 0.999]
    assert dense["use_bias"] is True and dense["update"] == "gradient"
    assert dense["name"] == "dense1"


def test_resolving_a_resolved_config_changes_nothing():
    once = resolve(moons_mlp()).data
    twice = resolve(yaml.safe_load(yaml.safe_dump(once))).data
    assert twice == once


def test_name_defaults_to_the_file_stem(tmp_path):
    config = load_config(write_config(tmp_path / "my_model.yaml", MINIMAL))
    assert config["name"] == "my_model"


def names_of(layers):
    raw = {**MINIMAL, "model": {"loss": "mse", "layers": layers}}
    return [layer["name"] for layer in resolve(raw)["model"]["layers"]]


def test_default_layer_names_count_per_type():
    dense, dropout = {"type": "dense", "units": 1}, {"type": "dropout"}
    assert names_of([dense, dropout, dense, dense]) == ["dense1", "dropout1", "dense2", "dense3"]
    # <type><k> with k the position among layers of that type; a name the user took moves
    # the default to the next free number
    assert names_of([dense, dropout, {**dense, "name": "dense3"}, dense]) == [
        "dense1", "dropout1", "dense3", "dense4"]


def test_duplicate_layer_names_are_refused():
    with pytest.raises(ConfigError, match="'a' is used more than once"):
        names_of([{"type": "dense", "units": 1, "name": "a"}, {"type": "dropout", "name": "a"}])


@pytest.mark.parametrize("activation, initializer", [
    ("relu", "he"), ("leaky_relu", "he"), ("tanh", "xavier"), ("sigmoid", "xavier"),
    ("softmax", "xavier")])
def test_default_initializer_follows_the_notes(activation, initializer):
    # notes 1.9: Xavier for tanh/sigmoid layers, He for ReLU layers
    raw = {**MINIMAL, "model": {"loss": "mse", "layers": [
        {"type": "dense", "units": 1, "activation": activation}]}}
    assert resolve(raw)["model"]["layers"][0]["initializer"] == initializer


def test_explicit_initializer_is_kept():
    raw = {**MINIMAL, "model": {"loss": "mse", "layers": [
        {"type": "dense", "units": 1, "activation": "tanh", "initializer": "he"}]}}
    assert resolve(raw)["model"]["layers"][0]["initializer"] == "he"


# ---- YAML number and boolean traps ----------------------------------------------------

@pytest.mark.parametrize("text, value", [("1e-3", 0.001), ("1.0e-3", 0.001), ("1e3", 1000.0),
                                         ("2.5E+2", 250.0), (".5", 0.5)])
def test_exponent_numbers_in_yaml_are_floats(tmp_path, text, value):
    path = write_config(tmp_path / "c.yaml", f"""
data: {{source: "synthetic:moons"}}
model:
  layers: [{{type: dense, units: 2, activation: softmax}}]
  loss: categorical_crossentropy
training:
  optimizer: {{type: sgd, lr: {text}}}
""")
    lr = load_config(path)["training"]["optimizer"]["lr"]
    assert isinstance(lr, float) and lr == value


def test_quoted_number_is_rejected_with_a_hint(tmp_path):
    raw = {**MINIMAL, "training": {"optimizer": {"type": "sgd", "lr": "0.01"}}}
    with pytest.raises(ConfigError, match=r"training\.optimizer\.lr: .*without quotes"):
        resolve(raw)


def test_yaml_yes_no_are_booleans_for_boolean_keys(tmp_path):
    path = write_config(tmp_path / "c.yaml", """
data: {source: "synthetic:moons"}
model:
  layers: [{type: dense, units: 2, activation: softmax, use_bias: no}]
  loss: categorical_crossentropy
training: {shuffle: no}
""")
    config = load_config(path)
    assert config["training"]["shuffle"] is False
    assert config["model"]["layers"][0]["use_bias"] is False


# ---- --set overrides -------------------------------------------------------------------

def test_parse_key_path():
    assert parse_key_path("model.layers[2].units") == ["model", "layers", 2, "units"]
    assert parse_key_path("seed") == ["seed"]


def test_set_overrides_nested_keys_list_indices_and_parses_values(tmp_path):
    path = write_config(tmp_path / "c.yaml", moons_mlp())
    config = load_config(path, [
        "training.optimizer.lr=1e-3",
        "model.layers[0].units=5",
        "model.layers[1].activation=sigmoid",
        "training.early_stopping.patience=2",
        "seed=7",
        "training.shuffle=false",
    ])
    lr = config["training"]["optimizer"]["lr"]
    assert isinstance(lr, float) and lr == 0.001
    assert config["model"]["layers"][0]["units"] == 5
    assert config["model"]["layers"][1]["activation"] == "sigmoid"
    assert config["training"]["early_stopping"] == {"patience": 2, "min_delta": 0.0}
    assert config["seed"] == 7 and config["training"]["shuffle"] is False


def test_set_does_not_modify_the_raw_config():
    raw = moons_mlp()
    out = apply_overrides(raw, ["model.layers[0].units=9"])
    assert raw["model"]["layers"][0]["units"] == 8 and out["model"]["layers"][0]["units"] == 9


def test_set_value_is_validated_like_the_file(tmp_path):
    path = write_config(tmp_path / "c.yaml", moons_mlp())
    with pytest.raises(ConfigError, match=r"model\.layers\[0\]\.units: expected a positive "
                                          r"integer, got -1"):
        load_config(path, ["model.layers[0].units=-1"])


@pytest.mark.parametrize("item, message", [
    ("seed", "expected key.path=value"),
    ("model.layers[5].units=2", r"model\.layers\[5\] does not exist"),
    ("model..units=2", "cannot parse key path"),
    ("seed.x=1", "is not a mapping"),
])
def test_bad_set_items_are_config_errors(item, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(moons_mlp(), [item])

"""Config errors: key paths, did-you-mean, known names, YAML traps, all errors at once."""

import threading

import pytest

from dlcli.config import load_config, resolve
from dlcli.config.loader import loads
from dlcli.errors import ConfigError, ShapeError
from dlcli.nn.model import load_layer_modules
from dlcli.registry import ACTIVATIONS, LAYERS, LOSSES, OPTIMIZERS
from tests.helpers.configs import moons_mlp, write_config

load_layer_modules()


def error_of(raw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        resolve(raw)
    return info.value


def three_dense(units):
    config = moons_mlp()
    config["model"]["layers"] = [{"type": "dense", "units": 4}, {"type": "dense", "units": 4},
                                 {"type": "dense", "units": units, "activation": "softmax"}]
    return config


def test_bad_value_names_its_key_path():
    err = error_of(three_dense(-3))
    assert str(err) == "model.layers[2].units: expected a positive integer, got -3"
    assert err.errors == [("model.layers[2].units", "expected a positive integer, got -3")]


@pytest.mark.parametrize("units", [0, 2.5, "4", True, None])
def test_units_must_be_a_positive_integer(units):
    err = error_of(three_dense(units))
    assert err.errors[0][0] == "model.layers[2].units"
    assert "expected a positive integer" in err.errors[0][1]


def test_error_names_the_file(tmp_path):
    path = write_config(tmp_path / "net.yaml", three_dense(-3))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: model.layers[2].units: expected a positive integer, got -3"


@pytest.mark.parametrize("section, key, suggestion", [
    ("training", "epoch", "epochs"),
    ("training", "batchsize", "batch_size"),
    ("data", "sourc", "source"),
])
def test_unknown_key_suggests_the_closest(section, key, suggestion):
    raw = moons_mlp()
    raw[section][key] = 1
    err = error_of(raw)
    path, message = err.errors[0]
    assert path == f"{section}.{key}"
    assert message.startswith(f"unknown key; did you mean '{suggestion}'?")


def test_unknown_layer_key_lists_the_layers_keys():
    raw = moons_mlp()
    raw["model"]["layers"][0]["unit"] = 3
    path, message = error_of(raw).errors[0]
    assert path == "model.layers[0].unit"
    assert "did you mean 'units'" in message and "initializer" in message


def test_unknown_top_level_key():
    raw = moons_mlp()
    raw["trainig"] = {}
    assert error_of(raw).errors[0][0] == "trainig"
    assert "did you mean 'training'" in error_of(raw).errors[0][1]


def test_missing_required_sections():
    err = error_of({"model": {"layers": [{"type": "dense", "units": 1}]}})
    assert ("data", "required key is missing") in err.errors
    assert ("model.loss", "required key is missing") in err.errors


def _known(registry):
    return "known: " + ", ".join(registry.names())


@pytest.mark.parametrize("where, value, registry, path, close", [
    ("layer", "densee", LAYERS, "model.layers[0].type", "dense"),
    ("activation", "relu6", ACTIVATIONS, "model.layers[0].activation", "relu"),
    ("loss", "msee", LOSSES, "model.loss", "mse"),
    ("optimizer", "adamm", OPTIMIZERS, "training.optimizer.type", "adam"),
])
def test_unknown_names_list_the_known_ones(where, value, registry, path, close):
    raw = moons_mlp()
    if where == "layer":
        raw["model"]["layers"][0]["type"] = value
    elif where == "activation":
        raw["model"]["layers"][0]["activation"] = value
    elif where == "loss":
        raw["model"]["loss"] = value
    else:
        raw["training"]["optimizer"]["type"] = value
    got_path, message = error_of(raw).errors[0]
    assert got_path == path
    assert f"'{value}'" in message and f"did you mean '{close}'" in message
    assert message.endswith(_known(registry))
    assert len(registry.names()) >= 4


def test_unknown_initializer_lists_the_known_ones():
    raw = moons_mlp()
    raw["model"]["layers"][0]["initializer"] = "kaiming"
    path, message = error_of(raw).errors[0]
    assert path == "model.layers[0].initializer"
    assert "xavier" in message and "glorot_uniform" in message


def test_multiple_errors_are_reported_together():
    raw = three_dense(-3)
    raw["training"]["epochs"] = 0
    raw["training"]["epoch"] = 3
    raw["model"]["loss"] = "msee"
    err = error_of(raw)
    paths = [path for path, _ in err.errors]
    assert set(paths) == {"model.layers[2].units", "model.loss", "training.epoch",
                          "training.epochs"}
    assert len(str(err).splitlines()) == 4  # one line per error


def test_shape_mismatch_names_the_layer():
    raw = moons_mlp()
    raw["model"]["input_shape"] = [8, 8, 1]
    with pytest.raises(ShapeError) as info:
        resolve(raw)
    message = str(info.value)
    assert "model.layers[0] (dense1, dense): dense expects a vector input" in message
    assert "(8, 8, 1)" in message and "flatten" in message


def test_shape_mismatch_deeper_in_the_model():
    raw = moons_mlp()
    raw["model"]["input_shape"] = [8, 8, 1]
    raw["model"]["layers"] = [{"type": "flatten"}, {"type": "dense", "units": 4},
                              {"type": "reshape", "shape": [3, 3, 1]}]
    with pytest.raises(ShapeError, match=r"model\.layers\[2\] \(reshape1, reshape\)"):
        resolve(raw)


def test_a_flatten_fixes_the_shape():
    raw = moons_mlp()
    raw["model"]["input_shape"] = [8, 8, 1]
    raw["model"]["layers"].insert(0, {"type": "flatten"})
    assert resolve(raw)["model"]["layers"][0]["name"] == "flatten1"


# ---- YAML traps ----------------------------------------------------------------------

def test_duplicate_keys_are_refused_naming_both_lines():
    text = "seed: 1\ndata:\n  source: a\n  normalize: none\n  source: b\n"
    with pytest.raises(ConfigError) as info:
        loads(text, "c.yaml")
    assert str(info.value) == "c.yaml: line 5: duplicate key 'source' (first given on line 3)"


def test_python_tags_are_refused_naming_the_line(tmp_path):
    marker = tmp_path / "pwned"
    text = f"seed: 1\ndata: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(ConfigError) as info:
        loads(text, "c.yaml")
    message = str(info.value)
    assert message.startswith("c.yaml: line 2:") and "python/object" in message
    assert not marker.exists()


def test_invalid_yaml_names_line_and_column():
    with pytest.raises(ConfigError, match=r"^c\.yaml: line 2, column 1: invalid YAML"):
        loads("a: [1, 2\n", "c.yaml")


def test_alias_bomb_is_refused():
    # The "billion laughs": 9 levels of 9 aliases expand to 9^9 (387 million) strings.
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    outcome = {}

    def load():
        try:
            loads(text, "bomb.yaml")
        except ConfigError as exc:
            outcome["error"] = exc

    # A hang guard, not a benchmark: a loader that expands the aliases never finishes.
    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the alias bomb was expanded"
    assert "aliases" in str(outcome["error"]) and "refused" in str(outcome["error"])


def test_a_few_aliases_are_fine():
    value = loads("base: &b {units: 4}\nlayers: [*b, *b]\n")
    assert value["layers"] == [{"units": 4}, {"units": 4}]


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        resolve([1, 2])


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: config file not found"

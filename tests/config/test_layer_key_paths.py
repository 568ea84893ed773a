"""A layer's complaint about one of its keys keeps the full key path, with the same
``<file>: <key.path>: expected <rule>, got <value>`` shape as every other config error."""

import pathlib

import pytest

from dlcli.config import load_config
from dlcli.errors import ConfigError

CNN = pathlib.Path(__file__).resolve().parents[2] / "configs" / "cnn_digits.yaml"


@pytest.mark.parametrize("override, path, rule", [
    ("model.layers[1].padding=same", "model.layers[1].padding",   # a max pool: no 'same'
     "expected an integer ≥ 0 or a pair [height, width] of them, got 'same'"),
    ("model.layers[1].padding=2", "model.layers[1].padding",   # pool_size 2: at most 1
     "expected at most half the pool size 2x2, got 2"),
    ("model.layers[1].pool_size=0", "model.layers[1].pool_size",
     "expected an integer ≥ 1 or a pair [height, width] of them, got 0"),
])
def test_layer_errors_name_the_key(override, path, rule):
    with pytest.raises(ConfigError) as caught:
        load_config(CNN, [override])
    text = str(caught.value)
    assert f"{CNN}: {path}: {rule}" in text, text


def test_conv_padding_names_are_taken_in_any_case_and_a_wrong_one_lists_them():
    """Keras takes padding='SAME'; a misspelt name is answered with the names, not with the
    rule for integers."""
    upper = load_config(CNN, ["model.layers[0].padding=SAME"])
    assert upper["model"]["layers"][0]["padding"] == "same"
    with pytest.raises(ConfigError) as caught:
        load_config(CNN, ["model.layers[0].padding=sam"])
    assert (f"{CNN}: model.layers[0].padding: expected 'valid', 'same', an integer ≥ 0 or a "
            "pair of them, got 'sam'") in str(caught.value)

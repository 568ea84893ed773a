"""Small configs as dicts, and writing them (or raw YAML text) to temporary files."""

import copy
import pathlib

import yaml


def moons_mlp(**training) -> dict:
    """A tiny MLP on synthetic moons: 2 -> 8 tanh -> 2 softmax, a few epochs."""
    config = {
        "name": "moons",
        "seed": 1,
        "data": {"source": "synthetic:moons", "params": {"n_samples": 120}},
        "model": {
            "layers": [
                {"type": "dense", "units": 8, "activation": "tanh"},
                {"type": "dense", "units": 2, "activation": "softmax"},
            ],
            "loss": "categorical_crossentropy",
        },
        "training": {"epochs": 3, "batch_size": 16, "optimizer": {"type": "adam", "lr": 0.01}},
    }
    config["training"].update(training)
    return config


def with_changes(config: dict, **sections) -> dict:
    """A deep copy of ``config`` with top-level keys replaced."""
    out = copy.deepcopy(config)
    out.update(copy.deepcopy(sections))
    return out


def write_config(path, config) -> pathlib.Path:
    """Write ``config`` (a dict, dumped as YAML, or YAML text as is) to ``path``."""
    path = pathlib.Path(path)
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path

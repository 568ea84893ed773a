"""Every rule a component declares is enforced, with one message shape and the full key path.

Each registered layer, activation, optimizer, schedule and synthetic data set declares the
rules of its values as data (``RULES``, ``RELATIONS``; the schedule table; the generator's
``RULES``). For every declared rule this test makes values the rule must refuse from the
rule's own description (its kind and bounds: one below a minimum, a fraction for an integer,
a string for a number, ...), puts each into a config at the place a user would write it,
and checks the message against an expectation written here: exactly one line,
``<file>: <key.path>: expected <what>, got <the value as written>``. A constructor called
from Python with the same value raises the same message. Finally, no constructor in
``dlcli/nn`` checks a value by hand beside its declaration.
"""

import ast
import inspect
import math
import pathlib
import re

import numpy as np
import pytest
import yaml

from dlcli import rules as r
from dlcli.config import load_config
from dlcli.data import synthetic  # noqa: F401  (registers the data sets)
from dlcli.errors import ConfigError
from dlcli.nn.model import load_layer_modules
from dlcli.nn.optim.schedules import COMMON_KEYS, SCHEDULE_KEYS
from dlcli.registry import ACTIVATIONS, DATASETS, LAYERS, OPTIMIZERS, SCHEDULES
from tests.helpers.configs import moons_mlp

load_layer_modules()
ROOT = pathlib.Path(__file__).resolve().parents[2]

# Keys the config layer resolves against a registry or the layer-name rule, not a class rule.
NAMED = {"name", "activation", "initializer"}
# A valid value for each required layer key (the test fails on a new one until it is added).
VALID = {"units": 3, "filters": 2, "kernel_size": 2, "pool_size": 2, "shape": [2],
         "pool": "pool1", "step_size": 2, "gamma": 0.5}


def bad_values(rule) -> list:
    """Values ``rule`` must refuse, made from its declared kind and bounds."""
    kind, spec = rule.kind, rule.spec
    if kind == "optional":
        return bad_values(spec["rule"])
    if kind == "integer":
        out = [2.5, "3", True]
        if spec["minimum"] is not None:
            out.append(spec["minimum"] - 1)
        if spec.get("maximum") is not None:
            out.append(spec["maximum"] + 1)
        return out
    if kind == "number":
        out = ["0.5", True, [0.5]]
        if math.isfinite(spec["minimum"]):
            out.append(spec["minimum"] - 1)
            if spec["min_open"]:
                out.append(spec["minimum"])
        if math.isfinite(spec["maximum"]):
            out.append(spec["maximum"] + 1)
            if spec["max_open"]:
                out.append(spec["maximum"])
        return out
    if kind == "boolean":
        return ["yes", 1, None]
    if kind == "string":
        return ["", 3, ["a"]]
    if kind == "choice":
        return ["no_such_option", 1]
    if kind == "pair":
        low = spec["minimum"]
        return [low - 1, [low, low - 1], [low, low, low], 1.5, "2"]
    if kind == "number_pair":
        low, high = spec["minimum"], spec["maximum"]
        return [[low - 1, low], [low, high if spec["max_open"] else high + 1], [low], low]
    if kind == "padding":
        return [-1, "full", [1, -1]]
    if kind == "shape":
        return [[], [0], [-1, -1], 4]
    raise AssertionError(f"no bad values known for a rule of kind {kind!r}: add them here")


def shown(value) -> str:
    """The value as a message shows it: strings quoted, everything else as Python prints it."""
    return repr(value) if isinstance(value, str) else str(value)


def expect_one_line(path_file, key_path, value, relation=False):
    """The config at ``path_file`` is refused with one line for ``key_path`` naming ``value``."""
    with pytest.raises(ConfigError) as caught:
        load_config(path_file)
    lines = str(caught.value).splitlines()
    assert len(lines) == 1, lines
    got = "(the string )?" if isinstance(value, str) else ""
    pattern = (re.escape(f"{path_file}: {key_path}: expected ") + r".+, got " + got
               + re.escape(shown(value)) + r"( \(.*\))?$")
    assert re.match(pattern, lines[0]), (lines[0], pattern)
    return lines[0]


def write(tmp_path, raw) -> pathlib.Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# ---- the components and where their values live in a config ---------------------------------

def layer_classes():
    out = [(name, LAYERS.get(name)) for name in LAYERS.names() if name != "activation"]
    return out + [(f"activation:{name}", ACTIVATIONS.get(name)) for name in ACTIVATIONS.names()]


def required_layer_values(cls) -> dict:
    params = inspect.signature(cls).parameters
    return {k: VALID[k] for k, p in params.items()
            if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY
            or p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD}


def layer_config(name, cls, key, value):
    """(raw config, key path) with ``key: value`` in the layer (or activation) under test."""
    raw = moons_mlp()
    if name.startswith("activation:"):
        kind = name.split(":", 1)[1]
        layer = {"type": "activation", "activation": kind, key: value}
        raw["model"]["layers"].insert(1, layer)
        return raw, f"model.layers[1].{key}"
    layer = {"type": name, **required_layer_values(cls), key: value}
    raw["model"]["layers"] = [{"type": "maxpool2d", "name": "pool1", "pool_size": 2}, layer]
    return raw, f"model.layers[1].{key}"


def cases():
    for name, cls in layer_classes():
        for key, rule in cls.RULES.items():
            for value in bad_values(rule):
                yield pytest.param("layer", name, key, value, id=f"{name}.{key}={value!r}")
    for name in OPTIMIZERS.names():
        for key, rule in OPTIMIZERS.get(name).RULES.items():
            for value in bad_values(rule):
                yield pytest.param("optimizer", name, key, value, id=f"{name}.{key}={value!r}")
    for name, keys in SCHEDULE_KEYS.items():
        for key, (rule, _) in {**keys, **COMMON_KEYS}.items():
            for value in bad_values(rule):
                yield pytest.param("schedule", name, key, value, id=f"{name}.{key}={value!r}")
    for name in DATASETS.names():
        for key, rule in DATASETS.get(name).RULES.items():
            for value in bad_values(rule):
                yield pytest.param("data", name, key, value, id=f"{name}.{key}={value!r}")


def config_for(where, name, key, value):
    if where == "layer":
        return layer_config(name, dict(layer_classes())[name], key, value)
    raw = moons_mlp()
    if where == "optimizer":
        raw["training"]["optimizer"] = {"type": name, key: value}
        return raw, f"training.optimizer.{key}"
    if where == "schedule":
        required = {k: VALID[k] for k, (_, d) in SCHEDULE_KEYS[name].items() if d == "required"}
        raw["training"]["schedule"] = {"type": name, **required, key: value}
        return raw, f"training.schedule.{key}"
    raw["data"] = {"source": f"synthetic:{name}", "params": {key: value}}
    return raw, f"data.params.{key}"


@pytest.mark.parametrize("where, name, key, value", list(cases()))
def test_every_declared_rule_is_enforced_with_its_key_path(tmp_path, where, name, key, value):
    raw, key_path = config_for(where, name, key, value)
    line = expect_one_line(write(tmp_path, raw), key_path, value)
    if where == "layer":  # the constructor applies the same rules, with the same words
        cls = dict(layer_classes())[name]
        kwargs = {**required_layer_values(cls), key: value} if not name.startswith(
            "activation:") else {key: value}
        with pytest.raises(r.InvalidValues) as caught:
            cls(**kwargs)
        assert caught.value.problems == [(key, line.split(f"{key_path}: ", 1)[1])]
    if where == "optimizer":
        with pytest.raises(r.InvalidValues) as caught:
            OPTIMIZERS.get(name)(**{key: value})
        assert caught.value.problems == [(key, line.split(f"{key_path}: ", 1)[1])]


# ---- relations between values ----------------------------------------------------------------

CANDIDATES = [0, 1, 2, 3, [2, 2], [3, 1], True, False, 0.5]


def relation_cases():
    owners = [("layer", n, c) for n, c in layer_classes()]
    owners += [("optimizer", n, OPTIMIZERS.get(n)) for n in OPTIMIZERS.names()]
    for where, name, cls in owners:
        for relation in cls.RELATIONS:
            yield pytest.param(where, name, cls, relation, id=f"{name}.{relation.key}")


def test_there_are_relations_to_check():
    assert {(c.values[1], c.values[3].key) for c in relation_cases()} >= {
        ("maxpool2d", "padding"), ("conv_transpose2d", "output_padding"), ("sgd", "nesterov")}


def breaking_values(cls, relation, base) -> dict:
    """Values of the relation's key (and at most one key it reads) that pass their own rules
    but break the relation, the others at their defaults."""
    def valid(key, value):
        try:
            cls.RULES[key](value)
            return True
        except r.Invalid:
            return False

    changes = [{}] + [{u: c} for u in relation.uses for c in CANDIDATES if valid(u, c)]
    for change in changes:
        for value in CANDIDATES:
            given = {**base, **change, relation.key: value}
            if not all(valid(k, v) for k, v in given.items() if k in cls.RULES):
                continue
            values = {k: cls.RULES[k](v) if k in cls.RULES else v for k, v in given.items()}
            if not relation.holds(values):
                return {**change, relation.key: value}
    raise AssertionError(f"no candidate values break the relation on {relation.key}")


@pytest.mark.parametrize("where, name, cls, relation", list(relation_cases()))
def test_every_declared_relation_is_enforced_with_its_key_path(tmp_path, where, name, cls,
                                                              relation):
    defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()
                if p.default is not inspect.Parameter.empty}
    base = {**defaults, **(required_layer_values(cls) if where == "layer" else {})}
    breaking = breaking_values(cls, relation, base)
    raw, key_path = config_for(where, name, relation.key, breaking[relation.key])
    section = (raw["model"]["layers"][1] if where == "layer"
               else raw["training"]["optimizer"])
    section.update(breaking)
    expect_one_line(write(tmp_path, raw), key_path, breaking[relation.key])


# ---- every value is declared, and only declared rules check values -------------------------

@pytest.mark.parametrize("name, cls", layer_classes(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_layer_parameter_has_a_declared_rule(name, cls):
    params = set(inspect.signature(cls).parameters) - NAMED
    assert params == set(cls.RULES), (params, set(cls.RULES))


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_hyperparameter_has_a_declared_rule(name):
    cls = OPTIMIZERS.get(name)
    assert set(cls.hyperparameters()) == set(cls.RULES)


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_every_schedule_parameter_has_a_declared_rule(name):
    params = set(inspect.signature(SCHEDULES.get(name)).parameters) - {"epoch", "base_lr"}
    assert params | set(COMMON_KEYS) == set(SCHEDULE_KEYS[name]) | set(COMMON_KEYS)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_synthetic_parameter_has_a_declared_rule(name):
    generator = DATASETS.get(name)
    assert set(inspect.signature(generator).parameters) - {"rng"} == set(generator.RULES)
    # Calling the generator applies the same rules.
    key, rule = next(iter(generator.RULES.items()))
    with pytest.raises(r.InvalidValues):
        generator(np.random.default_rng(0), **{key: bad_values(rule)[-1]})


def _hand_checks(path: pathlib.Path, helpers: bool = True):
    """``raise``/``assert`` statements in the constructors of a module's classes, and (with
    ``helpers``) module functions named like value checkers (``_check*``, ``_number``...)."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    for sub in ast.walk(item):
                        if isinstance(sub, (ast.Raise, ast.Assert)):
                            found.append(f"{path.name}:{sub.lineno} {node.name}.__init__")
    for node in tree.body if helpers else ():
        if isinstance(node, ast.FunctionDef) and re.match(
                r"_(check|number|flag|betas|positive|validate)", node.name):
            found.append(f"{path.name}:{node.lineno} {node.name}()")
    return found


def test_no_constructor_checks_values_by_hand(tmp_path):
    """Constructors in dlcli/nn (layers, activations, losses, optimizers) and the synthetic
    generators leave value checks to their declarations. (The array functions of
    ``nn/functional`` and ``nn/optim/functional`` check the arrays they are handed, shapes and dtypes: not config values,
    so helpers there are not scanned.)"""
    files = sorted((ROOT / "dlcli" / "nn").rglob("*.py")) + [ROOT / "dlcli/data/synthetic.py"]
    found = [hit for path in files
             for hit in _hand_checks(path, helpers="functional" not in (*path.parts, path.stem))]
    assert not found, found
    # The scan sees what it looks for: a constructor with a hand-written check is caught.
    sample = tmp_path / "sample.py"
    sample.write_text("class A:\n    def __init__(self, n):\n        if n < 1:\n"
                      "            raise ValueError('n')\n\n\ndef _check(n):\n    pass\n")
    assert _hand_checks(sample) == ["sample.py:4 A.__init__", "sample.py:7 _check()"]

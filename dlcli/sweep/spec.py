"""The sweep spec: a YAML file of its own, validated with the config machinery.

```yaml
name: mlp_lr
config: ../configs/mlp_digits.yaml     # base config, relative to this file
set: {training.epochs: 60}             # fixed for every trial, as --set
method: random                         # grid | random | tpe
trials: 32                             # random/tpe: how many; grid: omitted = the full product
seed: 0                                # trial i's values are a function of (seed, i)
metric: {name: val_accuracy, goal: max}
parameters:                            # keys are --set key paths
  training.optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}
  training.batch_size:   {values: [16, 32, 64]}
  model.layers[1].units: {int: [32, 512], log: true}
executor: {type: local, parallel: auto, threads_per_trial: 1}
```

Errors are :class:`ConfigError` with the spec's key path (``parameters['x'].loguniform``),
all of one pass together, as for configs.
"""

import copy
import importlib.util
import json
import math
import pathlib
from dataclasses import dataclass

from dlcli import rules as r
from dlcli.config import loader
from dlcli.config.keypaths import apply_overrides, parse_key_path
from dlcli.config.resolve import _Validator
from dlcli.config.schema import REQUIRED, TOP as CONFIG_TOP
from dlcli.errors import ConfigError, DlcliError

METHODS = ("grid", "random", "tpe")
KINDS = ("values", "uniform", "loguniform", "int")

METRIC = {
    "name": (r.string, REQUIRED),
    "goal": (r.choice("auto", "max", "min"), "auto"),  # auto: max for accuracy-like metrics
}

_auto_or_int = r.Rule("'auto' or a positive integer",
                      lambda v: v if v == "auto" else r.positive_int(v))

EXECUTOR = {
    "type": (r.choice("local", "dask"), "local"),
    "parallel": (_auto_or_int, "auto"),  # local: CPUs // threads_per_trial; dask: workers' slots
    "threads_per_trial": (r.positive_int, 1),
    "address": (r.optional(r.string), None),  # dask: tcp://host:8786; none = a LocalCluster
    "retries": (r.nonnegative_int, 2),  # a trial lost to a crash or a dead worker resumes again
}

TOP = {
    "name": (CONFIG_TOP["name"][0], None),  # None: the spec file's stem
    "config": (r.string, REQUIRED),
    "set": ("set", {}),
    "method": (r.choice(*METHODS), REQUIRED),
    "trials": (r.optional(r.positive_int), None),
    "seed": (r.nonnegative_int, 0),
    "metric": ("section", REQUIRED),
    "parameters": ("parameters", REQUIRED),
    "executor": ("section", {}),
    "output_dir": (r.string, "sweeps"),
}


class Key(str):
    """A parameter's key path inside a spec key path: shown as ``parameters['a.b']``."""


class SpecValidator(_Validator):
    def error(self, path, message):
        text = ""
        for part in path:
            if isinstance(part, Key):
                text += f"[{str(part)!r}]"
            elif isinstance(part, int):
                text += f"[{part}]"
            else:
                text += f".{part}" if text else str(part)
        self.errors.append((text, message))


@dataclass
class Spec:
    """A validated sweep spec; ``data`` has every default filled in and ``config`` absolute."""

    data: dict
    path: pathlib.Path | None = None

    def __getitem__(self, key):
        return self.data[key]

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "<spec>"

    @property
    def parameters(self) -> dict:
        return self.data["parameters"]

    @property
    def goal(self) -> str:
        return self.data["metric"]["goal"]


def _range(v, value, path, integer=False, positive=False):
    kind = "integers" if integer else "numbers"
    ok = (isinstance(value, list) and len(value) == 2
          and all((r._is_int(e) if integer else r._is_number(e)) for e in value)
          and all(math.isfinite(e) for e in value))
    if not ok:
        v.error(path, f"expected a list [low, high] of two {kind}, got {r._show(value)}")
        return None
    low, high = value
    if positive and low <= 0:
        v.error(path, f"a log scale needs low > 0, got {r._show(value)}")
        return None
    if low > high or (low == high and not integer):
        v.error(path, f"expected low < high, got {r._show(value)}")
        return None
    return [low, high]


def _parameter(v, value, path) -> dict | None:
    """One parameter's distribution, normalized to ``{kind: ..., (log)}``."""
    if not isinstance(value, dict):
        v.error(path, f"expected a mapping such as {{values: [...]}} or {{loguniform: [low, "
                      f"high]}}, got {r._show(value)}")
        return None
    for key in value:
        if key not in KINDS + ("log",):
            v.error(path + [key], r.unknown_key_message(key, KINDS + ("log",)))
    kinds = [k for k in KINDS if k in value]
    if len(kinds) != 1:
        v.error(path, f"expected exactly one of {', '.join(KINDS)}, got "
                      f"{', '.join(kinds) if kinds else 'none'}")
        return None
    kind = kinds[0]
    if "log" in value and kind != "int":
        v.error(path + ["log"], f"log applies to int ranges only (use loguniform for numbers)")
    out = {}
    if kind == "values":
        if not isinstance(value["values"], list) or not value["values"]:
            v.error(path + ["values"], f"expected a non-empty list, got "
                                       f"{r._show(value['values'])}")
            return None
        out["values"] = copy.deepcopy(value["values"])
    elif kind == "int":
        log = value.get("log", False)
        if not isinstance(log, bool):
            v.error(path + ["log"], f"expected true or false, got {r._show(log)}")
        out["int"] = _range(v, value["int"], path + ["int"], integer=True, positive=log is True)
        out["log"] = log is True
    else:
        out[kind] = _range(v, value[kind], path + [kind], positive=kind == "loguniform")
    return out if all(x is not None for x in out.values()) else None


def _parameters(v, value, path, present):
    if not isinstance(value, dict) or not value:
        v.error(path, f"expected a mapping of --set key paths to distributions, got "
                      f"{r._show(value)}")
        return {}
    out = {}
    for key, dist in value.items():
        try:
            parse_key_path(str(key))
        except ConfigError as exc:
            v.error(path + [Key(key)], exc.errors[0][1].replace("--set: ", ""))
            continue
        out[str(key)] = _parameter(v, dist, path + [Key(key)])
    return out


def _set(v, value, path, present):
    if not isinstance(value, dict):
        v.error(path, f"expected a mapping of --set key paths to values, got {r._show(value)}")
        return {}
    for key in value:
        try:
            parse_key_path(str(key))
        except ConfigError as exc:
            v.error(path + [Key(key)], exc.errors[0][1].replace("--set: ", ""))
    return {str(k): copy.deepcopy(x) for k, x in value.items()}


def resolve_spec(raw, *, path: pathlib.Path | None = None, overrides=()) -> Spec:
    """Validate ``raw`` (a parsed spec) and fill in defaults; ``overrides`` are ``--set``
    strings for the base config, applied after the spec's ``set``."""
    source = str(path) if path else None
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping at the top level, got {r._show(raw)}",
                          file=source)
    v = SpecValidator()
    sections = {"metric": METRIC, "executor": EXECUTOR}
    handlers = {"parameters": lambda value, p, present: _parameters(v, value, p, present),
                "set": lambda value, p, present: _set(v, value, p, present),
                "section": lambda value, p, present: v.section(value, sections[p[-1]], p, {})}
    data = v.section(raw, TOP, [], handlers)
    if v.errors:
        raise ConfigError(v.errors, file=source)
    _cross_checks(v, data)
    if v.errors:
        raise ConfigError(v.errors, file=source)
    base = path.parent if path else pathlib.Path.cwd()
    data["config"] = str((base / data["config"]).resolve())
    if data["name"] is None:
        data["name"] = path.stem if path else "sweep"
    data["overrides"] = list(overrides)
    if data["metric"]["goal"] == "auto":
        from dlcli.train.metrics import HIGHER_IS_BETTER
        data["metric"]["goal"] = "max" if data["metric"]["name"] in HIGHER_IS_BETTER else "min"
    return Spec(data=data, path=path)


def _cross_checks(v, data) -> None:
    params, method = data["parameters"], data["method"]
    for key in data["set"]:
        if key in params:
            v.error(["set", Key(key)], "is also a swept parameter; keep it in one place")
    if method in ("random", "tpe") and data["trials"] is None:
        v.error(["trials"], f"method {method} needs the number of trials")
    if method == "grid":
        others = [k for k, d in params.items() if "values" not in d]
        for key in others:
            v.error(["parameters", Key(key)], "method grid takes {values: [...]} only; use "
                                         "random or tpe for ranges")
        size = math.prod(len(d["values"]) for d in params.values() if "values" in d)
        if not others and data["trials"] is not None and data["trials"] > size:
            v.error(["trials"], f"the grid has only {size} points, got {data['trials']}")
    if method == "tpe" and importlib.util.find_spec("optuna") is None:
        v.error(["method"], "tpe needs Optuna: pip install 'dlcli[tpe]'")
    executor = data["executor"]
    if executor["type"] == "local" and executor["address"] is not None:
        v.error(["executor", "address"], "only a dask executor takes an address")
    if executor["type"] == "dask" and importlib.util.find_spec("distributed") is None:
        v.error(["executor", "type"], "dask needs Dask.distributed: pip install 'dlcli[dask]'")


def load_spec(path, overrides=()) -> Spec:
    path = pathlib.Path(path)
    raw = loader.load_file(path)
    return resolve_spec(raw, path=path, overrides=overrides)


# ---- trial configs ------------------------------------------------------------------------
def as_override(key: str, value) -> str:
    """``key=value`` for :func:`apply_overrides`; JSON is YAML and floats round-trip exactly."""
    return f"{key}={json.dumps(value)}"


def trial_raw_config(spec: Spec, values: dict) -> dict:
    """The base config's raw document with the spec's ``set``, ``--set`` and ``values``."""
    raw = loader.load_file(spec["config"])
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping at the top level", file=spec["config"])
    overrides = [as_override(k, x) for k, x in spec["set"].items()]
    overrides += list(spec["overrides"])
    overrides += [as_override(k, x) for k, x in values.items()]
    return apply_overrides(raw, overrides)


def trial_config(spec: Spec, values: dict, *, check_data=True):
    """The resolved and validated Config of one trial (data read to check shapes and the
    metric, as ``dlcli train`` would before its first step)."""
    from dlcli.config.resolve import resolve
    from dlcli.train.metrics import monitorable
    from dlcli.train.build import prepare

    config = resolve(trial_raw_config(spec, values), path=pathlib.Path(spec["config"]))
    if check_data:
        prep = prepare(config)
        names = monitorable(prep.task, bool(len(prep.splits.x_val)))
        name = spec["metric"]["name"]
        if name not in names:
            hint = r.unknown_key_message(name, names).replace("unknown key", "")
            raise ConfigError([("metric.name", f"{prep.task} runs log no metric {name!r}"
                                               f"{hint}")], file=spec.source)
    return config


def _owner(spec: Spec, config_path: str) -> list | None:
    """The spec key (``parameters[k]`` or ``set[k]``) that reaches config key ``config_path``."""
    for section in ("parameters", "set"):
        for key in spec[section]:
            if key == config_path or key.startswith((config_path + ".", config_path + "[")):
                return [section, Key(key)]
    return None


def check_trials(spec: Spec, trials: list[tuple[int, dict]]) -> list:
    """Resolve every trial's config; raise one ConfigError listing each distinct problem
    (under the spec key that causes it, or the first trial that shows it). Returns the
    configs."""
    configs, v, seen = [], SpecValidator(), set()
    for number, values in trials:
        try:
            configs.append(trial_config(spec, values))
        except DlcliError as exc:
            configs.append(None)
            parts = exc.errors if isinstance(exc, ConfigError) else [("", exc.message)]
            where = getattr(exc, "file", None) or exc.where or spec["config"]
            for key, message in parts:
                message = message.removeprefix("--set ")
                if not key and ": " in message:  # apply_overrides: "<key path>: <problem>"
                    head, rest = message.split(": ", 1)
                    if _owner(spec, head):
                        key, message = head, rest
                path = _owner(spec, key) if key else None
                if where == spec.source:
                    path = [key] if key else path
                    text = message
                else:
                    text = f"{where}: {key}: {message}" if key else f"{where}: {message}"
                if text in seen:
                    continue
                seen.add(text)
                if path is None:
                    shown = ", ".join(f"{k}={json.dumps(x)}" for k, x in values.items())
                    v.error([f"trial {number}"], f"{text} (with {shown})")
                else:
                    v.error(path, text)
    if v.errors:
        raise ConfigError(v.errors, file=spec.source)
    return configs

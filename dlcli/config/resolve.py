"""Validate a raw config into a fully resolved one, collecting every error of a pass."""

import copy
import inspect
import pathlib
import re
from dataclasses import dataclass, field

from dlcli import rules as r
from dlcli.config import loader
from dlcli.config.build import (USUAL_PAIRS, build_model, compute_dtype, infer_task,  # noqa: F401
                                pairing_warnings, to_internal_shape)
from dlcli.config.keypaths import (apply_overrides, flatten_keys, format_path,  # noqa: F401
                                   parse_key_path)
from dlcli.config.schema import (DATA, EARLY_STOPPING, LAYER_NAME, MODEL, REQUIRED, TOP,
                                 TRAINING)
from dlcli.errors import ConfigError
from dlcli.registry import ACTIVATIONS, INITIALIZERS, LAYERS, LOSSES, OPTIMIZERS


@dataclass
class Config:
    """A validated config: ``data`` holds every key with its default filled in."""

    data: dict
    path: pathlib.Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def base_dir(self) -> pathlib.Path:
        return self.path.parent if self.path else pathlib.Path.cwd()

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "<config>"

    def __getitem__(self, key):
        return self.data[key]


# ---- validation --------------------------------------------------------------------
class _Validator:
    def __init__(self):
        self.errors: list[tuple[str, str]] = []

    def error(self, path, message):
        self.errors.append((format_path(path), message))

    def section(self, raw, schema, path, handlers):
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.error(path, f"expected a mapping, got {r._show(raw)}")
            return {}
        out = {}
        for key in raw:
            if key not in schema:
                self.error(path + [key], _unknown_key(path, key, schema))
        for key, (rule, default) in schema.items():
            present = key in raw
            if not present and default is REQUIRED:
                self.error(path + [key], "required key is missing")
                continue
            value = raw[key] if present else copy.deepcopy(default)
            if isinstance(rule, str):
                out[key] = handlers[rule](value, path + [key], present)
                continue
            if not present and default is None:
                out[key] = None
                continue
            try:
                out[key] = rule(value)
            except r.Invalid as exc:
                self.error(path + [key], str(exc))
        return out


def _unknown_key(path, key, known) -> str:
    """The unknown-key message, pointing a misplaced well-known key to its place."""
    from dlcli.config.schema import misplaced

    target = misplaced(format_path(path), key)
    if target is not None:
        return f"unknown key here; did you mean {target}? (dlcli reads it there)"
    return r.unknown_key_message(key, known)


def _load_engine() -> None:
    from dlcli.nn import initializers, losses, optim  # noqa: F401
    from dlcli.nn.model import load_layer_modules
    load_layer_modules()


def _signature_defaults(callable_) -> dict:
    params = inspect.signature(callable_).parameters
    return {k: (p.default if p.default is not inspect.Parameter.empty else REQUIRED)
            for k, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def _activation_spec(v, value, path):
    """A name or ``{type: name, **options}``; returns the normalized spec."""
    if isinstance(value, str):
        value = ACTIVATIONS.canonical(value)
        if value not in ACTIVATIONS:
            v.error(path, ACTIVATIONS.unknown_message(value))
        return value
    if isinstance(value, dict):
        value = {**value, "type": ACTIVATIONS.canonical(value.get("type"))}
        name = value.get("type")
        if name not in ACTIVATIONS:
            v.error(path + ["type"], ACTIVATIONS.unknown_message(name))
            return value
        return _options(v, value, path, ACTIVATIONS.get(name), skip=("name",))
    v.error(path, f"expected an activation name or a mapping with a type, got {r._show(value)}")
    return value


def _options(v, raw, path, cls, skip=()) -> dict:
    """Check ``raw``'s keys (besides type) against ``cls``'s constructor signature and the
    rules it declares (``RULES``, ``RELATIONS``); a name, activation or initializer against
    the layer-name rule and the registries."""
    defaults = {k: d for k, d in _signature_defaults(cls).items() if k not in skip}
    out = {"type": raw["type"]}
    for key in raw:
        if key != "type" and key not in defaults:
            v.error(path + [key], r.unknown_key_message(key, list(defaults) + ["type"]))
    values = {}
    for key, default in defaults.items():
        if key in raw:
            values[key] = raw[key]
        elif default is REQUIRED:
            v.error(path + [key], "required key is missing")
        else:
            values[key] = default
    named = {"name": LAYER_NAME, "initializer": r.registry_name(INITIALIZERS)}
    own = {k: val for k, val in values.items() if k not in named and k != "activation"}
    clean, problems = r.check(cls.RULES, own, cls.RELATIONS)
    named_clean, named_problems = r.check(named, {k: raw[k] for k in named if k in values
                                                  and k in raw})
    clean.update(named_clean)
    for key, message in problems + named_problems:
        v.error(path + [key], message)
    for key in defaults:
        if key == "activation" and key in values:
            value = values[key]
            out[key] = None if value is None else _activation_spec(v, value, path + [key])
        elif key in clean:
            out[key] = clean[key]
        elif key in values:
            out[key] = values[key]
    return out


def _layers(v, value, path, present):
    if not isinstance(value, list) or not value:
        v.error(path, f"expected a non-empty list of layers, got {r._show(value)}")
        return []
    out = []
    for i, raw in enumerate(value):
        lpath = path + [i]
        if not isinstance(raw, dict):
            v.error(lpath, f"expected a mapping with a type, got {r._show(raw)}")
            continue
        kind = LAYERS.canonical(raw.get("type"))
        if kind != raw.get("type"):
            raw = {**raw, "type": kind}
        if kind not in LAYERS:
            v.error(lpath + ["type"], LAYERS.unknown_message(kind) if kind is not None
                    else "required key is missing")
            continue
        if kind == "activation":
            spec = {k: val for k, val in raw.items() if k not in ("type", "name")}
            act = spec.pop("activation", None)
            if act is None:
                v.error(lpath + ["activation"], "required key is missing")
                continue
            if spec and isinstance(act, str):
                # Options sit beside ``activation`` in the layer: their paths say so.
                kind = ACTIVATIONS.canonical(act)
                if kind not in ACTIVATIONS:
                    v.error(lpath + ["activation"], ACTIVATIONS.unknown_message(kind))
                    continue
                act_spec = _options(v, {"type": kind, **spec}, lpath, ACTIVATIONS.get(kind),
                                    skip=("name",))
            else:
                act_spec = _activation_spec(v, {"type": act, **spec} if spec else act,
                                            lpath + ["activation"])
            entry = {"type": "activation", "name": raw.get("name")}
            if entry["name"] is not None:
                try:
                    entry["name"] = LAYER_NAME(entry["name"])
                except r.Invalid as exc:
                    v.error(lpath + ["name"], str(exc))
            if isinstance(act_spec, dict):
                entry.update({k: val for k, val in act_spec.items() if k != "type"})
                entry["activation"] = act_spec["type"]
            else:
                entry["activation"] = act_spec
            out.append(entry)
            continue
        entry = _options(v, raw, lpath, LAYERS.get(kind))
        if entry.get("initializer") == "he" and "initializer" not in raw:
            act = entry.get("activation")
            act_name = act.get("type") if isinstance(act, dict) else act
            if act_name in ("sigmoid", "tanh", "softmax", "identity", None):
                entry["initializer"] = "xavier"  # notes 1.9: Xavier for tanh/sigmoid layers
        out.append(entry)
    names = [e.get("name") for e in out if e.get("name")]
    for name in {n for n in names if names.count(n) > 1}:
        v.error(path, f"layer name {name!r} is used more than once")
    if len(out) == len(value):
        from dlcli.nn.model import default_names
        for entry, name in zip(out, default_names(out)):
            entry["name"] = name
    return out


def _loss(v, value, path, present):
    if value is None and not present:  # only where the loss is optional (dlcli shapes)
        return None
    try:
        return r.registry_name(LOSSES)(value)
    except r.Invalid as exc:
        v.error(path, str(exc))
        return value


def _optimizer(v, value, path, present):
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        v.error(path, f"expected a mapping with a type, got {r._show(value)}")
        return {}
    kind = OPTIMIZERS.canonical(value.get("type", "adam"))
    if kind not in OPTIMIZERS:
        v.error(path + ["type"], OPTIMIZERS.unknown_message(kind))
        return value
    cls = OPTIMIZERS.get(kind)
    defaults = cls.hyperparameters()
    for key in value:
        if key != "type" and key not in defaults:
            v.error(path + [key], _unknown_key(path, key, list(defaults) + ["type"]))
    given = {key: value.get(key, default) for key, default in defaults.items()}
    clean, problems = r.check(cls.RULES, given, cls.RELATIONS)
    for key, message in problems:
        v.error(path + [key], message)
    return {"type": kind, **clean}


def _schedule(v, value, path, present):
    if value is None:
        return None
    from dlcli.config.schedule import validate_schedule
    resolved, errors = validate_schedule(value)
    for sub, message in errors:
        v.error(path + sub, message)
    return resolved


def _early_stopping(v, value, path, present):
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    return v.section(value, EARLY_STOPPING, path, {})


def _parallel(v, value, path, present):
    if value is None:
        return None
    from dlcli.config.schema import PARALLEL
    return v.section(value, PARALLEL, path, {})


def resolve(raw, *, path: pathlib.Path | None = None, partial: bool = False) -> Config:
    """Validate ``raw`` (a parsed YAML document) and fill in every default.

    ``partial`` (``dlcli shapes``): ``data`` and ``model.loss`` may be left out; the data
    are then needed only when ``model.input_shape`` is not given."""
    _load_engine()
    source = str(path) if path else None
    if raw is None:
        raise ConfigError("the file is empty; a config needs at least data and model",
                          file=source)
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping at the top level, got {r._show(raw)}",
                          file=source)
    v = _Validator()
    handlers = {
        "layers": lambda value, p, present: _layers(v, value, p, present),
        "loss": lambda value, p, present: _loss(v, value, p, present),
        "optimizer": lambda value, p, present: _optimizer(v, value, p, present),
        "early_stopping": lambda value, p, present: _early_stopping(v, value, p, present),
        "schedule": lambda value, p, present: _schedule(v, value, p, present),
        "parallel": lambda value, p, present: _parallel(v, value, p, present),
        "section": None,
    }
    sections = {"data": DATA, "model": MODEL, "training": TRAINING}
    top = TOP
    if partial:
        top = {**TOP, "data": ("section", {})}
        sections["data"] = {**DATA, "source": (r.optional(r.string), None)}
        sections["model"] = {**MODEL, "loss": ("loss", None)}

    def section_handler(value, p, present):
        return v.section(value, sections[p[-1]], p, handlers)

    handlers["section"] = section_handler
    data = v.section(raw, top, [], handlers)
    if partial and not v.errors and data["data"]["source"] is None \
            and data["model"]["input_shape"] is None:
        v.error(["data", "source"], "required to learn the input shape, unless "
                "model.input_shape is given")
    if not v.errors:
        _synthetic_params(v, data["data"])
    if v.errors:
        raise ConfigError(v.errors, file=source)
    if data.get("name") is None:
        data["name"] = path.stem if path else "run"
    config = Config(data=_ordered(data), path=path)
    _check_model(config)
    return config


def _synthetic_params(v, data: dict) -> None:
    """``data.params`` of a synthetic source, checked against its generator's signature."""
    source = data.get("source")
    if not isinstance(source, str) or not source.startswith("synthetic:"):
        return
    from dlcli.data.synthetic import validate_params
    from dlcli.registry import DATASETS
    name = source[len("synthetic:"):]
    if name not in DATASETS:
        v.error(["data", "source"], DATASETS.unknown_message(name))
        return
    data["params"], problems = validate_params(name, data.get("params") or {})
    for key, problem in problems:
        v.error(["data", "params"] + ([key] if key else []), problem)


def _ordered(data: dict) -> dict:
    order = ["name", "seed", "task", "dtype", "data", "model", "training"]
    return {k: data[k] for k in order if k in data}


def _layer_error(index: int, layer_cfg: dict, message: str) -> tuple[str, str]:
    """A layer's own complaint with the full key path: a message about one of its keys
    ("padding must be ...") points at ``model.layers[i].padding``."""
    key, _, rest = message.partition(" ")
    if key in layer_cfg and key != "type" and rest:
        return f"model.layers[{index}].{key}", rest
    return f"model.layers[{index}]", message


def _check_model(config: Config) -> None:
    """Build the layer objects (catching bad values) and walk shapes when possible."""
    from dlcli.nn.model import build_layer

    layers_cfg = config["model"]["layers"]
    errors = []
    for i, layer_cfg in enumerate(layers_cfg):
        try:
            # Each layer alone, unlinked: a maxunpool2d's pool is another layer, checked
            # when the whole model is built.
            build_layer(layer_cfg)
        except r.InvalidValues as exc:
            errors.extend((f"model.layers[{i}].{key}", message) for key, message in exc.problems)
        except (ValueError, TypeError) as exc:
            errors.append(_layer_error(i, layer_cfg, str(exc)))
    if errors:
        raise ConfigError(errors, file=config.source)
    shape = config["model"]["input_shape"]
    if shape is not None:
        build_model(config, to_internal_shape(shape))


def load_config(path, overrides: list[str] = (), *, partial: bool = False) -> Config:
    """Load, override and resolve a config file (``partial``: see :func:`resolve`)."""
    path = pathlib.Path(path)
    raw = loader.load_file(path)
    if overrides:
        if not isinstance(raw, dict):
            raise ConfigError("expected a mapping at the top level", file=str(path))
        raw = apply_overrides(raw, list(overrides))
    return resolve(raw, path=path, partial=partial)

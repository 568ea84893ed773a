"""Key paths: ``model.layers[2].units`` parsed, rendered, flattened, and ``--set`` overrides."""

import copy
import pathlib
import re

from dlcli.config import loader
from dlcli.errors import ConfigError


_PATH_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def parse_key_path(path: str) -> list:
    """``model.layers[2].units`` -> ['model', 'layers', 2, 'units']."""
    parts, pos = [], 0
    while pos < len(path):
        dotted = path[pos] == "." and bool(parts)
        if dotted:
            pos += 1
        m = _PATH_TOKEN.match(path, pos)
        # A key after an earlier part needs its dot: "layers[1]units" is a typo.
        if not m or (parts and m.group(1) is not None and not dotted):
            raise ConfigError(f"--set: cannot parse key path {path!r} at position {pos}; "
                              "write keys with dots and list items with brackets, e.g. "
                              "model.layers[1].units")
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not parts:
        raise ConfigError(f"--set: empty key path in {path!r}")
    return parts


# Keys holding file paths: relative ones in a file are read from the file's folder.
PATH_KEYS = ("data.source", "model.init_from")


def portable(config: "Config") -> dict:
    """``config.data`` with its file paths made absolute, so the printed config (``dlcli
    config``) and a run's stored copy work from any directory."""
    import json

    data = json.loads(json.dumps(config.data))
    source = data["data"]["source"]
    if not source.startswith("synthetic:"):
        data["data"]["source"] = str((config.base_dir / source).resolve())
    if data["model"]["init_from"]:
        data["model"]["init_from"] = str((config.base_dir / data["model"]["init_from"]).resolve())
    return data


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` strings; values are parsed as YAML (``lr=1e-3`` is a float)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        path_text, value_text = item.split("=", 1)
        parts = parse_key_path(path_text.strip())
        value = loader.parse_scalar(value_text)
        if format_path(parts) in PATH_KEYS and isinstance(value, str) and value \
                and not value.startswith("synthetic:"):
            # A path typed on the command line means a file seen from the shell's
            # working directory, not from the config's folder.
            value = str(pathlib.Path(value).expanduser().absolute())
        node = raw
        for i, part in enumerate(parts[:-1]):
            nxt = parts[i + 1]
            where = format_path(parts[: i + 1])
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    raise ConfigError(f"--set {path_text}: {where} does not exist")
                node = node[part]
            else:
                if not isinstance(node, dict):
                    raise ConfigError(f"--set {path_text}: {where} is not a mapping")
                if part not in node or node[part] is None:
                    node[part] = [] if isinstance(nxt, int) else {}
                node = node[part]
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last >= len(node):
                raise ConfigError(f"--set {path_text}: index {last} does not exist")
        elif not isinstance(node, dict):
            raise ConfigError(f"--set {path_text}: {format_path(parts[:-1])} is not a mapping")
        node[last] = value
    return raw


def flatten_keys(value, prefix: str = "") -> dict:
    """``{"training.optimizer.lr": 0.001, "model.layers[1].units": 128, ...}``.

    Mappings become dotted keys and lists of mappings indexed keys; other lists are leaves.
    """
    out = {}
    if isinstance(value, dict):
        if not value and prefix:
            out[prefix] = {}
        for key, item in value.items():
            out.update(flatten_keys(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        if not value:
            out[prefix] = []
        for i, item in enumerate(value):
            out.update(flatten_keys(item, f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


def format_path(parts) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text

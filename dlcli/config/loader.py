"""Safe YAML loading with the traps of YAML 1.1 handled.

* only ``yaml.SafeLoader`` semantics: a ``!!python/...`` tag is an error naming the line;
* ``1e-3`` (a string under YAML 1.1) is read as the float it looks like;
* a key given twice in one mapping is an error naming the key and both lines;
* a document whose aliases expand beyond ``MAX_NODES`` values is refused (alias bombs).
"""

import re

import yaml

from dlcli.errors import ConfigError

MAX_NODES = 100_000
MAX_BYTES = 5_000_000

_FLOAT = re.compile(r"""^[-+]?(
      [0-9][0-9_]*\.[0-9_]*([eE][-+]?[0-9]+)?
    | [0-9][0-9_]*[eE][-+]?[0-9]+
    | \.[0-9_]+([eE][-+]?[0-9]+)?
    | \.(inf|Inf|INF) | \.(nan|NaN|NAN))$""", re.X)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float and rejects duplicate keys."""


# Replace the float resolver so exponents without a dot are floats (YAML 1.2 behaviour).
_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:  # ``<<: *base``: merged keys may be overridden here
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if isinstance(key, (list, dict)):
            raise ConfigError(f"line {line}: a key must be a plain value, got {key!r}")
        if key in seen:
            raise ConfigError(
                f"line {line}: duplicate key {key!r} (first given on line {seen[key]})")
        seen[key] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse(text: str):
    """One document through ``_Loader`` (a SafeLoader: no tag can construct a Python object)."""
    parser = _Loader(text)
    try:
        return parser.get_single_data()
    finally:
        parser.dispose()


MAX_DEPTH = 50  # far deeper than any config; Python's recursion would fail near 1000


def _count_nodes(value, limit: int) -> tuple[int, int]:
    """Count values with aliases expanded, stopping as soon as ``limit`` is passed; and the
    deepest nesting seen."""
    count, deepest, stack = 0, 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        deepest = max(deepest, depth)
        if count > limit:
            return count, deepest
        if isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item.keys())
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return count, deepest


def loads(text: str, source: str = "<string>"):
    """Parse one YAML document; every problem is a ConfigError naming ``source``."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"file is larger than {MAX_BYTES} bytes", file=source)
    try:
        value = _parse(text)
    except RecursionError:
        raise ConfigError(f"nested too deeply (more than {MAX_DEPTH} levels); refused",
                          file=source) from None
    except ConfigError as exc:
        exc.file = source
        raise
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark else ""
        problem = exc.problem or str(exc)
        if "python/" in problem:
            problem = (f"{problem}; dlcli reads YAML with a safe loader and refuses "
                       "tags that would run code")
        raise ConfigError(f"{where}{problem}", file=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}invalid YAML: {problem}", file=source) from None
    count, depth = _count_nodes(value, MAX_NODES)
    if count > MAX_NODES:
        raise ConfigError(
            f"document expands to more than {MAX_NODES} values through aliases; refused",
            file=source)
    if depth > MAX_DEPTH:
        raise ConfigError(f"nested too deeply (more than {MAX_DEPTH} levels); refused",
                          file=source)
    return value


def load_file(path) -> object:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("config file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", file=str(path)) from None
    return loads(text, str(path))


def parse_scalar(text: str):
    """Parse a ``--set`` value with the same rules as the YAML file."""
    return loads(text, "--set") if text.strip() else ""

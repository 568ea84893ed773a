"""The package's shape (DESIGN.md): no import cycles among dlcli's modules, and no file in
dlcli/ over 400 lines (one family per file)."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dlcli"
MAX_LINES = 400


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, path: pathlib.Path) -> set[str]:
    """The dlcli modules that importing ``name`` (or calling any of its functions) imports,
    each with the packages whose ``__init__`` runs first: function-level imports count too,
    since a cycle through them is a cycle of dependencies all the same."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        for target in targets:
            parts = target.split(".")
            for i in range(2, len(parts) + 1):  # the packages on the way run their __init__
                prefix = ".".join(parts[:i])
                if prefix in MODULES and prefix != name:
                    found.add(prefix)
    return found


def test_no_import_cycles():
    graph = {name: imported_modules(name, path) for name, path in MODULES.items()}
    # A package's __init__ may import its own modules (re-exports); a module importing its
    # package is then not a cycle of substance, so edges into one's own package are dropped.
    for name, edges in graph.items():
        edges -= {p for p in edges if name.startswith(p + ".")}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=module_name)
def test_no_file_over_the_limit(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (limit {MAX_LINES})"


# The engine's speed tricks stay with their owners: the fused steps and the layout a
# convolution hands a pooling over in (nn/fusion.py and the kernel that defines it), the
# packed buffers and the execution plan (nn/model.py). Nothing else names their classes or
# reaches for their private attributes; the rest of dlcli sees plain layers and a model.
FUSION = {"dlcli.nn.fusion", "dlcli.nn.functional.conv_stride1"}
OWNED_NAMES = {"ConvThenPool": FUSION, "PoolThenReLU": FUSION, "WideOutput": FUSION,
               "WideGradient": FUSION,
               "wide_for": FUSION | {"dlcli.nn.functional.conv"}}
MODEL = {"dlcli.nn.model"}
OWNED_ATTRIBUTES = {"_plan": set(), "_plans": MODEL, "_attached": MODEL, "_layer_of": MODEL, "_flat": MODEL,
                    "_pack_parameters": MODEL, "__array_interface__": set()}


def names_used(path: pathlib.Path) -> tuple[set[str], set[str]]:
    """(identifiers, attribute names) a module's code uses: names, imported names,
    keyword arguments and parameters; attributes read or written on any object."""
    names, attributes = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
            attributes.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.name.rpartition(".")[2])
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names, attributes


def test_only_the_owners_name_the_fused_steps_and_the_packing_internals():
    found = []
    for name, path in MODULES.items():
        names, attributes = names_used(path)
        found += [f"{name} names {n}" for n in sorted(names & set(OWNED_NAMES))
                  if name not in OWNED_NAMES[n]]
        found += [f"{name} reads .{a}" for a in sorted(attributes & set(OWNED_ATTRIBUTES))
                  if name not in OWNED_ATTRIBUTES[a]]
    assert not found, "\n".join(found)

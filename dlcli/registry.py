"""Name -> class registries, one per kind (layers, activations, losses, ...)."""

import difflib


class Registry:
    """Maps short snake_case names to classes or callables of one kind."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict = {}

    def register(self, name: str, obj=None):
        """Register ``obj`` under ``name``; usable as a decorator."""

        def add(target):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = target
            return target

        return add(obj) if obj is not None else add

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str):
        """Return the entry for ``name`` or raise KeyError with a helpful message."""
        if name not in self:
            raise KeyError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name) -> str:
        msg = f"unknown {self.kind} {name!r}"
        close = difflib.get_close_matches(str(name), self.names(), n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        return msg + f"; known: {', '.join(self.names())}"


LAYERS = Registry("layer type")
ACTIVATIONS = Registry("activation")
LOSSES = Registry("loss")
OPTIMIZERS = Registry("optimizer")
INITIALIZERS = Registry("initializer")
DATASETS = Registry("dataset")
SCHEDULES = Registry("schedule")

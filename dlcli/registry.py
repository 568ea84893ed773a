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

    def canonical(self, name):
        """The registered name ``name`` stands for: itself, the same name in another case or
        without ``_``/``-`` (``ReLU``, ``LeakyReLU``, ``max_pool2d``), or a documented alias
        (:data:`ALIASES`, e.g. ``linear`` -> ``identity``); ``name`` unchanged when none."""
        if not isinstance(name, str) or name in self._entries:
            return name
        key = _squash(name)
        alias = ALIASES.get(self.kind, {}).get(key)
        if alias is not None and alias in self._entries:
            return alias
        matches = [n for n in self._entries if _squash(n) == key]
        return matches[0] if len(matches) == 1 else name

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


def _squash(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(" ", "")


# Names Keras and PyTorch users write, by registry kind (keys squashed: lower case, no _ or -).
ALIASES = {
    "layer type": {"linear": "dense", "maxpooling2d": "maxpool2d", "averagepooling2d": "avgpool2d",
                   "avgpooling2d": "avgpool2d", "conv2dtranspose": "conv_transpose2d",
                   "convtranspose2d": "conv_transpose2d", "maxunpooling2d": "maxunpool2d"},
    "activation": {"linear": "identity", "none": "identity", "step": "binary_step",
                   "heaviside": "binary_step", "logistic": "sigmoid"},
    "loss": {"sparsecategoricalcrossentropy": "categorical_crossentropy",
             "crossentropyloss": "categorical_crossentropy",
             "bce": "binary_crossentropy", "bceloss": "binary_crossentropy",
             "meansquarederror": "mse", "mseloss": "mse"},
    "optimizer": {"sgdmomentum": "momentum"},
    "initializer": {"glorotnormal": "xavier", "henormal": "he", "kaimingnormal": "he",
                    "zero": "zeros"},
}


LAYERS = Registry("layer type")
ACTIVATIONS = Registry("activation")
LOSSES = Registry("loss")
OPTIMIZERS = Registry("optimizer")
INITIALIZERS = Registry("initializer")
DATASETS = Registry("dataset")
SCHEDULES = Registry("schedule")

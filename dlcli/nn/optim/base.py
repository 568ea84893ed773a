"""The optimizer base class: hyperparameters (checked when constructed), one state dict per
parameter key, the packed step over a model's contiguous buffers, and checkpoints."""

from __future__ import annotations

import inspect

import numpy as np

from dlcli import rules as r
from dlcli.nn import blas
from dlcli.registry import OPTIMIZERS


# ---- optimizer classes ---------------------------------------------------------------------


def _registered(name: str):
    def add(cls):
        cls.type_name = name
        return OPTIMIZERS.register(name, cls)

    return add


class Optimizer:
    """Base class: hyperparameters plus one state dict per parameter key.

    The trainer calls ``step([(key, param, grad), ...])`` once per batch; ``param`` is
    updated in place and its state (``self.state[key]``) is created at its first step.
    ``lr`` is a plain attribute that a schedule may change between steps; the other
    hyperparameters are attributes of the same names. Subclasses implement ``_update``
    and list their state entries in ``state_names``; every hyperparameter is a
    keyword argument of ``__init__`` with its default (see :meth:`hyperparameters`).
    """

    type_name = "optimizer"
    state_names: tuple[str, ...] = ()
    #: The rules of the hyperparameters, as data (:mod:`dlcli.rules`), which config
    #: validation and the constructor both apply.
    RULES: dict = {"lr": r.nonnegative_number}
    RELATIONS: tuple = ()

    def __init__(self, **hyperparameters):
        """Check ``hyperparameters`` against :attr:`RULES` and set each as an attribute."""
        for name, value in r.enforce(self.RULES, hyperparameters, self.RELATIONS).items():
            setattr(self, name, value)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._scratch: dict[str, dict[str, np.ndarray]] = {}  # work arrays, not checkpointed
        self._packed = None  # see _step_packed: None (not yet), False (never) or its layout
        self._shared_step = None  # the 0-d step count all keys share while packed

    # ---- introspection --------------------------------------------------------------------
    @classmethod
    def hyperparameters(cls) -> dict:
        """``{name: default}`` for every hyperparameter, from ``__init__``'s signature."""
        return {
            name: p.default
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    def get_config(self) -> dict:
        """``{"type": name, **hyperparameters}``; ``OPTIMIZERS.get(type)(**rest)`` rebuilds it."""
        config = {"type": self.type_name}
        for name in self.hyperparameters():
            value = getattr(self, name)
            config[name] = list(value) if isinstance(value, tuple) else value
        return config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({args})"

    # ---- stepping -------------------------------------------------------------------------
    def step(self, params, flat=None) -> None:
        """Update every ``(key, param, grad)`` of ``params`` in place.

        ``flat``, optional, is the model's packing (``Model.flat_buffers()``): two contiguous
        buffers that hold exactly the ``params`` and their gradients, laid end to end in
        ``flat.keys`` order at ``flat.slices``. When ``params`` are those views, in that order, the update
        runs once over the whole buffers, with the state kept in buffers of the same layout
        whose slices are each key's ``state`` arrays: the same arithmetic, element for
        element, as one call per parameter, without the per-call overhead (SGD alone may
        round differently: from ``blas.MIN_SIZE`` values an array goes through BLAS's fused
        multiply-adds, so a packed buffer and its smaller slices can take different routes).
        Anything else takes the per-parameter loop.
        """
        lr = float(self.lr)
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0; got {self.lr!r}")
        if flat is not None and self._step_packed(params, flat, lr):
            return
        if self._packed:
            self._packed = None
        if self._shared_step is not None:  # each key counts its own steps again
            self._shared_step = None
            for entries in self.state.values():
                if "step" in entries:
                    entries["step"] = np.array(entries["step"], copy=True)
        for key, param, grad in params:
            state = self.state.setdefault(key, {})
            scratch = self._scratch.setdefault(key, {})
            self._update(param, grad, state, scratch, lr)

    def _step_packed(self, params, flat, lr) -> bool:
        """One update over the packed buffers; False (nothing done) when ``params`` are not
        exactly the buffers' views in order, or when the state does not pack: keys whose
        state entries or step counts differ (e.g. a checkpoint made with other parameters)."""
        if self._packed is False:  # the state does not pack (until load_state_dict)
            return False
        flat_param, flat_grad = flat.params, flat.grads
        keys = tuple(key for key, _, _ in params)
        if keys != tuple(flat.keys):
            return False
        for _, param, grad in params:
            if param.base is not flat_param or grad.base is not flat_grad:
                return False  # e.g. a layer rebuilt after its model
        packed = self._packed
        if packed is None or packed["param"] is not flat_param or packed["keys"] != keys:
            packed = self._packed = self._pack(flat)
        if packed["state"] is None:
            packed["state"] = self._pack_state(packed)
            if packed["state"] is None:
                self._packed = False
                return False
        state = packed["state"]
        self._update(flat_param, flat_grad, state, packed["scratch"], lr)
        if any(packed["shared"].get(name) is not arr for name, arr in state.items()):
            self._share_state(packed)
        return True

    @staticmethod
    def _pack(flat) -> dict:
        """The packed state's bookkeeping, laid out as the model packed its parameters."""
        return {"param": flat.params, "keys": tuple(flat.keys), "slices": list(flat.slices),
                "state": None, "shared": {}, "scratch": {}}

    def _pack_state(self, packed) -> dict | None:
        """Packed buffers holding the current per-key state (all zero where none yet)."""
        entries = [self.state.get(key, {}) for key in packed["keys"]]
        names = set(entries[0])
        if any(set(e) != names for e in entries):
            return None
        state = {}
        param = packed["param"]
        for name in names:
            if name == "step":
                steps = {int(e["step"]) for e in entries}
                if len(steps) != 1:
                    return None
                state["step"] = np.array(steps.pop(), dtype=np.int64)
                continue
            buf = np.zeros_like(param)
            for e, (start, stop, shape) in zip(entries, packed["slices"]):
                if e[name].shape != shape:
                    return None
                buf[start:stop] = e[name].ravel()
            state[name] = buf
        packed["shared"] = {}
        self._share_state(packed, state)
        return state

    def _share_state(self, packed, state=None) -> None:
        """Point each key's state entries at its slices of the packed state (``step`` is one
        0-d array shared by all keys, until the per-parameter loop runs again)."""
        state = packed["state"] if state is None else state
        for key, (start, stop, shape) in zip(packed["keys"], packed["slices"]):
            entries = self.state.setdefault(key, {})
            for name, arr in state.items():
                entries[name] = arr if name == "step" else arr[start:stop].reshape(shape)
        packed["shared"] = dict(state)
        self._shared_step = state.get("step")

    def _update(self, param, grad, state, scratch, lr) -> None:
        raise NotImplementedError

    def _required_state(self) -> set[str]:
        """State entries every stepped parameter has under the current hyperparameters."""
        return set()

    def parameter_slots(self, params: int, dtype=np.float32) -> int:
        """Parameter-sized arrays this optimizer keeps between steps for a model of ``params``
        values: its state (Adam: two moments) and its reused work arrays. Counted from a fresh
        copy stepped twice, so the figure follows the code. It steps ``min(params,
        blas.MIN_SIZE)`` values: the packed buffer's size as far as the choice between BLAS
        and NumPy passes goes (SGD keeps no work array on the BLAS route)."""
        options = {k: v for k, v in self.get_config().items() if k != "type"}
        probe = type(self)(**options)
        param = np.ones(max(1, min(params, blas.MIN_SIZE)), dtype)
        for _ in range(2):
            probe.step([("p", param, np.full_like(param, 0.5))])
        return sum(1 for a in probe.kept_arrays("p") if a.shape == param.shape)

    def kept_arrays(self, key: str) -> list[np.ndarray]:
        """The arrays kept for parameter ``key`` between steps of the per-parameter path: its
        state and the work arrays its updates reuse (what ``dlcli shapes`` counts)."""
        return [*self.state.get(key, {}).values(), *self._scratch.get(key, {}).values()]

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat copy of the state: ``{"<key>.<entry>": array}`` (steps as int64 0-d arrays)."""
        return {f"{key}.{name}": np.array(arr, copy=True)
                for key, entries in self.state.items() for name, arr in entries.items()}

    def load_state_dict(self, state_dict) -> None:
        """Replace the state with a copy of ``state_dict`` (as made by :meth:`state_dict`).

        Raises ValueError for an entry this optimizer does not know or a parameter whose
        state lacks an entry it needs.
        """
        state: dict[str, dict[str, np.ndarray]] = {}
        for flat_key, value in state_dict.items():
            key, sep, name = str(flat_key).rpartition(".")
            if not sep or not key or name not in self.state_names:
                raise ValueError(
                    f"unknown {self.type_name} state entry {flat_key!r}; expected '<parameter>.<entry>' "
                    f"with entry one of {', '.join(self.state_names) or '(none)'}"
                )
            arr = np.array(value, copy=True)
            if name == "step":
                if arr.shape != () or arr.dtype.kind not in "iuf" or arr != np.floor(arr) or arr < 0:
                    raise ValueError(f"{flat_key} must be a non-negative integer scalar; got {value!r}")
                arr = arr.astype(np.int64)
            elif arr.dtype.kind != "f":
                raise ValueError(f"{flat_key} must be a floating-point array; got dtype {arr.dtype}")
            state.setdefault(key, {})[name] = arr
        required = self._required_state()
        for key, entries in state.items():
            missing = sorted(required - entries.keys())
            if missing:
                raise ValueError(f"{self.type_name} state of {key!r} lacks {', '.join(missing)}")
        self.state = state
        self._packed = None
        self._shared_step = None

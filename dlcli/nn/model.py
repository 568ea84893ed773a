"""A Sequential model of named layers; an activation attached to a layer
(``activation: relu``) becomes an op of its own, ``<layer>.<activation>``, when the model is
made."""

from typing import NamedTuple

import numpy as np

from dlcli.nn import fusion
from dlcli.nn.activations import Activation, make_activation
from dlcli.nn.layers.base import IncompatibleShape, Layer, display_shape, size_of
from dlcli.registry import LAYERS


def load_layer_modules() -> None:
    """Import every module that registers layers (kept out of start-up until needed)."""
    import dlcli.nn.activations  # noqa: F401
    import dlcli.nn.layers.dense  # noqa: F401
    import dlcli.nn.initializers  # noqa: F401
    for module in ("conv", "pooling", "reshape"):
        try:
            __import__(f"dlcli.nn.layers.{module}")
        except ModuleNotFoundError as exc:  # pragma: no cover - only while a module is absent
            if exc.name != f"dlcli.nn.layers.{module}":
                raise


def build_layer(config: dict) -> Layer:
    """Rebuild one layer from its ``get_config()`` (an ``activation`` key stays in its
    config: the model makes it an op of its own, see :func:`attached_activation`)."""
    load_layer_modules()
    config = dict(config)
    kind = config.pop("type")
    return LAYERS.get(kind)(**config)


def attached_activation(layer: Layer) -> Activation | None:
    """The op for the ``activation`` in ``layer``'s config (None for none or identity),
    named ``<layer>.<activation>``: what the model runs after the layer."""
    if isinstance(layer, Activation):
        return None
    spec = layer.get_config().get("activation")
    if spec is None or spec == "identity":
        return None
    op = make_activation(spec)
    op.name = f"{layer.name}.{op.activation_name}"
    return op


def default_names(configs: list[dict]) -> list[str]:
    """``<type><k>`` per type, counted from 1 (dense1, dense2, conv2d1), for unnamed layers."""
    counts: dict[str, int] = {}
    names = []
    taken = {c["name"] for c in configs if c.get("name")}
    for c in configs:
        counts[c["type"]] = counts.get(c["type"], 0) + 1
        name = c.get("name")
        if not name:
            k = counts[c["type"]]
            name = f"{c['type']}{k}"
            while name in taken:
                k += 1
                name = f"{c['type']}{k}"
            taken.add(name)
        names.append(name)
    return names


class Packed(NamedTuple):
    """A model's packed parameters: ``params`` and ``grads`` are contiguous 1-D buffers of
    which every parameter and gradient array is a view, laid end to end in ``keys`` order;
    ``slices[i]`` is ``(start, stop, shape)`` of key i in both buffers."""

    params: np.ndarray
    grads: np.ndarray
    keys: tuple[str, ...]
    slices: tuple[tuple[int, int, tuple], ...]


class Model:
    """Sequential network. ``input_shape`` excludes the batch axis (internal layout).

    ``layers`` are the config's layers (what checkpoints, ``dlcli shapes`` and exports
    name); ``ops`` is what runs: each layer, followed by its attached activation as an op
    of its own (``dense1.relu``). ``plan()`` is ``ops`` with the engine's fused pairs in
    place (:mod:`dlcli.nn.fusion`). ``forward(x, training, logits=True)`` stops before the
    output activation when the loss fuses it (see ``dlcli.nn.losses``).
    """

    def __init__(self, layers: list[Layer], input_shape: tuple, dtype=np.float32):
        self.layers = layers
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype).type
        self.fused_output = False
        self._expand()

    def _expand(self) -> None:
        """Link the layers and make ``ops``: each layer, then its attached activation."""
        self.__dict__.pop("_plans", None)
        self.ops: list[Layer] = []
        self._attached: dict[Layer, Activation] = {}
        self._layer_of: dict[Layer, Layer] = {}
        by_name = {layer.name: layer for layer in self.layers}
        for layer in self.layers:
            layer.link(by_name)
            self.ops.append(layer)
            self._layer_of[layer] = layer
            activation = attached_activation(layer)
            if activation is not None:
                self.ops.append(activation)
                self._attached[layer] = activation
                self._layer_of[activation] = layer

    @classmethod
    def from_config(cls, layer_configs: list[dict], input_shape, dtype=np.float32) -> "Model":
        names = default_names(layer_configs)
        layers = []
        for name, config in zip(names, layer_configs):
            layers.append(build_layer({**config, "name": name}))
        return cls(layers, input_shape, dtype)

    # ---- shapes ------------------------------------------------------------------
    def shapes(self) -> list[tuple[Layer, tuple, tuple]]:
        """(layer, input shape, output shape) per layer; raises IncompatibleShape with the
        layer's index and name prefixed to the message."""
        rows, shape = [], self.input_shape
        for i, layer in enumerate(self.layers):
            try:
                out = tuple(int(d) for d in layer.output_shape(shape))
            except IncompatibleShape as exc:
                raise IncompatibleShape(
                    f"model.layers[{i}] ({layer.name}, {layer.type_name}): {exc} "
                    f"[input shape {display_shape(shape)}]") from None
            if any(d <= 0 for d in out):
                raise IncompatibleShape(
                    f"model.layers[{i}] ({layer.name}, {layer.type_name}): output shape "
                    f"{display_shape(out)} from input {display_shape(shape)} is empty")
            rows.append((layer, shape, out))
            shape = out
        return rows

    @property
    def output_shape(self) -> tuple:
        return self.shapes()[-1][2] if self.layers else self.input_shape

    def param_count(self) -> int:
        return sum(size_of(s) for layer, shape, _ in self.shapes()
                   for s in layer.param_shapes(shape).values())

    # ---- allocation --------------------------------------------------------------
    def build(self, rng: np.random.Generator) -> "Model":
        self._expand()
        self.__dict__.pop("_inference_rows", None)
        for layer, shape, out in self.shapes():
            layer.build(shape, rng, self.dtype)
            if layer in self._attached:
                self._attached[layer].build(out, rng, self.dtype)
        if self.layers:
            # Nobody needs the gradient of the data: skip the first layer's dx product.
            self.layers[0].need_input_grad = False
        self._pack_parameters()
        return self

    def _pack_parameters(self) -> None:
        """Move all parameters into one contiguous buffer and all gradients into another;
        each layer keeps views (its ``params[key]`` / ``grads[key]`` arrays alias them), laid
        end to end in ``parameters()`` order.

        The optimizer then updates the whole model with one NumPy call per operation, and
        the trainer checks every gradient with one call, instead of one per array (NumPy's per-call
        overhead is a large part of a small model's step). Models whose
        parameters do not share one dtype are left as they are (``flat_buffers()`` is then
        None).
        """
        self._flat = None
        entries = [(layer, key) for layer in self.layers for key in layer.params]
        if not entries or len({layer.params[key].dtype for layer, key in entries}) != 1:
            return
        total = sum(layer.params[key].size for layer, key in entries)
        dtype = entries[0][0].params[entries[0][1]].dtype
        flat_params = np.empty(total, dtype)
        flat_grads = np.empty(total, dtype)
        start, slices = 0, []
        for layer, key in entries:
            param, grad = layer.params[key], layer.grads[key]
            stop = start + param.size
            flat_params[start:stop] = param.ravel()
            flat_grads[start:stop] = grad.ravel()
            layer.params[key] = flat_params[start:stop].reshape(param.shape)
            layer.grads[key] = flat_grads[start:stop].reshape(param.shape)
            slices.append((start, stop, param.shape))
            start = stop
        keys = tuple(f"{layer.name}.{key}" for layer, key in entries)
        self._flat = Packed(flat_params, flat_grads, keys, tuple(slices))

    def flat_buffers(self) -> "Packed | None":
        """The packed buffers every parameter and gradient of the model is a view of, with
        the parameter keys in buffer order (what ``Optimizer.step`` takes as ``flat``);
        None when they are not (mixed dtypes, or a layer rebuilt after the model)."""
        flat = getattr(self, "_flat", None)
        if flat is None:
            return None
        for _, param, grad in self.parameters():
            if param.base is not flat.params or grad.base is not flat.grads:
                return None
        return flat

    def set_rng(self, rng: np.random.Generator) -> None:
        """Give stochastic layers (dropout) the run's training generator."""
        for layer in self.layers:
            if hasattr(layer, "rng"):
                layer.rng = rng

    def output_activation(self) -> Activation | None:
        """The last op when it is an activation (attached or a layer of its own)."""
        if self.ops and isinstance(self.ops[-1], Activation):
            return self.ops[-1]
        return None

    def activation_of(self, layer: Layer) -> Activation | None:
        """The op of the activation attached to ``layer`` (None when it has none)."""
        return self._attached.get(layer)

    def layer_of(self, op: Layer) -> Layer:
        """The config layer an op belongs to (itself, or the layer it is attached to)."""
        return self._layer_of[op]

    # ---- computation -------------------------------------------------------------
    def plan(self, fused: bool = False) -> list:
        """The steps ``forward`` runs in order (``backward`` runs them reversed): ``ops``,
        less the output activation when ``fused`` (the loss computes it), with the engine's
        fused pairs in place (:func:`dlcli.nn.fusion.plan`). Cached."""
        plans = self.__dict__.setdefault("_plans", {})
        if fused not in plans:
            plans[fused] = fusion.plan(self.ops[:-1] if fused else self.ops)
        return plans[fused]

    def fusion_notes(self) -> dict:
        """What the fused pairs did in the latest training forward pass, for ``dlcli time``:
        ``{op: {"fused_with": conv name} or {"runs_after": pool name}}`` (see
        :func:`dlcli.nn.fusion.notes`)."""
        return fusion.notes(self.plan(self.fused_output))

    @staticmethod
    def run(x: np.ndarray, steps, training: bool = False):
        """The model's one forward loop: each of ``steps`` (the plan, or ``ops``) applied
        in turn, yielding ``(step, its output)`` lazily."""
        for step in steps:
            x = step.forward(x, training)
            yield step, x

    def forward(self, x: np.ndarray, training: bool = False, logits: bool = False) -> np.ndarray:
        """(N, *input_shape) -> the output. Outside training a batch larger than
        :meth:`inference_rows` runs in slices of that many samples, whose intermediate
        values and scratch buffers stay cache-sized (and bound what the layers keep of the
        last pass); every sample's output is the same as in one pass."""
        plan = self.plan(logits and self.fused_output)
        rows = None if training else self.inference_rows()
        if rows is None or len(x) <= rows:
            return self._through(plan, x, training)
        return np.concatenate([self._through(plan, x[i:i + rows], False)
                               for i in range(0, len(x), rows)])

    def _through(self, steps, x, training):
        for _, x in self.run(x, steps, training):
            pass
        return x

    def outputs(self, x: np.ndarray, training: bool = False):
        """``(op, output)`` after each op of ``ops``, unfused (the values a user names by a
        layer), lazily: what :meth:`forward_to` and the trainer's search for the first
        non-finite output walk."""
        return self.run(x, self.ops, training)

    # The working set of one slice of an evaluation pass: the layers' outputs and scratch
    # buffers for that many samples. LeNet's convolutions use ~0.2 MB per sample, so a
    # 1024-sample batch walks ~200 MB of fresh buffers in one pass; in slices of 64 it used
    # 20-35% less CPU (python -m benchmarks.inference, 1 thread). An MLP's slices hold
    # hundreds or thousands of samples: its products keep their size.
    INFERENCE_BYTES = 8 << 20
    INFERENCE_MIN_ROWS = 64

    def inference_rows(self) -> int:
        """Samples per slice of an evaluation forward pass (cached per model)."""
        rows = self.__dict__.get("_inference_rows")
        if rows is None:
            itemsize = np.dtype(self.dtype).itemsize
            per_sample = sum(size_of(out) * itemsize + layer.workspace_bytes(
                                 shape, 1, itemsize, need_input_grad=False)
                             for layer, shape, out in self.shapes())
            rows = self._inference_rows = max(self.INFERENCE_MIN_ROWS,
                                              self.INFERENCE_BYTES // max(per_sample, 1))
        return rows

    def forward_to(self, x: np.ndarray, name: str, training: bool = False) -> np.ndarray:
        """The activations of layer ``name``: the ops up to and including it and its
        attached activation (always applied, even when the loss fuses the output one).
        (N, *input_shape) -> (N, *that layer's output shape); KeyError for an unknown name."""
        layer = self.get_layer(name)
        target = self._attached.get(layer, layer)
        for op, x in self.outputs(x, training):
            if op is target:
                return x
        raise AssertionError("unreachable: get_layer found the layer")

    def layer_output_shape(self, name: str) -> tuple:
        """Output shape (internal layout) of layer ``name``; KeyError for an unknown name."""
        for layer, _, out in self.shapes():
            if layer.name == name:
                return out
        raise KeyError(name)

    def backward(self, dy: np.ndarray) -> None:
        for op in reversed(self.plan(self.fused_output)):
            dy = op.backward(dy)
            if dy is None:
                break

    def zero_grad(self) -> None:
        """Zero every gradient: one fill of the packed gradient buffer when the model has
        one. Training needs none: ``backward`` writes every gradient."""
        flat = self.flat_buffers()
        if flat is not None:
            flat.grads.fill(0)
            return
        for layer in self.layers:
            layer.zero_grad()

    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(``<layer>.<param>``, param, grad) for every parameter, in layer order."""
        return [(f"{layer.name}.{key}", layer.params[key], layer.grads[key])
                for layer in self.layers for key in layer.params]

    def state_dict(self) -> dict[str, np.ndarray]:
        return {key: param for key, param, _ in self.parameters()}

    def expected_state(self) -> dict[str, tuple]:
        """Parameter names and shapes from the config alone (for checkpoint checks)."""
        return {f"{layer.name}.{key}": tuple(s) for layer, shape, _ in self.shapes()
                for key, s in layer.param_shapes(shape).items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for key, param, _ in self.parameters():
            param[...] = state[key]

    def get_layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

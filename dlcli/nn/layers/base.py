"""The Layer interface every layer implements.

Shapes exclude the batch axis. Internally a vector is ``(features,)`` and an image is
``(channels, height, width)`` (the layout that makes im2col products contiguous); the
user-facing layout of the notes, ``(height, width, channels)``, is produced by
:func:`display_shape`.
"""

import numpy as np

from dlcli import rules


class IncompatibleShape(ValueError):
    """A layer cannot take the input shape it is given; the model adds the layer's path."""


class Layer:
    """Base class: a named, registered transformation with optional parameters.

    Subclasses set ``type_name`` (the registry name) and implement ``output_shape``,
    ``forward`` and ``backward``; layers with parameters also implement
    ``param_shapes`` and ``_init_params``.

    Contract:
      * ``output_shape(input_shape)`` allocates nothing, used by ``dlcli shapes``; it is
        pure except in ``maxpool2d``, which records the input shape for ``maxunpool2d``.
      * ``build(input_shape, rng, dtype)`` allocates ``params`` and ``grads`` (same keys).
      * ``forward(x, training)`` caches what ``backward`` needs.
      * ``backward(dy)`` returns ``dx`` and WRITES this batch's gradient of every parameter
        into ``grads`` (in place: they may be views of the model's packed buffer), so no
        step needs to zero them first. When ``need_input_grad`` is False it may return None.
      * ``get_config()`` returns exactly the keys the registry rebuilds the layer from.
    """

    type_name = "layer"
    #: The rules of this layer's hyperparameters, as data (:mod:`dlcli.rules`): parameter ->
    #: rule, and rules between parameters. Config validation and the constructor both apply
    #: them through :func:`dlcli.rules.check`. ``name``, ``activation`` and ``initializer``
    #: are names the config layer resolves against its registries.
    RULES: dict = {}
    RELATIONS: tuple = ()

    def checked(self, **values) -> dict:
        """``values`` normalized by :attr:`RULES`; :class:`dlcli.rules.InvalidValues` if
        any breaks its rule."""
        return rules.enforce(self.RULES, values, self.RELATIONS)

    def __init__(self, name: str | None = None):
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.input_shape: tuple | None = None
        self.dtype = np.float32
        self.need_input_grad = True

    # ---- shape inference (pure) -------------------------------------------------
    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def param_shapes(self, input_shape: tuple) -> dict[str, tuple]:
        """Shapes of this layer's parameters for ``input_shape``, without allocating."""
        return {}

    def mult_adds(self, input_shape: tuple) -> int:
        """Multiply-adds per sample of the forward pass."""
        return 0

    def workspace_bytes(self, input_shape: tuple, batch: int, itemsize: int,
                        need_input_grad: bool = True) -> int:
        """Bytes of the scratch buffers this layer keeps between training steps for a batch
        of ``batch`` samples of ``input_shape`` (reused, so counted once)."""
        return 0

    def link(self, layers_by_name: dict) -> None:
        """Resolve references to other layers (e.g. an unpooling layer's pooling layer)."""

    # ---- allocation ---------------------------------------------------------------
    def build(self, input_shape: tuple, rng: np.random.Generator, dtype=np.float32) -> None:
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype).type
        self.output_shape(self.input_shape)  # raise early on an impossible shape
        self.params = {
            key: np.ascontiguousarray(value, dtype=self.dtype)
            for key, value in self._init_params(self.input_shape, rng).items()
        }
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    def _init_params(self, input_shape: tuple, rng: np.random.Generator) -> dict:
        return {}

    def zero_grad(self) -> None:
        """Zero every gradient."""
        for g in self.grads.values():
            g.fill(0)

    # ---- computation -------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    # ---- description -------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"type": self.type_name}
        if self.name is not None:
            config["name"] = self.name
        return config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b``. An outer product (2-D operands with inner dimension 1: the weight
    gradient of a one-sample batch, the input gradient of a one-unit layer) is computed as
    a broadcast multiply: each entry is a single product either way, so the values are the
    same, and NumPy's matmul is several times slower on that shape. The engine writes
    every product as ``np.matmul`` (never ``@``), so that ``benchmarks.gemm`` can record
    the products one training step runs."""
    if a.ndim == 2 and b.ndim == 2 and a.shape[1] == 1:
        return np.multiply(a, b, out=out)
    return np.matmul(a, b, out=out)


def display_shape(shape: tuple) -> tuple:
    """Internal (C, H, W) -> the notes' (H, W, C); vectors unchanged."""
    if len(shape) == 3:
        c, h, w = shape
        return (h, w, c)
    return tuple(shape)


def size_of(shape: tuple) -> int:
    return int(np.prod(shape, dtype=np.int64))

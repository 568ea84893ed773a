"""Pooling layers: ``maxpool2d``, ``avgpool2d`` and ``maxunpool2d`` (notes 3.4.1, 3.4.2)."""

from __future__ import annotations

import numpy as np

from ... import rules as r
from ...registry import LAYERS
from ..functional import conv as C
from ..functional import pooling as P
from .base import IncompatibleShape, Layer, display_shape


class _Pool2D(Layer):
    """Shared hyperparameters and shape rule of the pooling layers."""

    RULES = {"pool_size": r.pair(1), "stride": r.optional(r.pair(1)), "padding": r.pair(0)}
    # A window lying wholly in the padding would have no input value (PyTorch's rule).
    RELATIONS = (r.Relation(
        "padding", ("pool_size",),
        lambda v: "at most half the pool size {}x{}".format(*C.pair(v["pool_size"])),
        lambda v: all(2 * p <= f for p, f in zip(C.pair(v["padding"]), C.pair(v["pool_size"])))),)

    def __init__(self, pool_size, stride=None, padding=0, name=None):
        super().__init__(name=name)
        values = self.checked(pool_size=pool_size, stride=stride, padding=padding)
        self.pool_size, self.stride, self.padding = (values["pool_size"], values["stride"],
                                                     values["padding"])
        self.pool = C.pair(self.pool_size)
        self.strides = self.pool if self.stride is None else C.pair(self.stride)
        self.pads = C.pair(self.padding)
        self.last_input_shape: tuple | None = None

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 3:
            raise IncompatibleShape(
                f"{self.type_name} expects an image input (height, width, channels); "
                f"got shape {display_shape(tuple(input_shape))}")
        c, h, w = (int(d) for d in input_shape)
        oh, ow = P.pool_output_hw((h, w), self.pool, self.strides, self.pads)
        if oh <= 0 or ow <= 0:
            raise IncompatibleShape(
                f"pool {self.pool[0]}x{self.pool[1]} is larger than the padded input "
                f"{h + 2 * self.pads[0]}x{w + 2 * self.pads[1]} (padding {self.padding})")
        # Recorded so that a maxunpool2d linked to this layer knows the size to restore.
        self.last_input_shape = (c, h, w)
        return (c, oh, ow)

    def _args(self) -> tuple:
        return self.pool, self.strides, self.pads

    def get_config(self) -> dict:
        config = {"type": self.type_name, "pool_size": self.pool_size, "stride": self.stride,
                  "padding": self.padding}
        if self.name is not None:
            config["name"] = self.name
        return config


@LAYERS.register("maxpool2d")
class MaxPool2D(_Pool2D):
    """Max pooling: ``y[n, c, i, j] = max_{u < ph, v < pw} xp[n, c, sh*i + u, sw*j + v]``.

    ``xp`` is the input padded with -inf, so padding never wins a maximum. Shapes (batch
    axis excluded): (C, H, W) -> (C, H_out, W_out), ``H_out = floor((H + 2p - ph) / sh) + 1``.
    The gradient flows only to each window's maximum (the first one on ties). After a
    forward, ``argmax`` holds each maximum's offset inside its window (what a linked
    ``maxunpool2d`` reads) and ``indices`` its flat input position ``row * W + col``
    (PyTorch's ``return_indices``).

    Hyperparameters: ``pool_size`` int or pair; ``stride=None`` (= pool_size);
    ``padding=0`` (at most half the pool size); ``name=None``. No parameters.
    """

    type_name = "maxpool2d"

    def __init__(self, pool_size, stride=None, padding=0, name=None):
        super().__init__(pool_size, stride, padding, name)
        self.argmax: np.ndarray | None = None
        self.forward_input_hw: tuple | None = None
        self.workspace: dict = {}  # scratch planes reused across batches (and by dlcli.nn.fusion)

    @property
    def indices(self) -> np.ndarray | None:
        """Flat positions ``row * W + col`` of the last forward's maxima (int64)."""
        if self.argmax is None:
            return None
        return P.argmax_to_indices(self.argmax, self.forward_input_hw, *self._args())

    def workspace_bytes(self, input_shape, batch, itemsize, need_input_grad=True) -> int:
        return P.maxpool2d_workspace_bytes((batch, *input_shape), *self._args(), itemsize,
                                           backward=need_input_grad)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        # Only training keeps scratch planes: an evaluation batch (often larger) must not
        # leave buffers of its size behind.
        y, self.argmax = P.maxpool2d_forward(x, *self._args(),
                                             workspace=self.workspace if training else None)
        self.forward_input_hw = x.shape[2:]
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.need_input_grad:
            return None
        return P.maxpool2d_backward(np.asarray(dy, dtype=self.dtype), self.argmax,
                                    self.forward_input_hw, *self._args(),
                                    workspace=self.workspace)


@LAYERS.register("avgpool2d")
class AvgPool2D(_Pool2D):
    """Average pooling: ``y[n, c, i, j] = mean_{u < ph, v < pw} xp[n, c, sh*i + u, sw*j + v]``.

    ``xp`` is zero-padded and the padded zeros count towards the mean (PyTorch's
    ``count_include_pad=True``): the divisor is always ``ph * pw``. Shapes as for
    ``maxpool2d``. Hyperparameters: ``pool_size``; ``stride=None`` (= pool_size);
    ``padding=0`` (at most half the pool size); ``name=None``. No parameters.
    """

    type_name = "avgpool2d"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        self._input_hw = x.shape[2:]
        return P.avgpool2d_forward(x, *self._args())

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.need_input_grad:
            return None
        return P.avgpool2d_backward(np.asarray(dy, dtype=self.dtype), self._input_hw,
                                    *self._args())


@LAYERS.register("maxunpool2d")
class MaxUnpool2D(Layer):
    """Max unpooling (notes 3.4.2): undoes the ``maxpool2d`` layer named by ``pool``.

    ``y[n, c, idx[n, c, i, j]] = x[n, c, i, j]`` and zero elsewhere, with ``idx`` the
    argmax positions of that pool's most recent forward (values sharing a position, possible
    only with overlapping windows, are summed). Shapes (batch axis excluded): the pool's
    output shape -> the pool's input shape. Gradient: ``dx[n, c, i, j] = dy[n, c, idx]``.

    Hyperparameters: ``pool`` (name of an earlier maxpool2d layer, required);
    ``name=None``. No parameters. The model must call ``link`` before any shape walk.
    """

    type_name = "maxunpool2d"

    RULES = {"pool": r.Rule("the name of a maxpool2d layer",
                            lambda v: v if isinstance(v, str) and v else r._FAIL, "string")}

    def __init__(self, pool, name=None):
        super().__init__(name=name)
        self.pool = self.checked(pool=pool)["pool"]
        self.pool_layer: MaxPool2D | None = None

    def link(self, layers_by_name: dict) -> None:
        layer = layers_by_name.get(self.pool)
        pools = sorted(n for n, l in layers_by_name.items() if isinstance(l, MaxPool2D))
        known = f"; maxpool2d layers: {', '.join(pools)}" if pools else "; the model has no maxpool2d layer"
        if layer is None:
            raise IncompatibleShape(f"pool {self.pool!r} is not the name of a layer{known}")
        if not isinstance(layer, MaxPool2D):
            raise IncompatibleShape(
                f"pool {self.pool!r} is a {layer.type_name} layer, not a maxpool2d{known}")
        self.pool_layer = layer

    def _pool(self) -> MaxPool2D:
        if self.pool_layer is None:
            raise IncompatibleShape(f"maxunpool2d is not linked to its pool {self.pool!r}")
        return self.pool_layer

    def output_shape(self, input_shape: tuple) -> tuple:
        pool = self._pool()
        if pool.last_input_shape is None:
            raise IncompatibleShape(
                f"pool {self.pool!r} must come before this maxunpool2d layer")
        expected = pool.output_shape(pool.last_input_shape)
        if tuple(input_shape) != expected:
            raise IncompatibleShape(
                f"maxunpool2d expects the output shape of pool {self.pool!r}, "
                f"{display_shape(expected)}; got {display_shape(tuple(input_shape))}")
        return pool.last_input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        pool = self._pool()
        if pool.argmax is None:
            raise ValueError(f"pool {self.pool!r} has not run forward before maxunpool2d")
        x = np.asarray(x, dtype=self.dtype)
        if x.shape != pool.argmax.shape:
            raise ValueError(f"maxunpool2d input {x.shape} does not match the output "
                             f"{pool.argmax.shape} of pool {self.pool!r}")
        # Keep this forward's selection: the pool may run again before our backward.
        self._argmax, self._pool_args = pool.argmax, pool._args()
        return P.max_unpool2d(x, self._argmax, pool.forward_input_hw, *self._pool_args)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.need_input_grad:
            return None
        return P.max_unpool2d_backward(np.asarray(dy, dtype=self.dtype), self._argmax,
                                       *self._pool_args)

    def get_config(self) -> dict:
        config = {"type": self.type_name, "pool": self.pool}
        if self.name is not None:
            config["name"] = self.name
        return config

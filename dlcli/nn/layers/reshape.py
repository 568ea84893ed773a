"""The ``reshape`` layer."""

from __future__ import annotations

import numpy as np

from ... import rules as r
from ...registry import LAYERS
from .base import IncompatibleShape, Layer, size_of


@LAYERS.register("reshape")
class Reshape(Layer):
    """Give each sample a new shape, written in the notes' order; the values do not move.

    A 3-D ``shape`` is (height, width, channels), e.g. ``[7, 7, 16]``; a vector is ``[64]``;
    one entry may be -1 (inferred). Values keep the row-major order of the internal layout
    (channels, height, width) — PyTorch's ``view`` and the same order as ``flatten`` — so
    ``reshape [7, 7, 16]`` of a vector ``v`` puts ``v[(c*7 + h)*7 + w]`` at pixel ``(h, w)``,
    channel ``c``, dense weights stay exchangeable with PyTorch, and no data is copied.
    Shapes: any input with the same number of values -> ``shape`` (internally (C, H, W)
    when 3-D). Hyperparameters: ``shape``; ``name=None``. No parameters.
    """

    type_name = "reshape"

    RULES = {"shape": r.reshape_shape()}

    def __init__(self, shape, name=None):
        super().__init__(name=name)
        self.shape = self.checked(shape=shape)["shape"]

    def _user_target(self, size: int) -> tuple:
        known = size_of([d for d in self.shape if d != -1])
        target = list(self.shape)
        if -1 in target:
            if size % known:
                raise IncompatibleShape(
                    f"cannot reshape {size} values into {tuple(self.shape)}: "
                    f"{size} is not a multiple of {known}")
            target[target.index(-1)] = size // known
        elif known != size:
            raise IncompatibleShape(
                f"cannot reshape {size} values into {tuple(self.shape)} = {known}")
        return tuple(target)

    def output_shape(self, input_shape: tuple) -> tuple:
        target = self._user_target(size_of(input_shape))
        if len(target) == 3:
            h, w, c = target
            return (c, h, w)
        return target

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._input_shape = x.shape
        return x.reshape(x.shape[0], *self.output_shape(x.shape[1:]))

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.need_input_grad:
            return None
        return dy.reshape(self._input_shape)

    def get_config(self) -> dict:
        config = {"type": self.type_name, "shape": list(self.shape)}
        if self.name is not None:
            config["name"] = self.name
        return config

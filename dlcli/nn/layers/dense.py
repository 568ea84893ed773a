"""Dense (fully connected), flatten and dropout layers."""

import numpy as np

from dlcli import rules as r
from dlcli.nn.layers.base import IncompatibleShape, Layer, display_shape, matmul, size_of
from dlcli.registry import INITIALIZERS, LAYERS


@LAYERS.register("dense")
class Dense(Layer):
    """y = x Wᵀ + b (notes 1.2.2: x^(m) = W^(m) y^(m−1) + b^(m), batched along rows).

    Shapes: x (N, in) -> y (N, units); weight (units, in) as PyTorch's Linear; bias (units,).
    Backward: dW = dyᵀ x, db = Σ_n dy, dx = dy W.

    ``flatten_input: true`` lets the layer take any input shape, e.g. an image (C, H, W),
    and flatten each sample first, as the notes' FC3 takes the (5, 5, 16) POOL2 output
    (figure 3.5): in = C·H·W, in the (channel, row, column) order of ``flatten`` — so the
    weight (units, C·H·W) is PyTorch's ``Linear`` after ``nn.Flatten()`` — and dx gets the
    input's shape back. Without it a non-vector input is an error that suggests ``flatten``.

    ``update: unit_norm`` makes the weight gradient use x̃/‖x̃‖ in place of x̃, where
    x̃ = [x, 1] includes the bias input: with SGD and batch size 1 this is the unit-norm
    Widrow-Hoff rule W ← W + η(y − z)x̃/‖x̃‖ (notes 1.4.2).
    Defaults: activation none, initializer he, use_bias true, update gradient,
    flatten_input false.
    """

    type_name = "dense"
    RULES = {"units": r.positive_int, "use_bias": r.boolean,
             "update": r.choice("gradient", "unit_norm"), "flatten_input": r.boolean}

    def __init__(self, units: int, activation=None, initializer: str = "he",
                 use_bias: bool = True, update: str = "gradient", flatten_input: bool = False,
                 name=None):
        super().__init__(name)
        values = self.checked(units=units, use_bias=use_bias, update=update,
                              flatten_input=flatten_input)
        self.units = values["units"]
        self.activation_spec = activation
        self.initializer = initializer
        self.use_bias = values["use_bias"]
        self.update = values["update"]
        self.flatten_input = values["flatten_input"]

    def _in_features(self, input_shape) -> int:
        if len(input_shape) != 1 and not self.flatten_input:
            raise IncompatibleShape(
                f"dense expects a vector input, got shape {display_shape(tuple(input_shape))}; "
                "add a flatten layer before it (or set flatten_input: true)")
        return size_of(input_shape)

    def output_shape(self, input_shape):
        self._in_features(input_shape)
        return (self.units,)

    def param_shapes(self, input_shape):
        shapes = {"weight": (self.units, self._in_features(input_shape))}
        if self.use_bias:
            shapes["bias"] = (self.units,)
        return shapes

    def mult_adds(self, input_shape):
        return self.units * self._in_features(input_shape)

    def _init_params(self, input_shape, rng):
        fan_in = self._in_features(input_shape)
        init = INITIALIZERS.get(self.initializer)
        params = {"weight": init((self.units, fan_in), fan_in, self.units, rng)}
        if self.use_bias:
            params["bias"] = np.zeros(self.units)
        return params

    def forward(self, x, training=False):
        self._input_shape = x.shape
        if x.ndim != 2 and self.flatten_input:
            x = x.reshape(x.shape[0], -1)  # (N, C, H, W) -> (N, C·H·W), a view when contiguous
        self._x = x
        y = matmul(x, self.params["weight"].T)
        if self.use_bias:
            y += self.params["bias"]
        return y

    def backward(self, dy):
        x, grads = self._x, self.grads
        if self.update == "unit_norm":
            sq = np.sum(x * x, axis=1, keepdims=True)
            if self.use_bias:
                sq += 1
            inv_norm = 1 / np.sqrt(np.maximum(sq, np.finfo(x.dtype).tiny))
            scaled = dy * inv_norm
            matmul(scaled.T, x, out=grads["weight"])
            if self.use_bias:
                np.sum(scaled, axis=0, out=grads["bias"])
        else:
            matmul(dy.T, x, out=grads["weight"])
            if self.use_bias:
                self._column_sums(dy, out=grads["bias"])
        if not self.need_input_grad:
            return None
        return matmul(dy, self.params["weight"]).reshape(self._input_shape)

    def _column_sums(self, dy, out):
        """``dy.sum(axis=0)`` as the product ``1ᵀ dy``: one BLAS call, faster than NumPy's
        column sum, and summed over the batch as the weight gradient's product sums."""
        ones = self._ones
        if ones is None or len(ones) != len(dy) or ones.dtype != dy.dtype:
            ones = self._ones = np.ones(len(dy), dy.dtype)
        return matmul(ones, dy, out=out)

    _ones = None

    def get_config(self):
        config = {**super().get_config(), "units": self.units, "activation": self.activation_spec,
                  "initializer": self.initializer, "use_bias": self.use_bias,
                  "update": self.update, "flatten_input": self.flatten_input}
        return config


@LAYERS.register("flatten")
class Flatten(Layer):
    """(N, C, H, W) -> (N, C·H·W), in PyTorch's (channel, row, column) order."""

    type_name = "flatten"

    def output_shape(self, input_shape):
        return (size_of(input_shape),)

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._shape)


@LAYERS.register("dropout")
class Dropout(Layer):
    """Inverted dropout: in training y = x · m / (1 − rate) with m ~ Bernoulli(1 − rate);
    at evaluation y = x. Masks are drawn from the run's generator (``self.rng``), so a
    resumed run draws the same masks. Default rate 0.5.
    """

    type_name = "dropout"

    RULES = {"rate": r.fraction}

    def __init__(self, rate: float = 0.5, name=None):
        super().__init__(name)
        self.rate = self.checked(rate=rate)["rate"]
        self.rng = None

    def build(self, input_shape, rng, dtype=np.float32):
        super().build(input_shape, rng, dtype)
        self.rng = rng

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape, dtype=x.dtype) >= self.rate
        self._mask = keep * x.dtype.type(1 / (1 - self.rate))
        return x * self._mask

    def backward(self, dy):
        return dy if self._mask is None else dy * self._mask

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}

"""Activations (notes 1.2.1) as parameter-free layers.

Each is registered in ``ACTIVATIONS`` (for a layer's ``activation:`` shorthand) and the
standalone ``activation`` layer wraps one. Element-wise functions are computed in the input's
dtype; ``backward`` multiplies ``dy`` by the derivative at the cached input or output.
"""

import math

import numpy as np

from dlcli import rules as r
from dlcli.nn.layers.base import Layer
from dlcli.registry import ACTIVATIONS, LAYERS


class Activation(Layer):
    """Base of element-wise activations: y = g(x), dx = dy · g'(x)."""

    type_name = "activation"
    activation_name = "identity"

    def __init__(self, name=None):
        super().__init__(name)
        self._y = None
        self._x = None

    def get_config(self) -> dict:
        config = {"type": "activation", "activation": self.activation_name}
        if self.name is not None:
            config["name"] = self.name
        return config


@ACTIVATIONS.register("identity")
class Identity(Activation):
    """identity(x) = x; derivative 1."""

    activation_name = "identity"

    def forward(self, x, training=False):
        return x

    def backward(self, dy):
        return dy


@ACTIVATIONS.register("binary_step")
class BinaryStep(Activation):
    """step(x) = 1 if x ≥ 0 else 0 (notes 1.2.1 (2)); derivative 0 almost everywhere.

    Gradient descent cannot learn through it: the perceptron rule (loss ``perceptron``)
    is fused with it and uses the error y − ŷ instead.
    """

    activation_name = "binary_step"

    def forward(self, x, training=False):
        self._x = x
        return (x >= 0).astype(x.dtype)

    def backward(self, dy):
        return np.zeros_like(dy)


@ACTIVATIONS.register("sigmoid")
class Sigmoid(Activation):
    """σ(x) = 1 / (1 + e^(−x)); σ'(x) = σ(x)(1 − σ(x)).

    Computed as e^(x)/(1+e^(x)) for negative x so that no exp overflows (finite for ±1e4
    in float32).
    """

    activation_name = "sigmoid"

    def forward(self, x, training=False):
        self._y = sigmoid(x)
        return self._y

    def backward(self, dy):
        y = self._y
        return dy * y * (1 - y)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function in x's dtype."""
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@ACTIVATIONS.register("tanh")
class Tanh(Activation):
    """tanh(x) = (e^x − e^−x)/(e^x + e^−x) = 2σ(2x) − 1; derivative 1 − tanh²(x)."""

    activation_name = "tanh"

    def forward(self, x, training=False):
        self._y = np.tanh(x)
        return self._y

    def backward(self, dy):
        return dy * (1 - self._y * self._y)


@ACTIVATIONS.register("relu")
class ReLU(Activation):
    """relu(x) = max(0, x); derivative 1 for x > 0, else 0."""

    activation_name = "relu"

    # max against a zero row of this many values, broadcast over x viewed as rows of it:
    # NumPy's SIMD loop for two arrays is faster than for an array and a scalar, and a
    # row this long (32 KiB in float32, cached) runs as fast as a zero array of x's size.
    _ROW = 8192

    def forward(self, x, training=False):
        self._mask = np.greater(x, 0)
        block = math.gcd(x.size, self._ROW)
        if block < 1024 or not x.flags.c_contiguous:  # e.g. an odd last batch: scalar loop
            return np.maximum(x, x.dtype.type(0))
        zeros = self._zeros
        if zeros is None or zeros.dtype != x.dtype:
            zeros = self._zeros = np.zeros(self._ROW, x.dtype)
        return np.maximum(x.reshape(-1, block), zeros[:block]).reshape(x.shape)

    def backward(self, dy):
        return dy * self._mask

    _zeros = None


@ACTIVATIONS.register("leaky_relu")
class LeakyReLU(Activation):
    """leaky_relu(x) = max(a·x, x) for slope 0 ≤ a < 1 (notes: a = 0.1, our default)."""

    activation_name = "leaky_relu"

    RULES = {"negative_slope": r.fraction}

    def __init__(self, negative_slope: float = 0.1, name=None):
        super().__init__(name)
        self.negative_slope = self.checked(negative_slope=negative_slope)["negative_slope"]

    def forward(self, x, training=False):
        self._mask = x > 0
        return np.where(self._mask, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dy):
        return np.where(self._mask, dy, dy * dy.dtype.type(self.negative_slope))

    def get_config(self) -> dict:
        return {**super().get_config(), "negative_slope": self.negative_slope}


@ACTIVATIONS.register("softmax")
class Softmax(Activation):
    """S_j(x) = e^(x_j − max x) / Σ_i e^(x_i − max x) over the last axis (notes 1.6.3).

    Jacobian ∂S_i/∂x_j = S_i(δ_ij − S_j), so dx = S · (dy − Σ_j dy_j S_j).
    """

    activation_name = "softmax"

    def forward(self, x, training=False):
        self._y = softmax(x)
        return self._y

    def backward(self, dy):
        y = self._y
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def softmax(x: np.ndarray) -> np.ndarray:
    """Max-shifted softmax over the last axis (shift invariance, notes 1.6.3 (2))."""
    z = x - np.max(x, axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= np.sum(z, axis=-1, keepdims=True)
    return z


def make_activation(spec) -> Activation:
    """Build an activation from a name or a mapping ``{type: leaky_relu, negative_slope: 0.2}``."""
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("type")
        return ACTIVATIONS.get(name)(**spec)
    return ACTIVATIONS.get(spec)()


@LAYERS.register("activation")
def activation_layer(activation="identity", name=None, **options):
    """The standalone ``activation`` layer: ``{type: activation, activation: relu}``."""
    layer = make_activation({"type": activation, **options} if options else activation)
    layer.name = name
    return layer

"""Weight initializers: ``init(shape, fan_in, fan_out, rng) -> float64 array``.

Every draw comes from the run's explicit ``numpy.random.Generator``; layers cast the result
to the compute dtype.
"""

import numpy as np

from dlcli.registry import INITIALIZERS


@INITIALIZERS.register("zeros")
def zeros(shape, fan_in, fan_out, rng):
    """All zeros (the notes' start for the perceptron and ADALINE)."""
    return np.zeros(shape)


@INITIALIZERS.register("normal")
def normal(shape, fan_in, fan_out, rng):
    """N(0, 0.05²), Keras' RandomNormal default."""
    return rng.standard_normal(shape) * 0.05


@INITIALIZERS.register("uniform")
def uniform(shape, fan_in, fan_out, rng):
    """U(−0.05, 0.05), Keras' RandomUniform default."""
    return rng.uniform(-0.05, 0.05, size=shape)


@INITIALIZERS.register("xavier")
def xavier(shape, fan_in, fan_out, rng):
    """Notes 1.9.1: W ~ N(0, 1) · sqrt(1 / n_in). For tanh and sigmoid layers."""
    return rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)


@INITIALIZERS.register("he")
def he(shape, fan_in, fan_out, rng):
    """Notes 1.9.2: W ~ N(0, 1) · sqrt(2 / n_in). For ReLU layers."""
    return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)


@INITIALIZERS.register("glorot_uniform")
def glorot_uniform(shape, fan_in, fan_out, rng):
    """U(−a, a) with a = sqrt(6 / (n_in + n_out)) (Glorot & Bengio 2010, Keras' default)."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)

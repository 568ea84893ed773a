"""Independent numerical references: central differences and inputs away from kinks."""

import numpy as np


def central_gradient(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f() / d array by central differences (float64), perturbing ``array`` in place.

    Written here rather than imported from dlcli so that the reference does not share code
    with what it checks.
    """
    assert array.dtype == np.float64, "finite differences need float64"
    grad = np.zeros_like(array)
    it = np.nditer(array, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = array[i]
        array[i] = old + eps
        plus = f()
        array[i] = old - eps
        minus = f()
        array[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def distinct_values(rng: np.random.Generator, shape, scale: float = 2.0) -> np.ndarray:
    """float64 values in about [-scale, scale], pairwise at least 2·scale/size apart and at
    least scale/size away from 0: no ReLU/step kink at 0 and no ties for max pooling, so
    central differences with eps = 1e-6 never straddle a kink."""
    size = int(np.prod(shape))
    ranks = rng.permutation(size).astype(np.float64)
    # ranks - size/2 are half-integers for odd sizes; shift integers (even sizes) by 1/2.
    centred = ranks - size / 2 + (0.5 if size % 2 == 0 else 0.0)
    values = centred * (2 * scale / size)
    assert np.min(np.abs(values)) >= scale / size - 1e-12
    return values.reshape(shape)


def assert_close(actual, expected, rtol=1e-7, atol=1e-10):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64),
                               np.asarray(expected, dtype=np.float64), rtol=rtol, atol=atol)

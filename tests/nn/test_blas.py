"""dlcli.nn.blas: y <- a*x + b*y through NumPy's bundled OpenBLAS, checked against NumPy."""

import numpy as np
import pytest

from dlcli.nn import blas

needs_blas = pytest.mark.skipif(not blas.available, reason="no OpenBLAS bundled with NumPy here")


@needs_blas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 7, 50_000])
@pytest.mark.parametrize("a, b", [(0.3, 0.9), (-0.01, 1.0), (1.0, 0.0), (2.5, -1.5)])
def test_axpby_is_a_x_plus_b_y(dtype, size, a, b):
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size).astype(dtype)
    y = rng.standard_normal(size).astype(dtype)
    want = a * x.astype(np.float64) + b * y.astype(np.float64)
    before = x.copy()
    assert blas.axpby(a, x, b, y)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    np.testing.assert_array_equal(x, before)  # x is only read


@needs_blas
def test_axpby_takes_a_contiguous_2d_parameter_whole():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = np.ones((3, 4), np.float32)
    assert blas.axpby(2.0, x, 0.5, y)
    np.testing.assert_array_equal(y, 2 * x + 0.5)


@pytest.mark.parametrize("x, y", [
    (np.ones(8, np.float32), np.ones(8, np.float64)),          # mixed dtypes
    (np.ones(8, np.float32)[::2], np.ones(4, np.float32)),     # not contiguous
    (np.ones(8, np.float16), np.ones(8, np.float16)),          # no BLAS for half floats
    (np.ones(8, np.float32), np.ones(7, np.float32)),          # sizes differ
])
def test_axpby_declines_what_blas_cannot_take_and_leaves_y_alone(x, y):
    before = y.copy()
    assert blas.axpby(0.5, x, 2.0, y) is False
    np.testing.assert_array_equal(y, before)


def test_axpby_declines_a_read_only_output():
    y = np.ones(8, np.float32)
    y.flags.writeable = False
    assert blas.axpby(1.0, np.ones(8, np.float32), 1.0, y) is False

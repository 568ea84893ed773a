"""dlcli.nn.blas: y <- a*x + b*y through NumPy's bundled OpenBLAS, checked against NumPy."""

import numpy as np
import pytest

from dlcli.nn import blas

needs_blas = pytest.mark.skipif(not blas.available, reason="no OpenBLAS bundled with NumPy here")


@needs_blas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [blas.MIN_SIZE, blas.MIN_SIZE + 7, 100_003])
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
    x = np.arange(256 * 256, dtype=np.float32).reshape(256, 256) / 1000
    y = np.ones((256, 256), np.float32)
    assert blas.axpby(2.0, x, 0.5, y)
    np.testing.assert_allclose(y, 2 * x + 0.5, rtol=1e-6)


N = blas.MIN_SIZE


@pytest.mark.parametrize("x, y", [
    (np.ones(N, np.float32), np.ones(N, np.float64)),           # mixed dtypes
    (np.ones(2 * N, np.float32)[::2], np.ones(N, np.float32)),  # not contiguous
    (np.ones(N, np.float16), np.ones(N, np.float16)),           # no BLAS for half floats
    (np.ones(N, np.float32), np.ones(N - 1, np.float32)),       # sizes differ
    (np.ones(N - 1, np.float32), np.ones(N - 1, np.float32)),   # too few values to pay
])
def test_axpby_declines_what_blas_cannot_take_and_leaves_y_alone(x, y):
    before = y.copy()
    assert blas.axpby(0.5, x, 2.0, y) is False
    np.testing.assert_array_equal(y, before)


def test_axpby_declines_a_read_only_output():
    y = np.ones(N, np.float32)
    y.flags.writeable = False
    assert blas.axpby(1.0, np.ones(N, np.float32), 1.0, y) is False


def test_a_bundled_openblas_is_bound():
    # where NumPy ships its OpenBLAS (the wheels CI installs), the binding must take: a
    # renamed folder or symbol would otherwise switch SGD back to NumPy passes silently
    import pathlib
    site = pathlib.Path(np.__file__).resolve().parent.parent
    if not [p for p in site.glob("numpy*/**/*openblas*") if p.is_file()]:
        pytest.skip("this NumPy bundles no OpenBLAS (conda, Accelerate): the NumPy route")
    assert blas.available
    assert set(blas._FUNCS) == {np.dtype(np.float32), np.dtype(np.float64)}

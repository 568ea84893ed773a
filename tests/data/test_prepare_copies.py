"""prepare() makes each split with one float64 copy and no full-size temporary.

References: NumPy's own ``mean``/``std``/``min``/``max`` and the direct formula
``(x[rows] - shift) / scale`` on a float64 copy; the memory bound is read from tracemalloc
(NumPy reports its array allocations there).
"""

import tracemalloc

import numpy as np
import pytest

from dlcli.data.prepare import _mean_std, prepare
from tests.data.test_prepare import spec


@pytest.mark.parametrize("shape, axes", [((1000, 7), (0,)), ((300, 3, 5, 4), (0, 2, 3))])
def test_blockwise_mean_std_equals_numpy(shape, axes):
    x = np.random.default_rng(0).normal(3.0, 2.0, size=shape) ** 3  # skewed, large values
    mean, std = _mean_std(x, axes, rows=64)  # several blocks and a partial one
    np.testing.assert_allclose(mean, x.mean(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=axes), rtol=1e-12)


def _image_file(tmp_path, n=500):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (n, 12, 10, 3), dtype=np.uint8)  # NHWC
    y = rng.integers(0, 4, n)
    np.savez(tmp_path / "images.npz", x=x, y=y)
    return x, y


@pytest.mark.parametrize("kind", ["standard", "minmax", "none"])
def test_splits_equal_the_direct_formula(tmp_path, kind):
    raw, _ = _image_file(tmp_path)
    s = prepare(spec(str(tmp_path / "images.npz"), normalize=kind, validation_split=0.2,
                     test_split=0.1), tmp_path, 0)
    x = raw.transpose(0, 3, 1, 2).astype(np.float64)
    # which rows went where: the splits keep file order, so match rows by content
    rows = {r.tobytes(): i for i, r in enumerate(x)}
    train = [rows[r.tobytes()] for r in s.normalizer.invert(s.x_train).round()]
    xt = x[train]
    if kind == "standard":
        shift, scale = xt.mean(axis=(0, 2, 3)), xt.std(axis=(0, 2, 3))
    elif kind == "minmax":
        shift = xt.min(axis=(0, 2, 3))
        scale = xt.max(axis=(0, 2, 3)) - shift
    else:
        shift, scale = np.zeros(3), np.ones(3)
    shift, scale = shift.reshape(3, 1, 1), scale.reshape(3, 1, 1)
    np.testing.assert_allclose(s.normalizer.shift, shift, rtol=1e-12)
    np.testing.assert_allclose(s.normalizer.scale, scale, rtol=1e-12)
    np.testing.assert_allclose(s.x_train, (xt - shift) / scale, rtol=1e-12, atol=1e-12)
    assert s.x_train.dtype == s.x_val.dtype == s.x_test.dtype == np.float64
    assert len(s.x_train) + len(s.x_val) + len(s.x_test) == len(raw)


def test_no_full_size_temporary(tmp_path):
    raw, _ = _image_file(tmp_path, n=4000)
    source = spec(str(tmp_path / "images.npz"), normalize="standard", validation_split=0.2,
                  test_split=0.1)
    tracemalloc.start()
    try:
        s = prepare(source, tmp_path, 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    outputs = s.x_train.nbytes + s.x_val.nbytes + s.x_test.nbytes  # float64: 8x the raw bytes
    # the raw file's arrays, the three float64 splits, and block-sized work arrays; any
    # full-size float64 temporary (x - mean, a second copy of the training rows) adds
    # about 0.7 * outputs on top
    assert peak < outputs + 3 * raw.nbytes + 4 * 2**20

"""prepare() normalizes over blocks of rows of the raw array: no full-size temporary.

References: NumPy's own ``mean``/``std``/``min``/``max`` over the whole array and the direct
formula ``((x[rows] as float64) - shift) / scale``; the memory bound is read from tracemalloc
(NumPy reports its array allocations there).
"""

import importlib
import tracemalloc

import numpy as np
import pytest

from dlcli.data.prepare import Normalizer, prepare
from tests.data.test_prepare import spec

N = importlib.import_module("dlcli.data.normalize")


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(N, "BLOCK_ROWS", 64)  # several blocks and a partial last one


@pytest.mark.parametrize("shape, axes", [((1000, 7), (0,)), ((300, 3, 5, 4), (0, 2, 3))])
@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_blockwise_statistics_equal_numpy(small_blocks, shape, axes, kind):
    x = np.random.default_rng(0).normal(3.0, 2.0, size=shape) ** 3  # skewed, large values
    index = np.sort(np.random.default_rng(1).choice(shape[0], shape[0] // 2, replace=False))
    norm = Normalizer.fit(kind, x, index)
    xs = x[index]
    if kind == "standard":
        shift, scale = xs.mean(axis=axes), xs.std(axis=axes)
    else:
        shift, scale = xs.min(axis=axes), xs.max(axis=axes) - xs.min(axis=axes)
    np.testing.assert_allclose(norm.shift.ravel(), shift, rtol=1e-12)
    np.testing.assert_allclose(norm.scale.ravel(), scale, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_transform_is_apply_cast_to_the_dtype(small_blocks, dtype):
    x = np.random.default_rng(2).integers(0, 256, (500, 1, 6, 6), dtype=np.uint8)
    norm = Normalizer.fit("standard", x)
    index = np.arange(3, 400, 3)
    out = norm.transform(x, index, dtype)
    assert out.dtype == dtype and out.shape == (len(index), 1, 6, 6)
    # apply() works on a float64 copy: what every split was before, cast once
    np.testing.assert_array_equal(out, norm.apply(x[index]).astype(dtype))


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


def test_float32_splits_hold_the_float64_splits_cast(tmp_path):
    _image_file(tmp_path)
    source = spec(str(tmp_path / "images.npz"), normalize="standard", validation_split=0.2,
                  test_split=0.1)
    wide, narrow = prepare(source, tmp_path, 0), prepare(source, tmp_path, 0, dtype=np.float32)
    for name in ("x_train", "x_val", "x_test"):
        a, b = getattr(wide, name), getattr(narrow, name)
        assert b.dtype == np.float32
        np.testing.assert_array_equal(b, a.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_no_full_size_temporary(tmp_path, dtype):
    raw, _ = _image_file(tmp_path, n=4000)
    source = spec(str(tmp_path / "images.npz"), normalize="standard", validation_split=0.2,
                  test_split=0.1)
    tracemalloc.start()
    try:
        s = prepare(source, tmp_path, 0, dtype=dtype)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    outputs = s.x_train.nbytes + s.x_val.nbytes + s.x_test.nbytes
    # the raw file's arrays, the splits, and block-sized work arrays (4096 rows of float64);
    # a full-size float64 copy of the data (x - mean, or a float64 split later cast) would
    # add 8x the raw bytes on top
    block = N.BLOCK_ROWS * raw[0].size * 8
    assert peak < outputs + 3 * raw.nbytes + 3 * block + 2**20
    assert peak < outputs + 8 * raw.nbytes


def test_raw_splits_keep_the_source_dtype(tmp_path):
    # what `dlcli eval` reads before normalizing the one split it scores with the run's
    # statistics: the rows as stored (uint8 here), not a float64 copy of every split
    raw, _ = _image_file(tmp_path)
    source = spec(str(tmp_path / "images.npz"), validation_split=0.2, test_split=0.1)
    kept, wide = prepare(source, tmp_path, 0, dtype=None), prepare(source, tmp_path, 0)
    for name in ("x_train", "x_val", "x_test"):
        a, b = getattr(kept, name), getattr(wide, name)
        assert a.dtype == np.uint8 and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)  # the same values as the float64 split
    with pytest.raises(ValueError, match="floating dtype"):
        Normalizer.fit("standard", raw).transform(raw, None, None)

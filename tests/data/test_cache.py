"""The data cache: large compressed arrays converted once into .npy files and mapped.

References: the arrays as np.load and read_idx read them into memory, and the splits
prepare() makes from the in-memory arrays.
"""

import gzip
import os
import struct

import numpy as np
import pytest

from dlcli.data import cache, lazy
from dlcli.data.idx import read_idx
from dlcli.data.prepare import prepare
from dlcli.errors import DataError
from tests.data.test_prepare import spec


@pytest.fixture
def small_bar(monkeypatch):
    """Stream (and cache) arrays of 1 KB and more."""
    monkeypatch.setattr(lazy, "STREAM_BYTES", 1024)
    monkeypatch.delenv(cache.CACHE_ENV, raising=False)


def _compressed(tmp_path, n=400):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.integers(0, 3, n)
    np.savez_compressed(tmp_path / "c.npz", x=x, y=y)
    return tmp_path / "c.npz", x, y


def _entries(folder):
    return sorted(p.name for p in (folder / cache.CACHE_NAME).glob("*.npy"))


def test_a_compressed_npz_is_converted_once_and_mapped(tmp_path, small_bar, monkeypatch):
    path, x, y = _compressed(tmp_path)
    source = spec(str(path), normalize="standard", validation_split=0.25)
    streamed = prepare(source, tmp_path, 0, dtype=np.float32)
    entries = _entries(tmp_path)
    assert [e.split(".")[:3] for e in entries] == [["c", "npz", "x"], ["c", "npz", "y"]]
    assert isinstance(streamed.x_train, lazy.Rows) and lazy.is_mapped(streamed.x_train.source)
    np.testing.assert_array_equal(np.load(tmp_path / cache.CACHE_NAME / entries[0]), x)
    stamps = [os.stat(tmp_path / cache.CACHE_NAME / e).st_mtime_ns for e in entries]
    again = prepare(source, tmp_path, 0, dtype=np.float32)  # reused, not rewritten
    assert _entries(tmp_path) == entries
    assert [os.stat(tmp_path / cache.CACHE_NAME / e).st_mtime_ns for e in entries] == stamps
    monkeypatch.setattr(lazy, "STREAM_BYTES", 2**40)
    kept = prepare(source, tmp_path, 0, dtype=np.float32)  # in memory, as before
    for s in (streamed, again):
        np.testing.assert_array_equal(s.normalizer.shift, kept.normalizer.shift)
        np.testing.assert_array_equal(s.normalizer.scale, kept.normalizer.scale)
        np.testing.assert_array_equal(np.asarray(s.x_train), kept.x_train)
        np.testing.assert_array_equal(np.asarray(s.x_val), kept.x_val)
        np.testing.assert_array_equal(s.y_train, kept.y_train)


def test_a_changed_file_gets_a_new_entry(tmp_path, small_bar):
    path, _, _ = _compressed(tmp_path)
    prepare(spec(str(path)), tmp_path, 0)
    before = _entries(tmp_path)
    x2 = np.arange(2000, dtype=np.float32).reshape(400, 5)
    np.savez_compressed(path, x=x2, y=np.zeros(400, int))
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock says
    s = prepare(spec(str(path)), tmp_path, 0)
    assert len(_entries(tmp_path)) == 4 and set(before) < set(_entries(tmp_path))
    assert sorted(np.asarray(s.x_train)[:, 0].tolist()) == list(range(0, 2000, 5))


def _idx(path, array, zipped):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D}
    head = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape)
    data = head + array.tobytes()
    path.write_bytes(gzip.compress(data, 1) if zipped else data)
    return path


@pytest.mark.parametrize("dtype", [np.uint8, ">f4"])
@pytest.mark.parametrize("zipped", [True, False])
def test_idx_files_are_mapped_raw_and_cached_gzipped(tmp_path, small_bar, dtype, zipped):
    rng = np.random.default_rng(2)
    images = (rng.integers(0, 256, (300, 6, 7))).astype(dtype)
    name = "train-images-idx3-ubyte" + (".gz" if zipped else "")
    path = _idx(tmp_path / name, images, zipped)
    _idx(tmp_path / name.replace("images-idx3", "labels-idx1"),
         rng.integers(0, 10, 300).astype(np.uint8), zipped)
    array = cache.idx_array(path)
    assert lazy.is_mapped(array)
    np.testing.assert_array_equal(array, read_idx(path))
    assert len(_entries(tmp_path)) == (1 if zipped else 0)  # raw: mapped where it is
    s = prepare(spec(str(path), normalize="minmax"), tmp_path, 0)
    assert isinstance(s.x_train, lazy.Rows)
    assert np.asarray(s.x_train).min() == 0 and np.asarray(s.x_train).max() == 1


def test_a_truncated_gzip_leaves_no_entry(tmp_path, small_bar):
    path = _idx(tmp_path / "x-idx3-ubyte.gz", np.zeros((300, 8, 8), np.uint8), True)
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(DataError, match="truncated: shape \\(300, 8, 8\\) needs 19200 data "
                                        "bytes, found 19100"):
        cache.idx_array(path)
    assert list((tmp_path / cache.CACHE_NAME).iterdir()) == []


def test_an_unwritable_cache_is_a_warning_and_memory(tmp_path, small_bar, monkeypatch):
    path, x, _ = _compressed(tmp_path)
    (tmp_path / "blocked").write_text("a file, not a folder")
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "blocked"))
    s = prepare(spec(str(path)), tmp_path, 0)
    assert any("could not write the data cache" in w and cache.CACHE_ENV in w
               for w in s.warnings)
    assert isinstance(s.x_train, np.ndarray)
    np.testing.assert_array_equal(np.sort(s.x_train[:, 0]), np.sort(x[:, 0]))

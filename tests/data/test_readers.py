"""File readers: npz, csv, IDX; every error names the file (and the CSV row)."""

import gzip
import struct

import numpy as np
import pytest

from dlcli.data.readers import read_array_file, read_csv, read_idx, read_npz
from dlcli.errors import DataError


# --- npz ---------------------------------------------------------------------------


def test_npz_roundtrip(tmp_path):
    path = tmp_path / "d.npz"
    x, y = np.arange(24, dtype=np.float32).reshape(6, 4), np.array([0, 1, 2, 0, 1, 2])
    names = np.array(["a", "b", "c"])
    np.savez(path, x=x, y=y, x_test=x[:2], y_test=y[:2], class_names=names, extra=np.ones(3))
    out = read_npz(path)
    assert set(out) == {"x", "y", "x_test", "y_test", "class_names"}
    np.testing.assert_array_equal(out["x"], x)
    np.testing.assert_array_equal(out["y"], y)
    np.testing.assert_array_equal(out["class_names"], names)


def test_npz_with_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.zeros((2, 2)), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError) as info:
        read_npz(path)
    assert str(path) in str(info.value) and "pickled object array" in str(info.value)


def test_npz_missing_y_lists_contents(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((2, 2)), labels=np.zeros(2))
    with pytest.raises(DataError, match=r"missing array\(s\) y; the archive holds x, labels"):
        read_npz(path)


def test_npz_length_mismatch_and_nan(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match="x has 3 samples but y has 2"):
        read_npz(path)
    x = np.zeros((4, 2))
    x[2, 1] = np.nan
    np.savez(path, x=x, y=np.zeros(4))
    with pytest.raises(DataError, match="first at sample 2"):
        read_npz(path)


def test_not_an_npz_and_missing_file(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_text("hello")
    with pytest.raises(DataError, match=str(path)):
        read_npz(path)
    with pytest.raises(DataError, match="no such file"):
        read_npz(tmp_path / "absent.npz")


# --- csv ---------------------------------------------------------------------------


def write(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_string_classes(tmp_path):
    path = write(tmp_path, "a,b,kind\n1,2.5,cat\n3,-4e-1,dog\n\n5,6,cat\n")
    x, y, names = read_csv(path, "kind")
    assert names == ["a", "b"]
    assert x.dtype == np.float64 and x.shape == (3, 2)
    np.testing.assert_array_equal(x, [[1, 2.5], [3, -0.4], [5, 6]])
    assert y.tolist() == ["cat", "dog", "cat"] and y.shape == (3,)


def test_csv_target_types_and_multiple_targets(tmp_path):
    path = write(tmp_path, "f,i,v\n1,0,0.5\n2,2,1.5\n")
    _, y, _ = read_csv(path, "i")
    assert y.dtype == np.int64
    _, y, _ = read_csv(path, "v")
    assert y.dtype == np.float64
    x, y, names = read_csv(path, ["i", "v"])
    assert names == ["f"] and y.shape == (2, 2) and y.dtype == np.float64


def test_csv_default_target_is_last_column(tmp_path):
    path = write(tmp_path, "a,b,c\n1,2,3\n")
    x, y, names = read_csv(path)
    assert names == ["a", "b"] and y.tolist() == [3]


def test_csv_ragged_row_names_file_and_row(tmp_path):
    path = write(tmp_path, "a,b,y\n1,2,0\n3,4,1\n5,6\n")
    with pytest.raises(DataError) as info:
        read_csv(path, "y")
    assert str(info.value) == f"{path}: row 4: has 2 fields but the header has 3"


def test_csv_non_numeric_feature_names_column_and_value(tmp_path):
    path = write(tmp_path, "a,b,y\n1,2,0\n3,four,1\n")
    with pytest.raises(DataError) as info:
        read_csv(path, "y")
    assert str(info.value) == f"{path}: row 3: feature column 'b' has a non-numeric value 'four'"


def test_csv_empty_feature_cell(tmp_path):
    path = write(tmp_path, "a,b,y\n1,,0\n")
    with pytest.raises(DataError, match="row 2: feature column 'b' is empty"):
        read_csv(path, "y")


def test_csv_missing_target_lists_available_columns(tmp_path):
    path = write(tmp_path, "a,b,y\n1,2,0\n")
    with pytest.raises(DataError, match="'label' not found; available columns: a, b, y"):
        read_csv(path, "label")


@pytest.mark.parametrize("text, message", [("", "empty"), ("\n\n", "empty"), ("a,y\n", "no data rows")])
def test_csv_empty_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        read_csv(path, "y")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity"])
def test_csv_non_finite_feature_names_first_bad_row(tmp_path, bad):
    path = write(tmp_path, f"a,y\n1,0\n2,1\n{bad},0\n{bad},1\n")
    with pytest.raises(DataError) as info:
        read_csv(path, "y")
    assert str(info.value).startswith(f"{path}: row 4:")


def test_csv_duplicate_header(tmp_path):
    path = write(tmp_path, "a,a,y\n1,2,0\n")
    with pytest.raises(DataError, match="duplicate column"):
        read_csv(path, "y")


# --- IDX ---------------------------------------------------------------------------


def idx_bytes(array, type_byte=0x08, big_endian_dtype=">u1"):
    header = struct.pack(">BBBB", 0, 0, type_byte, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(big_endian_dtype).tobytes()


@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_roundtrip_raw_and_gzip(tmp_path, gzipped):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3)).astype(np.uint8)
    data = idx_bytes(images)
    path = tmp_path / ("images-idx3-ubyte" + (".gz" if gzipped else ""))
    path.write_bytes(gzip.compress(data) if gzipped else data)
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_idx_detects_gzip_by_magic_not_name(tmp_path):
    labels = np.arange(7, dtype=np.uint8)
    path = tmp_path / "labels.idx"
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx(path), labels)


def test_idx_float_and_int_types(tmp_path):
    values = np.linspace(-1, 1, 6).reshape(2, 3)
    path = tmp_path / "v.idx"
    path.write_bytes(idx_bytes(values, 0x0E, ">f8"))
    out = read_idx(path)
    assert out.dtype == np.float64 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)
    ints = np.array([-5, 70000, 3], dtype=np.int64)
    path.write_bytes(idx_bytes(ints, 0x0C, ">i4"))
    np.testing.assert_array_equal(read_idx(path), ints)


@pytest.mark.parametrize("gzipped", [False, True])
def test_truncated_idx_is_refused(tmp_path, gzipped):
    data = idx_bytes(np.zeros((4, 3, 3), dtype=np.uint8))[:-5]
    path = tmp_path / "t.idx"
    path.write_bytes(gzip.compress(data) if gzipped else data)
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_stream_is_refused(tmp_path):
    path = tmp_path / "t.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 3), dtype=np.uint8)))[:-12])
    with pytest.raises(DataError, match=str(path)):
        read_idx(path)


@pytest.mark.parametrize("content", [b"", b"\x00\x00", b"PK\x03\x04junk", b"\x00\x00\x07\x01\x00\x00\x00\x01x"])
def test_non_idx_is_refused(tmp_path, content):
    path = tmp_path / "x.idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match="IDX") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --- dispatch ----------------------------------------------------------------------


def test_read_array_file_dispatch(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((2, 3)), y=np.zeros(2))
    assert read_array_file(tmp_path / "a.npz")["x"].shape == (2, 3)
    write(tmp_path, "p,q\n1,2\n", "b.csv")
    out = read_array_file(tmp_path / "b.csv", "q")
    assert out["x"].shape == (1, 1) and out["feature_names"] == ["p"]
    with pytest.raises(DataError, match="unsupported file type"):
        read_array_file(write(tmp_path, "", "c.txt"))


def test_mnist_style_idx_files_are_paired(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 3)):
        images = rng.integers(0, 256, size=(n, 4, 4)).astype(np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    out = read_array_file(tmp_path / "train-images-idx3-ubyte.gz")
    assert out["x"].shape == (6, 4, 4) and out["y"].shape == (6,)
    assert out["x_test"].shape == (3, 4, 4) and out["y_test"].shape == (3,)

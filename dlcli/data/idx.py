"""MNIST's IDX format (raw or gzipped): one array per file, and the images/labels/test
files of an MNIST folder found beside each other."""

import gzip
import pathlib
import re
import struct
import zlib

import numpy as np

from dlcli.data.mapped import check_file as _check_file
from dlcli.errors import DataError

# IDX type byte -> big-endian dtype (http://yann.lecun.com/exdb/mnist/).
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def idx_header(head: bytes, where: str) -> tuple[np.dtype, tuple, int]:
    """``(big-endian dtype, shape, header bytes)`` from the first bytes of an IDX file (at
    least 4 + 4 x 255 of them, or all there are)."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES:
        raise DataError(
            "not an IDX file (expected magic bytes 00 00 <type> <ndim> with type one of "
            "08 09 0B 0C 0D 0E)",
            where=where,
        )
    dtype, ndim = IDX_DTYPES[head[2]], head[3]
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(head) < header_size:
        raise DataError(f"truncated IDX header ({len(head)} bytes for {ndim} dimensions)",
                        where=where)
    return dtype, struct.unpack(f">{ndim}I", head[4:header_size]), header_size


def size_problem(shape, dtype, got: int) -> str | None:
    """What is wrong when ``got`` data bytes follow a header of ``shape`` (None: nothing)."""
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if got == expected:
        return None
    problem = "truncated" if got < expected else "has trailing bytes"
    return f"{problem}: shape {tuple(shape)} needs {expected} data bytes, found {got}"


def read_idx(path) -> np.ndarray:
    """Read one array in MNIST's IDX format, gzipped or not (detected by magic bytes).

    Layout: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, one big-endian uint32 per
    dimension, then the values in row-major order. Returns the array in native byte order.
    """
    path = pathlib.Path(path)
    _check_file(path)
    where = str(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"damaged or truncated gzip data ({exc})", where=where) from None
    dtype, shape, header_size = idx_header(raw[:4 + 4 * 255], where)
    problem = size_problem(shape, dtype, len(raw) - header_size)
    if problem:
        raise DataError(problem, where=where)
    array = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def is_idx_path(path) -> bool:
    """True for names like train-images-idx3-ubyte, *.idx, *.idx3-ubyte.gz."""
    name = pathlib.Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(".idx") or name.endswith("-ubyte") or bool(re.search(r"idx\d", name))


def read_idx_set(path, read=read_idx) -> dict:
    """An IDX images file with its labels (and test pair) when they sit beside it, each
    file read with ``read`` (``dlcli.data.cache.idx_array`` maps large ones)."""
    path = pathlib.Path(path)
    out = {"x": read(path)}
    labels = _sibling(path, "images", "labels")
    if labels is None:
        return out
    out["y"] = _idx_labels(labels, out["x"], path, read)
    if "train" in path.name:
        test_images = _sibling(path, "train", "t10k")
        test_labels = _sibling(labels, "train", "t10k")
        if test_images is not None and test_labels is not None:
            out["x_test"] = read(test_images)
            out["y_test"] = _idx_labels(test_labels, out["x_test"], test_images, read)
    return out


def _idx_labels(labels_path, images, images_path, read=read_idx) -> np.ndarray:
    y = read(labels_path)
    if y.shape[0] != images.shape[0]:
        raise DataError(
            f"holds {y.shape[0]} labels but {images_path.name} holds {images.shape[0]} images",
            where=str(labels_path),
        )
    return y


def _sibling(path: pathlib.Path, old: str, new: str) -> pathlib.Path | None:
    """The file named like ``path`` with ``old`` replaced by ``new`` (idx3 -> idx1 for labels)."""
    if old not in path.name:
        return None
    name = path.name.replace(old, new)
    if new == "labels":
        name = re.sub(r"idx\d", "idx1", name)
    candidate = path.with_name(name)
    return candidate if candidate.is_file() else None

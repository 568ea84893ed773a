"""Arrays read straight from their files: memory maps of .npy files and of the uncompressed
(stored) members of .npz archives.

``np.load`` memory-maps an .npy file (``mmap_mode="r"``) but reads every member of an .npz
into memory; an uncompressed member is an .npy file at a known offset inside the zip, so
it is mapped here the same way. A compressed member cannot be mapped: it is converted once
into an .npy file of the data cache (:mod:`dlcli.data.cache`).
"""

import pathlib
import struct
import zipfile

import numpy as np

from dlcli.errors import DataError

ARRAY_KEYS = ("x", "y", "x_test", "y_test")


def npy_header(handle):
    """``(shape, fortran_order, dtype)`` of the .npy data at the handle's position, which
    is left at the first data byte; None for a header version this reader does not map."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(handle)
    return None


def map_array(path, offset: int, shape, fortran: bool, dtype) -> np.ndarray:
    """A read-only memory map of an array stored at ``offset`` of ``path``."""
    if dtype.hasobject:
        raise DataError("holds Python objects (a pickled object array), which dlcli refuses "
                        "to load; save plain numeric or string arrays", where=str(path))
    if int(np.prod(shape, dtype=np.int64)) == 0:  # mmap cannot map zero bytes
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape),
                     order="F" if fortran else "C")


def stored_members(path) -> dict[str, tuple]:
    """``{key: (offset, shape, fortran, dtype)}`` of the uncompressed numeric members
    ``x``, ``y``, ``x_test``, ``y_test`` of an .npz archive (others are left to np.load)."""
    found = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        for info in archive.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else None
            if key not in ARRAY_KEYS or info.compress_type != zipfile.ZIP_STORED:
                continue
            handle.seek(info.header_offset)
            local = handle.read(30)
            if local[:4] != b"PK\x03\x04":
                continue
            name_length, extra_length = struct.unpack("<HH", local[26:30])
            handle.seek(info.header_offset + 30 + name_length + extra_length)
            try:
                header = npy_header(handle)
            except ValueError:
                continue  # np.load reports the damage
            if header is None or header[2].kind not in "biuf":
                continue
            found[key] = (handle.tell(), *header)
    return found


def map_npz(path) -> dict[str, np.ndarray]:
    """Memory maps of the stored members ``x``, ``y``, ``x_test``, ``y_test`` of an .npz
    (compressed ones and ``class_names`` are absent: read them with np.load)."""
    return {key: map_array(path, *where) for key, where in stored_members(path).items()}


def load_npy(path) -> np.ndarray:
    """A read-only memory map of an .npy file (DataError for an unreadable one)."""
    path = pathlib.Path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "mmap length is greater than file size" in str(exc) or "cannot mmap" in str(exc):
            raise DataError(f"truncated .npy file ({exc})", where=str(path)) from None
        if "Object arrays" in str(exc) or "allow_pickle" in str(exc):
            raise DataError("holds Python objects (a pickled object array), which dlcli "
                            "refuses to load; save plain numeric arrays", where=str(path)) from None
        raise DataError(f"not a readable .npy file ({exc})", where=str(path)) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"not a readable .npy file ({exc})", where=str(path)) from None
    return array


def read_npy_dir(folder) -> dict[str, np.ndarray]:
    """A folder of .npy files ``x.npy`` (and ``y.npy``, ``x_test.npy``, ``y_test.npy``,
    ``class_names.npy``), each memory-mapped (class names read)."""
    folder = pathlib.Path(folder)
    out = {key: load_npy(folder / f"{key}.npy") for key in ARRAY_KEYS
           if (folder / f"{key}.npy").is_file()}
    names = folder / "class_names.npy"
    if names.is_file():
        out["class_names"] = np.array(load_npy(names))
    return out


def check_file(path: pathlib.Path) -> None:
    if not path.exists():
        raise DataError("no such file", where=str(path))
    if not path.is_file():
        raise DataError("not a file", where=str(path))

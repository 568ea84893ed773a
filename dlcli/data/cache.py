"""The data cache: large arrays that cannot be memory-mapped where they are (a compressed
.npz member, a gzipped IDX file) are converted once into .npy files, then mapped.

Where: ``$DLCLI_CACHE_DIR`` when set, else a ``.dlcli-cache`` folder beside the data file.
Each array becomes ``<file name>.<array>.<key>.npy``, the key a hash of the file's resolved
path, size and modification time: a changed file gets a new entry, and an entry is reused
for as long as the file is unchanged (the folder may be deleted at any time). Conversion
streams the data in chunks of :data:`CHUNK` bytes (memory never holds the array) into a
temporary file beside the entry, renamed into place when complete, so an interrupted
conversion leaves no entry behind. Arrays under ``lazy.STREAM_BYTES`` are read into memory
as before, and a folder that cannot be written is a warning, not an error: the array is then
read into memory too.

A raw (not gzipped) IDX file needs no conversion: its data are mapped where they are.
"""

import contextlib
import gzip
import hashlib
import os
import pathlib
import shutil
import zipfile
import zlib

import numpy as np

from dlcli.data import lazy
from dlcli.data.idx import GZIP_MAGIC, idx_header, read_idx, size_problem
from dlcli.data.mapped import check_file, load_npy, map_array
from dlcli.errors import DataError

CACHE_ENV = "DLCLI_CACHE_DIR"
CACHE_NAME = ".dlcli-cache"
CHUNK = 16 * 2**20
VERSION = 1  # part of every key: a new layout of the entries makes new ones

_warnings: list[str] = []  # folders that could not be written, until take_warnings()


def take_warnings() -> list[str]:
    """The warnings of the conversions since the last call (the readers add them to the
    data's warnings)."""
    taken = list(_warnings)
    _warnings.clear()
    return taken


def cache_root(source: pathlib.Path) -> pathlib.Path:
    """The folder the entries of ``source`` go to."""
    configured = os.environ.get(CACHE_ENV)
    return pathlib.Path(configured).expanduser() if configured else source.parent / CACHE_NAME


def entry_path(source: pathlib.Path, array: str) -> pathlib.Path:
    """The cache entry of ``array`` from ``source`` in its current version."""
    stat = source.stat()
    key = hashlib.sha256(f"{VERSION}|{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|"
                         f"{array}".encode()).hexdigest()[:16]
    return cache_root(source) / f"{source.name}.{array}.{key}.npy"


def cached(source: pathlib.Path, array: str, write) -> np.ndarray | None:
    """A memory map of the cache entry of ``array`` from ``source``, made by
    ``write(handle)`` (the whole .npy file) when absent; None when it cannot be stored."""
    target = entry_path(source, array)
    if target.is_file():
        try:
            return load_npy(target)
        except DataError:
            target.unlink(missing_ok=True)  # damaged: made again below
    tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        _warnings.append(f"{source}: could not write the data cache in {target.parent} "
                        f"({exc.strerror or exc}); the data were read into memory (set "
                        f"{CACHE_ENV} to a writable folder)")
        return None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return load_npy(target)


# ---- .npz members -----------------------------------------------------------------------
def npz_member(path, key: str) -> np.ndarray | None:
    """The compressed member ``key`` of an .npz through the cache when it holds at least
    ``lazy.STREAM_BYTES`` (None: read it into memory as usual)."""
    path = pathlib.Path(path)
    with zipfile.ZipFile(path) as archive:
        try:
            info = archive.getinfo(f"{key}.npy")
        except KeyError:
            return None
        if info.compress_type == zipfile.ZIP_STORED or info.file_size < lazy.STREAM_BYTES:
            return None

        def write(handle):  # an .npz member is a whole .npy file: copied as it inflates
            try:
                with archive.open(info) as member:
                    shutil.copyfileobj(member, handle, CHUNK)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise DataError(f"array {key!r} is damaged ({exc})", where=str(path)) from None

        return cached(path, key, write)


# ---- IDX files --------------------------------------------------------------------------
def idx_array(path) -> np.ndarray:
    """One IDX file: mapped in place when raw, through the cache when gzipped, read into
    memory (``read_idx``) under ``lazy.STREAM_BYTES``."""
    path = pathlib.Path(path)
    check_file(path)
    where = str(path)
    try:
        with open(path, "rb") as handle:
            zipped = handle.read(2) == GZIP_MAGIC
        with (gzip.open if zipped else open)(path, "rb") as handle:
            head = handle.read(4 + 4 * 255)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"damaged or truncated gzip data ({exc})", where=where) from None
    dtype, shape, header_size = idx_header(head, where)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < lazy.STREAM_BYTES:
        return read_idx(path)
    if not zipped:
        problem = size_problem(shape, dtype, path.stat().st_size - header_size)
        if problem:
            raise DataError(problem, where=where)
        return map_array(path, header_size, shape, False, dtype)
    native = dtype.newbyteorder("=")

    def write(handle):
        np.lib.format.write_array_header_1_0(handle, {
            "descr": np.lib.format.dtype_to_descr(native), "fortran_order": False,
            "shape": tuple(shape)})
        got, step = 0, CHUNK - CHUNK % dtype.itemsize
        try:
            with gzip.open(path, "rb") as source:
                source.read(header_size)
                while chunk := source.read(step):
                    got += len(chunk)
                    if got <= nbytes and not len(chunk) % dtype.itemsize:
                        handle.write(np.frombuffer(chunk, dtype).astype(native).tobytes())
        except (EOFError, zlib.error) as exc:
            raise DataError(f"damaged or truncated gzip data ({exc})", where=where) from None
        problem = size_problem(shape, dtype, got)
        if problem:
            raise DataError(problem, where=where)

    array = cached(path, "idx", write)
    return read_idx(path) if array is None else array

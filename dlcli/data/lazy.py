"""Data sets larger than memory: rows that stay in their (memory-mapped) file until a batch
needs them.

A :class:`Rows` is the rows ``source[index]`` of a raw array (a ``np.memmap`` of an .npy
file or of an uncompressed .npz member, in the file's own dtype), normalized and cast only
when read: ``take(rows, out)`` gathers a batch, converts it to float64, applies
``(x - shift) / scale`` and casts it to the compute dtype, the same operations in the same
order as ``Normalizer.transform``, so a batch holds exactly the values that the rows of a
materialized split would. The pages of a memory-mapped file belong to the page cache, not
to the process: reading a batch costs the batch, never the file.

:class:`OneHotRows` does the same for one-hot targets: labels (N,) kept, rows (batch, C)
made per batch.
"""

import numpy as np

from dlcli.data.normalize import BLOCK_ROWS  # rows converted at a time: a fixed buffer

# A memory-mapped x of this many bytes or more is streamed (read a batch at a time); a
# smaller one is read into memory, where its splits are converted once.
STREAM_BYTES = 64 * 2**20

class Rows:
    """The rows ``source[index]`` (all rows when ``index`` is None), read lazily.

    ``normalizer``: a ``Normalizer`` applied per batch (None or kind ``none``: the values as
    stored); ``dtype``: the dtype rows come out in (None: the source's own dtype, only
    without normalization). Behaves enough like an array for the loop and the metrics:
    ``len``, ``shape``, ``dtype``, ``ndim``, ``nbytes`` (of the rows once read), slicing
    (a slice or index array returns an ndarray), ``astype`` (another lazy view) and
    ``np.asarray`` (reads every row: only for data that fit in memory).
    """

    def __init__(self, source: np.ndarray, index=None, normalizer=None, dtype=np.float64):
        self.source = source
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        if normalizer is not None and normalizer.kind == "none":
            normalizer = None
        if normalizer is not None:
            normalizer._check_shape(source.shape[1:])
            if dtype is None:
                raise ValueError("normalized rows need a floating dtype")
        self.normalizer = normalizer
        self.dtype = np.dtype(source.dtype if dtype is None else dtype)

    # ---- the array-like surface ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self.source) if self.index is None else len(self.index)

    @property
    def shape(self) -> tuple:
        return (len(self), *self.source.shape[1:])

    @property
    def ndim(self) -> int:
        return self.source.ndim

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def astype(self, dtype, copy: bool = True) -> "Rows":
        """The same rows read in ``dtype`` (still lazy, whatever ``copy`` says)."""
        return Rows(self.source, self.index, self.normalizer, dtype)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1 and self.index is None:
                return self._convert(self.source[start:stop])
            return self.take(np.arange(start, stop, step))
        if isinstance(key, (int, np.integer)):
            return self.take(np.array([key]))[0]
        return self.take(np.asarray(key))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        for start, block in self.blocks():
            out[start:start + len(block)] = block
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return (f"Rows({self.shape} {self.dtype} read from {type(self.source).__name__} "
                f"{self.source.dtype}{', normalized' if self.normalizer else ''})")

    # ---- reading ------------------------------------------------------------------------
    def take(self, rows, out=None) -> np.ndarray:
        """The rows at positions ``rows`` of this view (in that order), converted, written
        into ``out`` when given (a buffer of ``len(rows)`` rows in ``self.dtype``)."""
        rows = np.asarray(rows, dtype=np.int64)
        where = rows if self.index is None else self.index[rows]
        return self._convert(np.take(self.source, where, axis=0), out)

    def blocks(self, rows: int = BLOCK_ROWS):
        """``(start, block)`` over all rows in order, ``rows`` at a time."""
        n = len(self)
        for start in range(0, n, rows):
            yield start, self[start:start + rows]

    def _convert(self, raw: np.ndarray, out=None) -> np.ndarray:
        """``raw`` rows in the output dtype, normalized: computed in float64 and cast, as
        ``Normalizer.transform`` computes a split."""
        if out is None:
            out = np.empty(raw.shape, self.dtype)
        if self.normalizer is None and (raw.dtype == self.dtype or raw.dtype.kind == "f"
                                        or raw.dtype.itemsize <= 2):
            np.copyto(out, raw, casting="unsafe")  # exact: no float64 step needed
            return out
        block = raw.astype(np.float64)
        if self.normalizer is not None:
            block -= self.normalizer.shift
            block /= self.normalizer.scale
        np.copyto(out, block, casting="unsafe")
        return out


class OneHotRows:
    """One-hot rows (N, C) of integer labels (N,), made per batch (notes 1.6.2): what
    ``one_hot(labels, C, dtype)`` holds, without its N x C array."""

    def __init__(self, labels: np.ndarray, n_classes: int, dtype=np.float64):
        from dlcli.data.encoding import one_hot
        self.labels = np.asarray(labels, dtype=np.int64)
        one_hot(self.labels[:0], n_classes)  # the same checks as one_hot, on no rows
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= n_classes):
            one_hot(self.labels, n_classes)  # raises, naming the first bad label
        self.n_classes = int(n_classes)
        self.dtype = np.dtype(dtype)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple:
        return (len(self.labels), self.n_classes)

    ndim = 2

    def astype(self, dtype, copy: bool = True) -> "OneHotRows":
        return OneHotRows(self.labels, self.n_classes, dtype)

    def take(self, rows, out=None) -> np.ndarray:
        labels = self.labels[np.asarray(rows, dtype=np.int64)]
        if out is None:
            out = np.empty((len(labels), self.n_classes), self.dtype)
        out.fill(0)
        out[np.arange(len(labels)), labels] = 1
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            return self.take(np.arange(*key.indices(len(self))))
        if isinstance(key, (int, np.integer)):
            return self.take(np.array([key]))[0]
        return self.take(np.asarray(key))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.take(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)


class Chain:
    """Lazy views one after another, as ``np.concatenate`` would join them without ever
    joining them (a file's x, then its x_test: ``dlcli eval --data`` scores all of it)."""

    def __init__(self, *parts):
        self.parts = list(parts)
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    @property
    def shape(self) -> tuple:
        return (len(self), *self.parts[0].shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a Chain is read in slices of consecutive rows")
        start, stop, _ = key.indices(len(self))
        pieces, offset = [], 0
        for part in self.parts:
            lo, hi = max(start - offset, 0), min(stop - offset, len(part))
            if lo < hi:
                pieces.append(part[lo:hi])
            offset += len(part)
        if not pieces:
            return self.parts[0][0:0]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.concatenate([np.asarray(p) for p in self.parts])
        return out if dtype is None else out.astype(dtype, copy=False)


def is_lazy(x) -> bool:
    """Whether ``x`` is read per batch (a Rows, OneHotRows or Chain) rather than an
    ndarray."""
    return isinstance(x, (Rows, OneHotRows, Chain))


def take(x, rows, out):
    """``x[rows]`` into ``out`` for an ndarray or a lazy view (the trainer's gather)."""
    if isinstance(x, np.ndarray):
        return np.take(x, rows, axis=0, out=out, mode="clip")
    return x.take(rows, out)


def value_range(x) -> tuple[float, float]:
    """(min, max) of an array or a lazy view, read a block at a time."""
    if isinstance(x, np.ndarray):
        return float(x.min()), float(x.max())
    low, high = np.inf, -np.inf
    for _, block in x.blocks():
        low, high = min(low, float(block.min())), max(high, float(block.max()))
    return low, high


def resident_bytes(x) -> int:
    """Bytes of anonymous memory ``x`` holds: an ndarray's ``nbytes`` (0 when it views a
    memory-mapped file, whose pages are the page cache's), a lazy view's row numbers or
    labels (its rows are read a batch at a time). The memory check counts data through
    this function."""
    if x is None:
        return 0
    if isinstance(x, Rows):
        return 0 if x.index is None else int(x.index.nbytes)
    if isinstance(x, OneHotRows):
        return int(x.labels.nbytes)
    if isinstance(x, Chain):
        return sum(resident_bytes(part) for part in x.parts)
    return 0 if is_mapped(x) else int(np.asarray(x).nbytes)


def is_mapped(x) -> bool:
    """Whether ``x`` (or the array it views) is a memory-mapped file."""
    while x is not None:
        if isinstance(x, np.memmap):
            return True
        x = getattr(x, "base", None)
        if x is not None and not isinstance(x, np.ndarray):
            import mmap
            return isinstance(x, mmap.mmap)
    return False

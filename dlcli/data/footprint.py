"""How much memory a data set takes: the one place that says it, for the memory check that
runs before training allocates anything (``dlcli.train.budget``).

Only anonymous memory counts: the pages of an array that views a memory-mapped file belong
to the page cache, which the kernel reclaims, so such an array is counted as 0 bytes, and a
split streamed from one (``dlcli.data.lazy.Rows``) as its row numbers.
"""

import math

import numpy as np

from dlcli.data.lazy import is_lazy, resident_bytes

# One class name: a short str object and its slot in the list of names.
CLASS_NAME_BYTES = 64


def held_bytes(arrays) -> int:
    """Bytes of anonymous memory the ``arrays`` hold (None entries hold none), each as
    :func:`dlcli.data.lazy.resident_bytes` counts it."""
    return sum(resident_bytes(a) for a in arrays)


def prepared_bytes(splits) -> int:
    """Bytes of anonymous memory a prepared data set (``dlcli.data.prepare.Splits``)
    holds: every split's inputs and targets."""
    return held_bytes([splits.x_train, splits.y_train, splits.x_val, splits.y_val,
                       splits.x_test, splits.y_test])


def one_hot_bytes(splits, dtype) -> int:
    """Bytes of the one-hot rows of a prepared set's class labels (a loss other than
    categorical cross-entropy takes them): N x classes in ``dtype``, or none for a
    streamed set, whose rows are made per batch."""
    if splits.class_names is None or is_lazy(splits.x_train):
        return 0
    rows = sum(len(y) for y in (splits.y_train, splits.y_val, splits.y_test) if y is not None)
    return rows * len(splits.class_names) * np.dtype(dtype).itemsize


def class_names_bytes(n_classes: int) -> int:
    """Bytes the names of ``n_classes`` classes take (integer labels are class indices:
    a label of 10**9 makes 10**9 + 1 names)."""
    return n_classes * CLASS_NAME_BYTES


def synthetic_bytes(name: str, params: dict, dtype, targets: bool = True) -> int:
    """Bytes a ``synthetic:<name>`` source with (validated) ``params`` takes before it is
    generated: the generator's float64 inputs and its targets, held while the splits are
    made, and the splits in ``dtype`` (Python ints: no overflow, however large)."""
    from dlcli.data.synthetic import sample_shapes
    n, x_shape, y_shape, y_itemsize = sample_shapes(name, params)
    x_values, y_values = math.prod(x_shape), math.prod(y_shape)
    generated = n * (x_values * 8 + y_values * y_itemsize)
    prepared = n * x_values * np.dtype(dtype).itemsize + (n * y_values * 8 if targets else 0)
    return generated + prepared

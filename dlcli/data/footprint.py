"""How much memory a data set takes: the one place that says it, for the memory check that
runs before training allocates anything (``dlcli.train.budget``).

Only anonymous memory counts: the pages of an array that views a memory-mapped file belong
to the page cache, which the kernel reclaims, so such an array is counted as 0 bytes.
"""

import math
import mmap

import numpy as np

# One class name: a short str object and its slot in the list of names.
CLASS_NAME_BYTES = 64


def held_bytes(arrays) -> int:
    """Bytes of anonymous memory the ``arrays`` hold (None entries are skipped)."""
    return sum(int(a.nbytes) for a in arrays if a is not None and not _mapped(a))


def prepared_bytes(splits) -> int:
    """Bytes of anonymous memory a prepared data set (``dlcli.data.prepare.Splits``)
    holds: every split's inputs and targets."""
    return held_bytes([splits.x_train, splits.y_train, splits.x_val, splits.y_val,
                       splits.x_test, splits.y_test])


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


def _mapped(array) -> bool:
    """Does ``array`` view a memory-mapped file?"""
    base = array
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            return True
        base = getattr(base, "base", None)
    return False

"""Label encodings: class values to integer labels, integer labels to one-hot rows."""

import numpy as np

from dlcli.errors import DataError


def one_hot(labels, n_classes: int | None = None, *, dtype=np.float64) -> np.ndarray:
    """Encode integer class labels as one-hot rows (notes 1.6.2).

    ``labels`` (N,) non-negative integers -> (N, C) array with a single 1 per row, where
    C = ``n_classes`` or, by default, ``max(labels) + 1``:
    ``[3, 0, 2] -> 3x4``; ``[5, 0, 4, 4, 3] -> 5x6``. A label outside [0, C) raises DataError.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"one-hot encoding needs a 1-D array of labels; got shape {labels.shape}")
    if labels.size and not _is_integral(labels):
        raise DataError(f"one-hot encoding needs integer class labels; got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if n_classes is None:
        n_classes = int(labels.max()) + 1 if labels.size else 0
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        first = labels[np.argmax(bad)]
        raise DataError(f"label {first} is outside the {n_classes} declared classes [0, {n_classes})")
    out = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def encode_labels(values, classes=None) -> tuple[np.ndarray, list[str]]:
    """Map class values (strings or numbers) to int64 labels with a stable sorted mapping.

    ``values`` (N,) -> (labels int64 (N,), class_names list[str]). Without ``classes`` the
    classes are the sorted distinct values (numbers sort numerically, strings
    lexicographically), so the mapping never depends on row order. With ``classes`` (the
    declared class values, in label order) a value outside them raises DataError.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise DataError(f"class values must be 1-D; got shape {values.shape}")
    if values.dtype.kind in "fc" and values.size and not np.isfinite(values).all():
        raise DataError("class values contain NaN or infinite values")
    if classes is None:
        uniques = np.unique(values)
    else:
        uniques = np.asarray(classes)
        if uniques.ndim != 1 or len(set(uniques.tolist())) != len(uniques):
            raise DataError("declared classes must be a 1-D list of distinct values")
    if values.size == 0:
        return np.zeros(0, dtype=np.int64), [_name(u) for u in uniques.tolist()]
    if not _comparable(values, uniques):
        raise DataError(
            f"class values of dtype {values.dtype} cannot match the declared classes "
            f"{_preview(uniques)}"
        )
    order = np.argsort(uniques, kind="stable")
    sorted_uniques = uniques[order]
    pos = np.searchsorted(sorted_uniques, values)
    pos_clipped = np.minimum(pos, len(sorted_uniques) - 1)
    found = (pos < len(sorted_uniques)) & (sorted_uniques[pos_clipped] == values)
    if not found.all():
        bad = values[np.argmin(found)]
        raise DataError(
            f"class value {_name(bad)!r} is not one of the declared classes {_preview(uniques)}"
        )
    labels = order[pos_clipped].astype(np.int64)
    return labels, [_name(u) for u in uniques.tolist()]


def _is_integral(a: np.ndarray) -> bool:
    """True for integer/bool arrays and for float arrays holding whole numbers only."""
    if a.dtype.kind in "iub":
        return True
    if a.dtype.kind == "f":
        return bool(np.isfinite(a).all() and (a == np.round(a)).all())
    return False


def _comparable(a: np.ndarray, b: np.ndarray) -> bool:
    """True when both arrays are numeric or both are strings."""
    numeric = "biuf"
    text = "US"
    return (a.dtype.kind in numeric and b.dtype.kind in numeric) or (
        a.dtype.kind in text and b.dtype.kind in text
    )


def _name(value) -> str:
    """Class name of one value: whole floats lose their '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _preview(values: np.ndarray, limit: int = 10) -> str:
    names = [_name(v) for v in values.tolist()[:limit]]
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return "[" + ", ".join(names) + more + "]"

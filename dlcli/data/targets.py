"""Targets of a data file: class labels (int64 indices and their names) or values
(float64), each problem named by the row or sample that holds it."""

import numpy as np

from dlcli.data.encoding import encode_labels
from dlcli.errors import DataError


def row_namer(where: str, lines, n_y: int):
    """Index into the targets (y, then y_test) -> where that target is written: a CSV's
    ``<file>: row <line>``, else ``<file>: sample <i>`` / ``y_test sample <i>``."""
    def name(i: int) -> str:
        if lines is not None and i < len(lines):
            return f"{where}: row {lines[i]}"
        return f"{where}: sample {i}" if i < n_y else f"{where}: y_test sample {i - n_y}"
    return name


def encode_targets(y, y_test, declared, mode: str, where: str, rows=None,
                    declared_by: str = "declared", memory: int | None = None):
    """(y, y_test, class_names, first_rows): int64 (N,) labels and names, or float64 (N, k)
    values (class_names and first_rows None). ``first_rows`` maps each class label to
    where it first occurs (``rows(i)``), so a label can be shown in its data file."""
    rows = rows or row_namer(where, None, len(y))
    y = np.asarray(y)
    y_test = None if y_test is None else np.asarray(y_test)
    if mode not in ("auto", "class", "value"):
        raise DataError(f"unknown labels mode {mode!r}; known: auto, class, value", where="data.labels")
    parts = [y] if y_test is None else [y, y_test]
    for part in parts:
        if part.dtype.kind not in "biufUS":
            raise DataError(f"targets must be numbers or strings; got dtype {part.dtype}", where=where)
    if y_test is not None and y_test.shape[1:] != y.shape[1:]:
        raise DataError(f"y_test has shape {y_test.shape[1:]} per sample but y has {y.shape[1:]}", where=where)
    one_column = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)
    is_text = y.dtype.kind in "US"
    if y_test is not None and (y_test.dtype.kind in "US") != is_text:
        kinds = {True: "strings", False: "numbers"}
        raise DataError(f"y_test holds {kinds[y_test.dtype.kind in 'US']} but y holds "
                        f"{kinds[is_text]}; the two must label classes the same way", where=where)
    if mode == "auto":
        # Integer or string targets are classes; floats are values unless the file declares
        # class_names and every float is a whole number.
        classy = is_text or y.dtype.kind in "biu" or (declared is not None and _whole(parts))
        mode = "class" if one_column and classy else "value"
    if mode == "value":
        if is_text:
            raise DataError("value targets must be numeric; got strings (use labels: class)", where=where)
        values = [p.astype(np.float64).reshape(p.shape[0], -1) for p in parts]
        for p, label in zip(values, ("y", "y_test")):
            if p.size and not np.isfinite(p).all():
                raise DataError(f"{label} contains NaN or infinite values", where=where)
        return values[0], (values[1] if y_test is not None else None), None, None

    if not one_column:
        raise DataError(
            f"class labels need one target column; got shape {y.shape[1:]} per sample "
            "(use labels: value for multi-output or multi-label targets)",
            where=where,
        )
    parts = [p.reshape(p.shape[0]) for p in parts]
    joined = np.concatenate(parts)
    if declared is not None:
        declared = [str(c) for c in np.asarray(declared).tolist()]
    if is_text:
        if declared is not None:
            unknown = ~np.isin(joined.astype(str), declared)
            if unknown.any():
                i = int(np.argmax(unknown))
                raise DataError(f"label {str(joined[i])!r} is not one of the {declared_by} "
                                f"classes ({', '.join(declared)})", where=rows(i))
        try:
            labels, names = encode_labels(joined, declared)
        except DataError as exc:
            raise DataError(exc.message, where=where) from None
    else:
        if joined.dtype.kind == "f" and not _whole([joined]):
            raise DataError("class labels must be whole numbers; got fractional values (use labels: value)", where=where)
        ints = joined.astype(np.int64)
        if ints.size and ints.min() >= 0:
            # Integer labels keep their meaning: label i is class i, even if absent from a split.
            n_classes = int(ints.max()) + 1
            if declared is None and memory is not None:
                _check_class_count(ints, memory, rows)
            if declared is not None:
                if n_classes > len(declared):
                    i = int(np.argmax(ints >= len(declared)))
                    raise DataError(
                        f"label {ints[i]} is not one of the {len(declared)} {declared_by} "
                        f"classes ({', '.join(declared)})", where=rows(i),
                    )
                names = declared
            else:
                names = [str(i) for i in range(n_classes)]
            labels = ints
        else:
            if declared is not None:
                i = int(np.argmax(ints < 0))
                raise DataError(f"negative label {ints[i]} cannot index the {declared_by} "
                                "classes", where=rows(i))
            labels, names = encode_labels(ints)
    labels = labels.astype(np.int64)
    found, first = np.unique(labels, return_index=True)
    first_rows = {int(k): rows(int(i)) for k, i in zip(found, first)}
    n_train = parts[0].shape[0]
    return labels[:n_train], (labels[n_train:] if y_test is not None else None), names, first_rows


def _check_class_count(labels, memory: int, rows) -> None:
    """Integer labels are class indices: refuse the first label whose class count makes
    more names than ``memory`` bytes hold."""
    from dlcli.data.footprint import class_names_bytes
    from dlcli.errors import human_bytes
    need = class_names_bytes(int(labels.max()) + 1)
    if need <= memory:
        return
    i = int(np.argmax(labels >= memory // class_names_bytes(1)))
    raise DataError(f"label {labels[i]} makes {labels[i] + 1} classes (integer labels are "
                    f"class indices 0, 1, ...), whose names alone need about "
                    f"{human_bytes(class_names_bytes(int(labels[i]) + 1))}, "
                    f"{human_bytes(memory)} is available; fix the label, or name the classes "
                    "with strings", where=rows(i))


def _whole(parts) -> bool:
    return all(p.size == 0 or (np.isfinite(p).all() and (p == np.round(p)).all()) for p in parts)

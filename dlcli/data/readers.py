"""Readers for data files: .npz and .npy (memory-mapped where stored uncompressed), .csv, and
MNIST's IDX format (raw or gzipped, in dlcli.data.idx).

Every error is a DataError whose ``where`` names the file (and, for CSV, the row: the
1-based line number in the file, header = row 1, as a spreadsheet numbers it).
"""

import csv
import pathlib
import re
import zipfile
import zlib

import numpy as np

from dlcli.data.cache import idx_array, npz_member
from dlcli.data.idx import GZIP_MAGIC, IDX_DTYPES, is_idx_path, read_idx, read_idx_set  # noqa: F401
from dlcli.data.mapped import check_file as _check_file
from dlcli.data.mapped import load_npy, map_npz, read_npy_dir
from dlcli.errors import DataError

NPZ_KEYS = ("x", "y", "x_test", "y_test", "class_names")



def read_npz(path, required=("x", "y")) -> dict[str, np.ndarray]:
    """Read an .npz archive of plain arrays.

    Returns a dict with the ``required`` arrays, ``x`` (N, ...) and ``y`` (N, ...) by
    default, and, when present, ``x``, ``y``, ``x_test``,
    ``y_test`` and ``class_names`` (C,) str; other keys are ignored. Object (pickled) arrays
    are refused, never unpickled. Numeric features must be finite.
    """
    path = pathlib.Path(path)
    _check_file(path)
    check_zip(path, "an .npz archive")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"not a readable .npz archive ({exc})", where=str(path)) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError("expected an .npz archive of named arrays, found a single .npy array", where=str(path))
    out: dict[str, np.ndarray] = {}
    try:  # uncompressed members are memory-mapped: read a batch at a time, never whole
        mapped = map_npz(path)
    except (OSError, ValueError, zipfile.BadZipFile):
        mapped = {}
    with archive:
        missing = [k for k in required if k not in archive.files]
        if missing:
            raise DataError(
                f"missing array(s) {', '.join(missing)}; the archive holds "
                f"{', '.join(archive.files) or 'no arrays'} (needs {' and '.join(required)}; "
                "optional x_test, y_test, class_names)"
                + ("; for an autoencoder, which reconstructs x, set task: reconstruction"
                   if missing == ["y"] else ""),
                where=str(path),
            )
        for key in NPZ_KEYS:
            if key not in archive.files:
                continue
            try:
                if key not in mapped and key != "class_names":  # a large compressed array
                    mapped[key] = npz_member(path, key)  # goes through the data cache
                out[key] = archive[key] if mapped.get(key) is None else mapped[key]
            except ValueError as exc:
                # allow_pickle=False refuses object arrays: report, never unpickle.
                raise DataError(
                    f"array {key!r} holds Python objects (a pickled object array), "
                    f"which dlcli refuses to load; save plain numeric or string arrays ({exc})",
                    where=str(path),
                ) from None
            except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise DataError(f"array {key!r} is damaged ({exc})", where=str(path)) from None
    check_arrays(out, path, required)
    return out


def check_arrays(out: dict, path, required=("x", "y")) -> None:
    """The checks every array file passes: x and y (and x_test, y_test) paired with as many
    samples, numeric, finite features; class_names a 1-D array of strings."""
    if "y" in required and ("x_test" in out) != ("y_test" in out):
        raise DataError("x_test and y_test must be given together", where=str(path))
    for xk, yk in (("x", "y"), ("x_test", "y_test")):
        if xk not in out:
            continue
        x, y = out[xk], out.get(yk, out[xk])
        if x.ndim == 0 or y.ndim == 0:
            raise DataError(f"{xk} and {yk} need a sample axis; got shapes {x.shape} and {y.shape}", where=str(path))
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"{xk} has {x.shape[0]} samples but {yk} has {y.shape[0]}", where=str(path)
            )
        if x.dtype.kind not in "biuf":
            raise DataError(f"{xk} must be numeric; got dtype {x.dtype}", where=str(path))
        check_finite(x, path, name=xk)
        if y.dtype.kind == "f":
            check_finite(y, path, name=yk)
    if "class_names" in out:
        names = out["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(
                f"class_names must be a 1-D array of strings; got dtype {names.dtype} shape {names.shape}",
                where=str(path),
            )


ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip


def check_zip(path, what: str) -> None:
    """Refuse a file that is not a zip archive (as every .npz is) before NumPy reads it: NumPy
    takes any other file for a pickle and answers with advice to unpickle it."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", where=str(path)) from None
    if head not in ZIP_MAGIC:
        kind = ("text" if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head)
                else "not a zip archive")
        raise DataError(f"not {what}: an .npz file is a zip archive of arrays (as np.savez "
                        f"writes it), this file is {kind}"
                        + ("; a CSV file must end in .csv" if kind == "text" else ""),
                        where=str(path))


def read_csv_cells(path):
    """The cells of a CSV file with a header row: ``(header, cells, lines)``, header a list
    of stripped names (distinct, non-empty), cells a str array (N, columns) as written,
    lines the 1-based line number of each row (blank lines skipped)."""
    path = pathlib.Path(path)
    _check_file(path)
    where = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = None
            for header in reader:
                if any(cell.strip() for cell in header):
                    break
            else:
                header = None
            if header is None:
                raise DataError("the file is empty (expected a header row and data rows)", where=where)
            header = [h.strip() for h in header]
            header_line = reader.line_num
            rows, lines = [], []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # blank lines
                if len(row) != len(header):
                    raise DataError(
                        f"has {len(row)} fields but the header has {len(header)}",
                        where=f"{where}: row {reader.line_num}",
                    )
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=where) from None
    except csv.Error as exc:
        raise DataError(f"malformed CSV ({exc})", where=where) from None
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", where=where) from None

    if "" in header:
        raise DataError(f"header column {header.index('') + 1} has no name", where=f"{where}: row {header_line}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"duplicate column name(s) {', '.join(dupes)}", where=f"{where}: row {header_line}")
    if not rows:
        raise DataError("the file has a header but no data rows", where=where)
    return header, np.array(rows, dtype=str), lines



def read_csv(path, target=None, *, features=None):
    """Read a CSV file with a header row.

    ``target``: a column name, a list of names, or None (the last column). ``features``:
    the feature columns to keep, in order (default: every non-target column).
    Returns ``(x, y, feature_names)``: x float64 (N, F); y (N,) for one target or (N, k)
    for a list — int64 if every value is an integer, float64 if every value is a number,
    else str; feature_names list[str]. With ``target=[]`` y is None.
    """
    header, cells, lines = read_csv_cells(path)
    where = str(path)
    single = isinstance(target, str) or target is None
    targets = [header[-1]] if target is None else [target] if single else list(target)
    absent = [t for t in targets if t not in header]
    if absent:
        raise DataError(
            f"target column(s) {', '.join(map(repr, absent))} not found; available columns: "
            f"{', '.join(header)}",
            where=where,
        )
    if features is None:
        feature_names = [h for h in header if h not in targets]
    else:
        feature_names = list(features)
        absent = [c for c in feature_names if c not in header]
        if absent:
            raise DataError(
                f"feature column(s) {', '.join(map(repr, absent))} not found; available columns: "
                f"{', '.join(header)}",
                where=where,
            )
    if not feature_names:
        raise DataError("no feature columns besides the target", where=where)

    x = _parse_features(cells, [header.index(c) for c in feature_names], feature_names, lines, where)
    check_finite(x, path, lines=lines)
    if not targets:
        return x, None, feature_names
    y = _parse_targets(cells[:, [header.index(t) for t in targets]], targets, lines, where)
    return x, (y[:, 0] if single else y), feature_names


def _parse_features(cells, columns, names, lines, where) -> np.ndarray:
    """Float64 (N, F) features; the first non-numeric cell raises naming row, column and value."""
    sub = np.char.strip(cells[:, columns])
    try:
        return sub.astype(np.float64)
    except ValueError:
        pass
    for i, row in enumerate(sub.tolist()):  # slow path only to locate the bad cell
        for j, value in enumerate(row):
            try:
                float(value)
            except ValueError:
                what = "is empty" if value == "" else f"has a non-numeric value {value!r}"
                raise DataError(
                    f"feature column {names[j]!r} {what}", where=f"{where}: row {lines[i]}"
                ) from None
    raise AssertionError("unreachable: astype failed but every cell parsed")


def _parse_targets(cells, names, lines, where) -> np.ndarray:
    """Target cells as int64 if all integers, float64 if all numbers, else str."""
    cells = np.char.strip(cells)
    empty = cells == ""
    if empty.any():
        i, j = np.argwhere(empty)[0]
        raise DataError(f"target column {names[j]!r} is empty", where=f"{where}: row {lines[i]}")
    if all(re.fullmatch(r"[+-]?\d+", v) for v in cells.ravel().tolist()):
        return cells.astype(np.int64)
    try:
        y = cells.astype(np.float64)
    except ValueError:
        return cells
    bad = ~np.isfinite(y)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(
            f"target column {names[j]!r} holds a non-finite value {str(cells[i, j])!r}",
            where=f"{where}: row {lines[i]}",
        )
    return y


def read_array_file(path, target=None, *, targets: bool = True) -> dict:
    """Read any supported data file into a dict of arrays, dispatching on the file name.

    ``.npz`` -> read_npz's dict; a folder of .npy files -> its arrays (``x.npy`` ...,
    memory-mapped); ``.npy`` -> {x}; ``.csv`` -> {x, y, feature_names} (``target`` as in
    read_csv); IDX (``.idx``, ``*-ubyte``, optionally ``.gz``) -> {x} for one file, or
    {x, y} plus {x_test, y_test} when the file is MNIST's ``*images*`` file and the matching
    ``*labels*`` (and ``t10k-*``) files sit beside it. With ``targets=False`` (an
    autoencoder's data) an .npz needs only ``x`` and a CSV's columns are all features
    except ``target`` when one is named.
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() and (path / "x.npy").is_file():  # a folder of .npy files, mapped
        out = read_npy_dir(path)
        check_arrays(out, path, ("x", "y") if targets else ("x",))
        return out
    if suffix == ".npz":
        return read_npz(path, required=("x", "y") if targets else ("x",))
    if suffix == ".npy":  # inputs only (an autoencoder's data), memory-mapped
        out = {"x": load_npy(path)}
        check_arrays(out, path, ("x",))
        return out
    if suffix == ".csv":
        if not targets:
            target = [] if target is None else [target] if isinstance(target, str) else target
        x, y, names = read_csv(path, target)
        return {"x": x, "y": y, "feature_names": names}
    if is_idx_path(path):  # float IDX files exist too
        out = read_idx_set(path, read=idx_array)
        check_arrays(out, path, ("x",))
        return out
    raise DataError(
        "unsupported file type; expected .npz, .npy, .csv or IDX (.idx, *-ubyte, optionally "
        ".gz)",
        where=str(path),
    )


def check_finite(x: np.ndarray, path, *, name: str = "x", lines=None) -> None:
    """Raise DataError naming the file and the first sample (or CSV row) with NaN or inf."""
    if x.dtype.kind not in "fc" or x.size == 0:
        return
    rows = max(1, (1 << 22) // max(1, x[0].size))  # a block at a time: x may be a file's map
    for start in range(0, len(x), rows):
        bad = ~np.isfinite(x[start:start + rows].reshape(-1, x[0].size)).all(axis=1)
        if bad.any():
            break
    if bad.any():
        i = start + int(np.argmax(bad))
        if lines is not None:
            raise DataError("features contain NaN or infinite values", where=f"{path}: row {lines[i]}")
        raise DataError(f"{name} contains NaN or infinite values (first at sample {i})", where=str(path))

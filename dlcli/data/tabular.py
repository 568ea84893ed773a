"""Tabular data as users have it: a CSV file with named columns, some of them text, some
cells empty, an id column among the features.

Columns: ``data.target`` (default the last column), ``data.features`` (names or globs,
default every other column) minus ``data.exclude`` (names or globs). A feature column whose
cells are not all numbers is a category column, one-hot encoded (notes 1.6.2) over its
sorted distinct values into columns named ``<column>=<value>``; the categories are saved
with the run, and a value outside them at eval or predict time is refused with its row.

Empty cells (and ``NA``, ``N/A``, ``NaN``, ``nan``, ``null``, ``NULL``, ``None``) are
missing values. ``data.missing``: ``refuse`` (default) names the first one's row and
column; ``drop`` skips the rows that have one; ``mean`` fills a feature with its mean over
the training split (for a one-hot column: the category's frequency), saved with the run and
used again at eval and predict time. A missing target is never filled.

An integer column of unique, steadily increasing (or decreasing) values is most likely a
row id: it gets a warning, since as a feature it lets the model learn the file's order.
"""

import fnmatch
import re

import numpy as np

from dlcli.data import readers
from dlcli.errors import DataError

MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"})
MISSING_POLICIES = ("refuse", "drop", "mean")
# A text column with more distinct values than this (and than half its rows) is an
# identifier or free text rather than a category; it must be named to be encoded.
MAX_AUTO_CATEGORIES = 20


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _match(patterns, header, key, where) -> list[str]:
    """Columns of ``header`` matched by names or globs, in the order of ``patterns``."""
    out = []
    for pattern in patterns:
        found = [h for h in header if fnmatch.fnmatchcase(h, pattern)]
        if not found:
            raise DataError(f"{key}: {pattern!r} matches no column; the columns are "
                            f"{', '.join(header)}", where=where)
        out += [h for h in found if h not in out]
    return out


def select_columns(header, target, features=None, exclude=None, *, targets=True, where=""):
    """(feature columns, target columns, explicitly named features) of a CSV header."""
    if targets:
        wanted = [header[-1]] if target is None else _as_list(target)
    else:
        wanted = [t for t in _as_list(target) if t in header]
    absent = [t for t in wanted if t not in header]
    if absent:
        raise DataError(f"target column(s) {', '.join(map(repr, absent))} not found; available "
                        f"columns: {', '.join(header)}", where=where)
    named = _match(_as_list(features), header, "data.features", where) if features else []
    chosen = named or [h for h in header if h not in wanted]
    dropped = set(_match(_as_list(exclude), header, "data.exclude", where)) if exclude else set()
    both = [c for c in named if c in wanted]
    if both:
        raise DataError(f"data.features: {', '.join(map(repr, both))} is also the target",
                        where=where)
    chosen = [c for c in chosen if c not in dropped and c not in wanted]
    if not chosen:
        raise DataError("no feature columns left besides the target (see data.features and "
                        "data.exclude)", where=where)
    return chosen, wanted, set(named)


def _numbers(column: np.ndarray):
    """(float64 values with NaN where missing, missing mask, mask of cells that are not
    numbers) of one column of stripped cells."""
    missing = np.isin(column, list(MISSING_TOKENS))
    values = np.full(column.shape, np.nan)
    bad = np.zeros(column.shape, bool)
    present = ~missing
    try:
        values[present] = column[present].astype(np.float64)
    except ValueError:
        for i in np.flatnonzero(present):
            try:
                values[i] = float(column[i])
            except ValueError:
                bad[i] = True
    return values, missing, bad


# Names of row ids: Id, ID, index, pandas' "Unnamed: 0", user_id, "user id", PassengerId.
ID_NAME = re.compile(r"^(?:[Ii][Dd]|[Ii]ndex|Unnamed: ?\d+)$|[_ ][Ii][Dd]$|[a-z](?:Id|ID)$")


def _id_like(values: np.ndarray, name: str | None = None) -> str | None:
    """Why a column of numbers looks like a row id (None when it does not): unique
    integers increasing (or decreasing) down the file, or unique integers in a column
    named like an id (a shuffled file's ``Id``)."""
    if len(values) < 10 or not np.isfinite(values).all() or (values != np.round(values)).any():
        return None
    steps = np.diff(values)
    if (steps > 0).all() or (steps < 0).all():
        return (f"unique integers from {values[0]:.0f} to {values[-1]:.0f} in file order; "
                "as a feature it lets the model learn the file's order")
    if name is not None and ID_NAME.search(name) and len(np.unique(values)) == len(values):
        return ("named like an id, a different integer in every row; as a feature it "
                "lets the model memorize rows")
    return None


class Table:
    """How a run reads its CSV feature columns: ``columns`` (CSV names, in order),
    ``categories`` ({column: [values]} of the one-hot encoded ones), ``missing`` (the
    policy) and ``fill`` (the training means per encoded feature, policy ``mean``)."""

    def __init__(self, columns, categories=None, missing="refuse", fill=None):
        self.columns = list(columns)
        self.categories = dict(categories or {})
        self.missing = missing
        self.fill = None if fill is None else [float(v) for v in fill]

    @property
    def feature_names(self) -> list[str]:
        """The model's input features: a number column keeps its name, a category column
        becomes ``<column>=<value>`` per category."""
        names = []
        for c in self.columns:
            names += [f"{c}={v}" for v in self.categories[c]] if c in self.categories else [c]
        return names

    def state(self) -> dict:
        return {"columns": self.columns, "categories": self.categories,
                "missing": self.missing, "fill": self.fill}

    @classmethod
    def from_state(cls, state: dict) -> "Table":
        return cls(state["columns"], state.get("categories"), state.get("missing", "refuse"),
                   state.get("fill"))


def read_table(path, target=None, *, features=None, exclude=None, missing="refuse",
               table: Table | None = None, targets=True, drop_rows=True) -> dict:
    """Read a CSV into ``{"x", "y", "feature_names", "table", "lines", "warnings"}``.

    x float64 (N, F) with NaN where a value is missing (policy ``mean``: filled later, on
    the training split's means, by :func:`fill_missing`); y as ``readers.read_csv`` types
    it (None without a target); lines the file's line number of each row kept.
    ``table`` (a trained run's): read exactly its columns and categories.
    ``drop_rows=False`` (predict: one output per input row) refuses a missing value that
    policy ``drop`` would skip.
    """
    header, cells, lines = readers.read_csv_cells(path)
    where = str(path)
    cells = np.char.strip(cells)
    if table is not None:
        absent = [c for c in table.columns if c not in header]
        if absent:
            raise DataError(f"lacks the column(s) {', '.join(map(repr, absent))} the model was "
                            f"trained on", where=where)
        columns, explicit = table.columns, set(table.columns)
        if targets:
            wanted = [header[-1]] if target is None else _as_list(target)
            absent = [t for t in wanted if t not in header]
            if absent:
                raise DataError(f"target column(s) {', '.join(map(repr, absent))} not found; "
                                f"available columns: {', '.join(header)}", where=where)
        else:
            wanted = []
        missing = table.missing
        if missing == "drop" and not drop_rows:
            missing = "refuse"  # one output row per input row
    else:
        columns, wanted, explicit = select_columns(header, target, features, exclude,
                                                   targets=targets, where=where)
    if missing not in MISSING_POLICIES:
        raise DataError(f"data.missing: expected one of {', '.join(MISSING_POLICIES)}, got "
                        f"{missing!r}", where=where)
    warnings = []
    lines = np.asarray(lines)
    target_cells = cells[:, [header.index(t) for t in wanted]] if wanted else None
    if target_cells is not None:
        empty = np.isin(target_cells, list(MISSING_TOKENS))
        if empty.any() and missing == "drop":
            keep = ~empty.any(axis=1)
            cells, target_cells, lines = cells[keep], target_cells[keep], lines[keep]
        elif empty.any():
            i, j = np.argwhere(empty)[0]
            raise DataError(f"target column {wanted[j]!r} is empty; a missing target is never "
                            "filled in (data.missing: drop skips such rows)",
                            where=f"{where}: row {lines[i]}")

    parsed = {}  # column -> (values or category cells, missing mask)
    categories = dict(table.categories) if table is not None else {}
    for name in columns:
        column = cells[:, header.index(name)]
        values, gaps, bad = _numbers(column)
        if table is not None and name in table.categories:
            known = table.categories[name]
            unseen = ~gaps & ~np.isin(column, known)
            if unseen.any():
                i = int(np.argmax(unseen))
                raise DataError(f"column {name!r} has the value {str(column[i])!r}, which the model "
                                f"was not trained on (known: {_preview(known)})",
                                where=f"{where}: row {lines[i]}")
            parsed[name] = (column, gaps)
            continue
        if bad.any() and table is not None:
            i = int(np.argmax(bad))
            raise DataError(f"feature column {name!r} has a non-numeric value {str(column[i])!r}",
                            where=f"{where}: row {lines[i]}")
        if bad.any():
            numeric = np.count_nonzero(~gaps & ~bad)
            if numeric >= 0.9 * np.count_nonzero(~gaps):
                i = int(np.argmax(bad))
                raise DataError(f"feature column {name!r} holds numbers but this cell is "
                                f"{str(column[i])!r}; fix it (or leave it empty and set "
                                "data.missing)", where=f"{where}: row {lines[i]}")
            distinct = sorted(set(column[~gaps].tolist()))
            if (len(distinct) > max(MAX_AUTO_CATEGORIES, len(column) // 2)
                    and name not in explicit):
                raise DataError(f"text column {name!r} has {len(distinct)} distinct values in "
                                f"{len(column)} rows: an identifier or free text rather than "
                                f"a category; add it to data.exclude (or name it in "
                                "data.features to one-hot encode it anyway)", where=where)
            categories[name] = distinct
            parsed[name] = (column, gaps)
            continue
        why = None if name in explicit or gaps.any() else _id_like(values, name)
        if why:
            warnings.append(f"{where}: column {name!r} looks like a row id ({why}): add it "
                            "to data.exclude")
        parsed[name] = (values, gaps)

    gaps = np.column_stack([parsed[c][1] for c in columns])
    if gaps.any():
        if missing == "refuse":
            i, j = np.argwhere(gaps)[0]
            raise DataError(f"column {columns[j]!r} is empty; dlcli does not guess missing "
                            "values: set data.missing to mean (fill with the training mean) "
                            "or drop (skip such rows)", where=f"{where}: row {lines[i]}")
        if missing == "drop":
            keep = ~gaps.any(axis=1)
            warnings.append(f"{where}: dropped {np.count_nonzero(~keep)} of {len(keep)} rows "
                            "with empty cells (data.missing: drop)")
            if not keep.any():
                raise DataError("every row has an empty cell (data.missing: drop)", where=where)
            parsed = {c: (v[keep], g[keep]) for c, (v, g) in parsed.items()}
            lines = lines[keep]
            target_cells = None if target_cells is None else target_cells[keep]
    blocks = []
    for name in columns:
        values, gaps = parsed[name]
        if name in categories:
            block = (values[:, None] == np.asarray(categories[name])[None, :]).astype(np.float64)
            block[gaps] = np.nan
            blocks.append(block)
        else:
            blocks.append(values[:, None])
    x = np.concatenate(blocks, axis=1)
    if not np.isfinite(x[~np.isnan(x)]).all():
        readers.check_finite(np.where(np.isnan(x), 0.0, x), path, lines=lines.tolist())
    found = Table(columns, {c: categories[c] for c in columns if c in categories}, missing,
                  table.fill if table is not None else None)
    y = None
    if target_cells is not None:
        y = readers._parse_targets(target_cells, wanted, lines.tolist(), where)
        if isinstance(target, str) or (target is None and targets):
            y = y[:, 0]
    return {"x": x, "y": y, "feature_names": columns, "table": found,
            "lines": lines.tolist(), "warnings": warnings}


def fill_missing(x: np.ndarray, table: Table, train_index=None, where="") -> None:
    """Fill the NaN (missing) entries of ``x`` in place: with ``table.fill`` when set,
    otherwise with the means over ``x[train_index]``, which become ``table.fill``."""
    gaps = np.isnan(x)
    if not gaps.any() and table.fill is not None:
        return
    if table.fill is None:
        rows = x if train_index is None else x[train_index]
        counts = np.count_nonzero(~np.isnan(rows), axis=0)
        if (counts == 0).any():
            name = table.feature_names[int(np.argmax(counts == 0))]
            raise DataError(f"feature {name!r} has no value in the training split to take a "
                            "mean of (data.missing: mean)", where=where)
        table.fill = np.nansum(rows, axis=0) / counts
        table.fill = [float(v) for v in table.fill]
    if gaps.any():
        x[gaps] = np.take(np.asarray(table.fill), np.nonzero(gaps)[1])


def _preview(values, limit: int = 10) -> str:
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")

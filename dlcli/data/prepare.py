"""From a validated ``data`` config section to train / validation / test splits.

Internal layouts: feature vectors (N, F); images (N, C, H, W). Files may hold images as
NHW, NHWC or NCHW (``data.layout``); synthetic ``images`` are NHWC.
"""

import csv
import dataclasses
import functools
import pathlib

import numpy as np

from dlcli.data import cache, lazy, readers
from dlcli.data.mapped import read_npy_dir
from dlcli.data.layout import _to_internal, detect_layout  # noqa: F401 (detect_layout re-exported)
from dlcli.data.normalize import Normalizer
from dlcli.data.targets import encode_targets, row_namer
from dlcli.errors import DataError
from dlcli.registry import DATASETS

SYNTHETIC_PREFIX = "synthetic:"
# Independent streams under one seed: the synthetic data and the split permutation must not
# share random bits (a split drawn from the same stream as the points it splits is biased).
DATA_STREAM, SPLIT_STREAM = 0, 1


def stream_rng(seed: int, stream: int) -> np.random.Generator:
    """Generator for one named use of the run seed: default_rng(SeedSequence(seed).spawn(...)[stream])."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(stream + 1)[stream])


@dataclasses.dataclass
class Splits:
    """Prepared data. x in internal layout, in the dtype ``prepare`` was given (float64 by
    default): an ndarray, or for a memory-mapped file of ``lazy.STREAM_BYTES`` or more a
    :class:`dlcli.data.lazy.Rows` read a batch at a time; y int64 (N,) class labels or
    float64 (N, k).

    ``class_names`` is a list for class targets (label i is class_names[i]) and None for value
    targets; ``input_shape`` excludes the batch axis; ``normalizer`` is already applied to
    every x here; ``feature_names`` lists CSV feature columns (None otherwise) so that
    ``load_inputs`` can pick the same columns at predict time.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] | None
    input_shape: tuple[int, ...]
    normalizer: Normalizer
    feature_names: list[str] | None = None
    table: object = None  # tabular.Table of a CSV: its columns, categories, missing values
    warnings: list[str] = dataclasses.field(default_factory=list)
    first_rows: dict | None = None  # class label -> where it first occurs ("...: row 12")

    @property
    def n_classes(self) -> int | None:
        return len(self.class_names) if self.class_names is not None else None


def prepare(spec: dict, base_dir: pathlib.Path, seed: int, *, targets: bool = True,
            classes: list[str] | None = None, dtype=np.float64, table=None,
            memory: int | None = None) -> Splits:
    """Load ``spec['source']``, encode targets, split, and normalize on the training split.

    ``targets=False`` (task reconstruction: the target is the input) needs no ``y`` and
    ignores one that is there: every y is then an empty float64 (N, 0) array and
    ``class_names`` is None. ``classes`` declares the class names (a trained run's, when
    scoring other data): a label outside them is a DataError.

    Synthetic data come from ``stream_rng(seed, DATA_STREAM)``; the split permutation from
    ``stream_rng(seed, SPLIT_STREAM)``. Test rows: the file's x_test/y_test, else
    ``round(test_split * N)`` rows; validation: ``round(validation_split * rest)`` rows of the
    remainder; the rest trains (at least one row, else DataError). Splits keep file order.
    Every x comes out in ``dtype`` (normalized in float64, then cast: training asks for its
    compute dtype and gets the values a float64 split cast to it would hold); with
    ``dtype=None`` and no normalization, in the source's own dtype (scoring a run reads raw
    splits this way and normalizes the one it scores with the run's statistics).
    ``memory`` (bytes available): integer labels that make more class names than fit are
    refused, naming the row, before any name is made.
    """
    layout = spec.get("layout", "auto")
    raw, where, synthetic = _load(spec, base_dir, seed, targets, table)
    x, y = raw["x"], raw.get("y")
    if y is None and targets:
        raise DataError("the file holds inputs but no targets (for an autoencoder, which "
                        "reconstructs its inputs, set task: reconstruction)", where=where)
    x_test, y_test = raw.get("x_test"), raw.get("y_test")
    streamed = lazy.is_mapped(x) and x.nbytes >= lazy.STREAM_BYTES
    if not streamed:  # a small file is read into memory: its epochs need no conversion
        x, x_test = (None if a is None else np.array(a) if lazy.is_mapped(a) else a
                     for a in (x, x_test))

    x = _to_internal(x, "x", layout, where, synthetic, cast=False)  # cast per split below
    if x_test is not None:
        x_test = _to_internal(x_test, "x_test", layout, where, synthetic, cast=False)
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(
                f"x_test samples have shape {x_test.shape[1:]} but x samples have {x.shape[1:]}",
                where=where,
            )

    if targets:
        mode = spec.get("labels", "auto")
        declared = classes if classes is not None else raw.get("class_names")
        rows = row_namer(where, raw.get("lines"), len(y))
        y, y_test, class_names, first_rows = encode_targets(
            y, y_test, declared, mode, where, rows,
            "model's" if classes is not None else "declared", memory)
    else:
        y, class_names, first_rows = np.zeros((x.shape[0], 0)), None, None
        y_test = None if x_test is None else np.zeros((x_test.shape[0], 0))

    split_rng = stream_rng(seed, SPLIT_STREAM)
    n = x.shape[0]
    order = split_rng.permutation(n)
    n_test = 0 if x_test is not None else _count(spec.get("test_split", 0.0), n)
    n_val = _count(spec.get("validation_split", 0.0), n - n_test)
    test_idx = np.sort(order[:n_test])
    val_idx = np.sort(order[n_test : n_test + n_val])
    train_idx = np.sort(order[n_test + n_val :])
    if train_idx.size == 0:
        raise DataError(
            f"no training rows left: {n} rows, {n_test} for test and {n_val} for validation "
            "(lower data.test_split or data.validation_split)",
            where=where,
        )
    # Statistics and splits come from blocks of rows of the raw array, each converted to
    # float64 on its own: the only full-size arrays made are the splits themselves (a
    # 60,000-image uint8 set took ~4 s and 1.3 GB through float64 temporaries).
    if raw.get("table") is not None and x.dtype.kind == "f" and (
            raw["table"].fill is not None or np.isnan(x).any()):
        from dlcli.data.tabular import fill_missing
        fill_missing(x, raw["table"], train_idx, where)  # data.missing: mean
    normalizer = Normalizer.fit(spec.get("normalize", "none"), x, train_idx)
    # A memory-mapped file of STREAM_BYTES or more stays on disk: each split is the raw map
    # and its row numbers, normalized and cast a batch at a time (dlcli.data.lazy).
    split = (functools.partial(_lazy_split, normalizer=normalizer, dtype=dtype) if streamed
             else functools.partial(normalizer.transform, dtype=dtype))
    if x_test is None:
        x_test, y_test = split(x, test_idx), y[test_idx]
    else:
        x_test = split(x_test, None)
    return Splits(
        x_train=split(x, train_idx),
        y_train=y[train_idx],
        x_val=split(x, val_idx),
        y_val=y[val_idx],
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        input_shape=tuple(int(d) for d in x.shape[1:]),
        normalizer=normalizer,
        feature_names=raw.get("feature_names"),
        table=raw.get("table"),
        warnings=list(raw.get("warnings", [])),
        first_rows=first_rows,
    )


def _lazy_split(x, index, normalizer, dtype):
    if dtype is None and normalizer.kind != "none":
        raise ValueError("a normalized copy needs a floating dtype")
    return lazy.Rows(x, index, normalizer, dtype)


def load_inputs(path, spec: dict, base_dir: pathlib.Path | None = None, feature_names=None,
                table=None) -> np.ndarray:
    """Read inputs for ``dlcli predict``: x in internal layout and in the file's own dtype
    (memory-mapped when the file allows), NOT normalized.

    ``path`` (relative paths resolve against ``base_dir``, default the working directory):
    .npz -> array ``x``; .npy, or a folder of .npy files -> its (``x``) array; .csv -> the
    ``feature_names`` columns when given (store Splits.feature_names with the run), else
    every column except ``spec['target']``;
    IDX -> the array itself. Layout is converted as in ``prepare``.
    """
    path = _resolve(path, base_dir)
    where = str(path)
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        x = readers.read_array_file(path, targets=False)["x"]
    elif path.is_dir() and (path / "x.npy").is_file():
        x = read_npy_dir(path)["x"]
        readers.check_arrays({"x": x}, path, ("x",))
    elif suffix == ".csv" and table is not None:
        from dlcli.data.tabular import fill_missing, read_table
        x = read_table(path, spec.get("target"), table=table, targets=False,
                       drop_rows=False)["x"]
        fill_missing(x, table, where=where)
    elif suffix == ".csv":
        if feature_names is not None:
            x, _, _ = readers.read_csv(path, [], features=feature_names)
        else:
            x = _csv_without_target(path, spec.get("target"))
    elif readers.is_idx_path(path):
        x = cache.idx_array(path)
        readers.check_finite(x, path)
    else:
        raise DataError("unsupported file type; expected .npz, .npy, .csv or IDX",
                        where=where)
    if len(x) == 0:
        raise DataError("holds 0 samples; nothing to predict", where=where)
    return _to_internal(x, "x", spec.get("layout", "auto"), where, synthetic=False,
                        cast=False)


def _csv_without_target(path: pathlib.Path, target) -> np.ndarray:
    """Every column of a CSV except the target column(s) that are present."""
    targets = [] if target is None else [target] if isinstance(target, str) else list(target)
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), [])
    present = [t for t in targets if t in [h.strip() for h in header]]
    x, _, _ = readers.read_csv(path, present)
    return x


def _resolve(path, base_dir) -> pathlib.Path:
    path = pathlib.Path(path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = pathlib.Path(base_dir) / path
    return path


def _load(spec: dict, base_dir, seed: int, targets: bool = True, table=None):
    """(raw dict, where-string for errors, synthetic?) for the spec's source."""
    source = str(spec["source"])
    if not source.lower().endswith(".csv"):  # these keys name CSV columns: never ignored
        given = [k for k in ("target", "features", "exclude") if spec.get(k)]
        given += ["missing"] if spec.get("missing", "refuse") != "refuse" else []
        if given:
            if source.startswith(SYNTHETIC_PREFIX):
                labels = "it generates its inputs and labels"
            elif readers.is_idx_path(pathlib.Path(source)):
                labels = "its labels are the *labels* IDX file beside it"
            else:
                labels = "its inputs and labels are the arrays named x and y"
            raise DataError(f"data.{given[0]} applies to the columns of a CSV file; this "
                            f"source holds arrays ({labels}): remove data.{given[0]}",
                            where=source)
    if source.startswith(SYNTHETIC_PREFIX):
        name = source[len(SYNTHETIC_PREFIX) :]
        try:
            generator = DATASETS.get(name)
        except KeyError as exc:
            raise DataError(exc.args[0], where="data.source") from None
        from dlcli.data.synthetic import validate_params
        params, problems = validate_params(name, spec.get("params") or {})
        if problems:
            key, problem = problems[0]
            raise DataError(problem, where=f"data.params.{key}" if key else "data.params")
        try:
            x, y = generator(stream_rng(seed, DATA_STREAM), **params)
        except TypeError as exc:
            raise DataError(f"bad parameters for {source}: {exc}", where="data.params") from None
        return {"x": np.asarray(x), "y": np.asarray(y)}, source, True
    path = _resolve(source, base_dir)
    if path.is_dir() and not (path / "x.npy").is_file():
        path = _mnist_in_dir(path)
    if path.suffix.lower() == ".csv":
        from dlcli.data.tabular import read_table
        raw = read_table(path, spec.get("target"), features=spec.get("features"),
                         exclude=spec.get("exclude"), missing=spec.get("missing", "refuse"),
                         table=table, targets=targets)
        return raw, str(path), False
    raw = readers.read_array_file(path, spec.get("target"), targets=targets)
    raw["warnings"] = list(raw.get("warnings", [])) + cache.take_warnings()
    return raw, str(path), False  # read_array_file checked x (and x_test) are finite


def _mnist_in_dir(folder: pathlib.Path) -> pathlib.Path:
    """The train-images IDX file of an MNIST-style folder."""
    found = sorted(folder.glob("train-images*")) or sorted(folder.glob("*images*"))
    found = [p for p in found if readers.is_idx_path(p)]
    if not found:
        raise DataError(
            "a data folder must hold x.npy and y.npy (optional x_test.npy, y_test.npy, "
            "class_names.npy), or MNIST-style IDX files (train-images-idx3-ubyte[.gz], "
            "train-labels-idx1-ubyte[.gz], optional t10k-* test files)",
            where=str(folder),
        )
    return found[0]


def _count(fraction: float, n: int) -> int:
    """round(fraction * n) rows, as an int."""
    if not 0 <= float(fraction) < 1:
        raise DataError(f"split fractions must be in [0, 1); got {fraction}")
    return int(round(float(fraction) * n))

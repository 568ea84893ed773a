"""Regenerate the bundled datasets (digits.npz, iris.csv) from scikit-learn's copies.

scikit-learn is NOT a dependency of dlcli: it is needed only to run this script once,
from a throwaway virtual environment::

    python -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn
    /tmp/skl/bin/python datasets/make_datasets.py            # writes next to this script
    /tmp/skl/bin/python datasets/make_datasets.py --check    # compares with the files here

The script reads the raw files scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``
and ``sklearn/datasets/data/iris.csv``) without importing scikit-learn, so the values are
copied verbatim, then cross-checks them against ``sklearn.datasets.load_digits`` /
``load_iris``. See README.md for provenance and licences.

Outputs:
    digits.npz  x uint8 (1797, 8, 8) pixel counts 0..16; y int64 (1797,) digit 0..9;
                class_names <U1 (10,) '0'..'9'. Loads with np.load(allow_pickle=False).
    iris.csv    header sepal_length,sepal_width,petal_length,petal_width,species;
                150 rows; species in {setosa, versicolor, virginica}.
"""

import argparse
import csv
import gzip
import importlib.util
import io
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]


def sklearn_data_dir() -> pathlib.Path:
    """Folder of scikit-learn's bundled raw dataset files."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-learn is not installed in this interpreter; see the docstring")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def build_digits(data_dir: pathlib.Path) -> dict[str, np.ndarray]:
    """digits.csv.gz: 1797 rows of 64 pixel counts then the digit."""
    with gzip.open(data_dir / "digits.csv.gz", "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    assert table.shape == (1797, 65), table.shape
    pixels, digits = table[:, :64], table[:, 64]
    assert pixels.min() >= 0 and pixels.max() <= 16
    assert set(np.unique(digits).tolist()) == set(range(10))
    return {
        "x": pixels.reshape(-1, 8, 8).astype(np.uint8),
        "y": digits.astype(np.int64),
        "class_names": np.array([str(d) for d in range(10)], dtype="<U1"),
    }


def build_iris(data_dir: pathlib.Path) -> str:
    """iris.csv: a header '150,4,setosa,versicolor,virginica' then 4 measurements and a class index."""
    with open(data_dir / "iris.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    n_rows, n_features, names = int(header[0]), int(header[1]), header[2:]
    assert (n_rows, n_features, names) == (150, 4, ["setosa", "versicolor", "virginica"])
    assert len(body) == n_rows
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(IRIS_COLUMNS)
    for row in body:
        assert len(row) == n_features + 1, row
        writer.writerow([*row[:n_features], names[int(row[n_features])]])
    return out.getvalue()


def cross_check(digits: dict[str, np.ndarray], iris_text: str) -> None:
    """Compare with scikit-learn's loaders (the public API over the same files)."""
    from sklearn.datasets import load_digits, load_iris

    reference = load_digits()
    assert np.array_equal(reference.images.astype(np.uint8), digits["x"])
    assert np.array_equal(reference.target, digits["y"])
    reference = load_iris()
    rows = list(csv.reader(io.StringIO(iris_text)))[1:]
    assert np.allclose(reference.data, np.array([r[:4] for r in rows], dtype=float))
    assert [reference.target_names[t] for t in reference.target] == [r[4] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE, help="output folder")
    parser.add_argument("--check", action="store_true", help="compare with existing files")
    args = parser.parse_args()

    data_dir = sklearn_data_dir()
    digits = build_digits(data_dir)
    iris_text = build_iris(data_dir)
    cross_check(digits, iris_text)

    if args.check:
        with np.load(args.out / "digits.npz", allow_pickle=False) as existing:
            same = sorted(existing.files) == sorted(digits) and all(
                existing[k].dtype == v.dtype and np.array_equal(existing[k], v)
                for k, v in digits.items()
            )
        same = same and (args.out / "iris.csv").read_text() == iris_text
        print("bundled datasets match scikit-learn's copies" if same else "MISMATCH")
        sys.exit(0 if same else 1)

    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "digits.npz", **digits)
    (args.out / "iris.csv").write_text(iris_text)
    print(f"wrote {args.out / 'digits.npz'} and {args.out / 'iris.csv'}")


if __name__ == "__main__":
    main()

"""The bundled datasets in datasets/: sizes, dtypes, and that prepare() reads them."""

import numpy as np

from dlcli.data import BUNDLED_DIR, prepare, read_csv, read_npz


def test_digits_npz():
    with np.load(BUNDLED_DIR / "digits.npz", allow_pickle=False) as archive:
        assert sorted(archive.files) == ["class_names", "x", "y"]
        assert archive["x"].dtype == np.uint8 and archive["x"].shape == (1797, 8, 8)
        assert archive["y"].dtype == np.int64 and archive["y"].shape == (1797,)
        assert archive["class_names"].dtype == np.dtype("<U1")
    data = read_npz(BUNDLED_DIR / "digits.npz")
    assert data["x"].max() == 16 and data["x"].min() == 0
    assert sorted(np.unique(data["y"]).tolist()) == list(range(10))
    assert data["class_names"].tolist() == [str(d) for d in range(10)]


def test_iris_csv():
    x, y, names = read_csv(BUNDLED_DIR / "iris.csv", "species")
    assert x.shape == (150, 4)
    assert names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    classes, counts = np.unique(y, return_counts=True)
    assert classes.tolist() == ["setosa", "versicolor", "virginica"] and counts.tolist() == [50] * 3


def test_prepare_reads_both():
    base = {"params": {}, "layout": "auto", "validation_split": 0.1, "test_split": 0.2,
            "normalize": "standard", "labels": "auto"}
    digits = prepare({**base, "source": str(BUNDLED_DIR / "digits.npz"), "target": None}, BUNDLED_DIR, 0)
    assert digits.input_shape == (1, 8, 8) and digits.n_classes == 10
    assert len(digits.x_train) + len(digits.x_val) + len(digits.x_test) == 1797
    iris = prepare({**base, "source": "iris.csv", "target": "species"}, BUNDLED_DIR, 0)
    assert iris.input_shape == (4,) and iris.class_names == ["setosa", "versicolor", "virginica"]

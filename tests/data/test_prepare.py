"""prepare(): sources, splits, layouts, label modes, normalization; load_inputs()."""

import pathlib

import numpy as np
import pytest

from dlcli.data.prepare import Normalizer, Splits, detect_layout, load_inputs, prepare
from dlcli.errors import DataError


def spec(source, **overrides):
    base = {
        "source": source,
        "params": {},
        "target": None,
        "layout": "auto",
        "validation_split": 0.0,
        "test_split": 0.0,
        "normalize": "none",
        "labels": "auto",
    }
    base.update(overrides)
    return base


# --- synthetic sources and splits ----------------------------------------------------


def test_synthetic_splits_sizes_and_types():
    s = prepare(
        spec("synthetic:moons", params={"n_samples": 100}, validation_split=0.25, test_split=0.2),
        pathlib.Path("."),
        seed=7,
    )
    assert isinstance(s, Splits)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (60, 20, 20)
    assert s.x_train.dtype == np.float64 and s.y_train.dtype == np.int64
    assert s.input_shape == (2,) and s.class_names == ["0", "1"] and s.n_classes == 2


def test_splits_are_disjoint_and_cover_the_data():
    s = prepare(spec("synthetic:blobs", params={"n_samples": 90}, validation_split=0.2, test_split=0.3), ".", 1)
    rows = np.concatenate([s.x_train, s.x_val, s.x_test])
    assert len(np.unique(rows, axis=0)) == 90


def test_same_seed_same_splits_other_seed_other_splits():
    sp = spec("synthetic:xor", params={"n_samples": 50}, validation_split=0.2)
    a, b, c = prepare(sp, ".", 3), prepare(sp, ".", 3), prepare(sp, ".", 4)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_val, c.x_val)


def test_empty_splits_have_zero_rows():
    s = prepare(spec("synthetic:blobs", params={"n_samples": 30, "n_features": 3}), ".", 0)
    assert s.x_val.shape == (0, 3) and s.y_val.shape == (0,)
    assert s.x_test.shape == (0, 3) and s.y_test.shape == (0,)


def test_regression_and_multilabel_targets_are_float_values():
    s = prepare(spec("synthetic:regression", params={"n_samples": 20}), ".", 0)
    assert s.y_train.shape == (20, 1) and s.y_train.dtype == np.float64 and s.class_names is None
    s = prepare(spec("synthetic:multilabel", params={"n_samples": 20, "n_labels": 3}), ".", 0)
    assert s.y_train.shape == (20, 3) and s.y_train.dtype == np.float64


def test_synthetic_images_become_nchw():
    s = prepare(spec("synthetic:images", params={"n_samples": 8, "height": 6, "width": 5}), ".", 0)
    assert s.x_train.shape == (8, 3, 6, 5) and s.input_shape == (3, 6, 5)


def test_unknown_synthetic_name_and_bad_params():
    with pytest.raises(DataError, match="did you mean 'moons'"):
        prepare(spec("synthetic:moon"), ".", 0)
    with pytest.raises(DataError, match="data.params"):
        prepare(spec("synthetic:moons", params={"colour": 1}), ".", 0)


def test_no_training_rows_left():
    with pytest.raises(DataError, match="no training rows"):
        prepare(spec("synthetic:xor", params={"n_samples": 2}, test_split=0.5, validation_split=0.9), ".", 0)


# --- normalization -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_normalization_fitted_on_train_only(kind):
    s = prepare(
        spec("synthetic:blobs", params={"n_samples": 300, "n_features": 3}, normalize=kind,
             validation_split=0.3, test_split=0.3),
        ".",
        0,
    )
    if kind == "standard":
        np.testing.assert_allclose(s.x_train.mean(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(s.x_train.std(axis=0), 1)
        assert not np.allclose(s.x_val.mean(axis=0), 0, atol=1e-6)
        assert not np.allclose(s.x_test.std(axis=0), 1, atol=1e-6)
    else:
        np.testing.assert_allclose(s.x_train.min(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(s.x_train.max(axis=0), 1)
        assert not np.allclose(s.x_val.min(axis=0), 0, atol=1e-6)


def test_normalizer_constant_feature_and_state_roundtrip(tmp_path):
    x = np.c_[np.arange(5.0), np.full(5, 3.0)]
    norm = Normalizer.fit("standard", x)
    out = norm.apply(x)
    np.testing.assert_array_equal(out[:, 1], 0)  # std 0 -> scale 1
    np.savez(tmp_path / "n.npz", **norm.state())
    with np.load(tmp_path / "n.npz", allow_pickle=False) as state:
        again = Normalizer.from_state(state)
    assert again.kind == "standard"
    np.testing.assert_array_equal(again.apply(x), out)
    with pytest.raises(DataError, match="do not match"):
        norm.apply(np.zeros((2, 3)))


def test_image_normalization_is_per_channel():
    x = np.random.default_rng(0).normal(5, 2, size=(40, 3, 4, 4))
    norm = Normalizer.fit("standard", x)
    assert norm.shift.shape == (3, 1, 1)
    np.testing.assert_allclose(norm.apply(x).mean(axis=(0, 2, 3)), 0, atol=1e-12)


# --- layouts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, layout, expected",
    [
        ((10, 4), "auto", "vector"),
        ((10,), "auto", "vector"),
        ((10, 8, 8), "auto", "NHW"),
        ((10, 3, 32, 32), "auto", "NCHW"),
        ((10, 1, 28, 28), "auto", "NCHW"),
        ((10, 32, 32, 3), "auto", "NHWC"),
        ((10, 28, 28, 1), "auto", "NHWC"),
        ((10, 3, 5, 3), "NHWC", "NHWC"),
        ((10, 3, 5, 3), "NCHW", "NCHW"),
        ((10, 8, 8), "NHW", "NHW"),
    ],
)
def test_detect_layout(shape, layout, expected):
    assert detect_layout(shape, layout) == expected


@pytest.mark.parametrize(
    "shape, layout",
    [((10, 3, 5, 3), "auto"), ((10, 8, 8, 8), "auto"), ((10, 4), "NHWC"), ((10, 8, 8), "NCHW"),
     ((10, 1, 8, 8), "NHW"), ((2, 2, 2, 2, 2), "auto")],
)
def test_detect_layout_errors(shape, layout):
    with pytest.raises(DataError, match="layout|dimensions"):
        detect_layout(shape, layout)


def test_ambiguous_layout_error_asks_for_data_layout():
    with pytest.raises(DataError, match="set data.layout"):
        detect_layout((5, 3, 7, 3))


def test_nhwc_file_is_transposed_to_nchw(tmp_path):
    x = np.random.default_rng(0).random((6, 5, 4, 3))
    np.savez(tmp_path / "img.npz", x=x, y=np.arange(6) % 2)
    s = prepare(spec("img.npz"), tmp_path, 0)
    assert s.input_shape == (3, 5, 4)
    np.testing.assert_array_equal(s.x_train, x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(load_inputs("img.npz", spec("img.npz"), tmp_path), s.x_train)


# --- files ---------------------------------------------------------------------------


def test_npz_with_test_arrays_and_class_names(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x=rng.random((20, 4)), y=rng.integers(0, 3, 20),
        x_test=rng.random((5, 4)), y_test=np.array([0, 1, 2, 3, 0]),
        class_names=np.array(["a", "b", "c", "d"]),
    )
    s = prepare(spec("d.npz", test_split=0.5, validation_split=0.25), tmp_path, 0)
    assert len(s.x_test) == 5 and len(s.x_val) == 5 and len(s.x_train) == 15  # test_split unused
    assert s.class_names == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(s.y_test, [0, 1, 2, 3, 0])


def test_integer_labels_keep_their_meaning(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 1)), y=np.array([2, 5, 2, 5]))
    s = prepare(spec("d.npz"), tmp_path, 0)
    assert s.class_names == [str(i) for i in range(6)]
    np.testing.assert_array_equal(s.y_train, [2, 5, 2, 5])


def test_label_modes(tmp_path):
    np.savez(tmp_path / "f.npz", x=np.zeros((4, 1)), y=np.array([0.0, 1.0, 1.0, 0.0]))
    auto = prepare(spec("f.npz"), tmp_path, 0)
    assert auto.class_names is None and auto.y_train.shape == (4, 1)
    forced = prepare(spec("f.npz", labels="class"), tmp_path, 0)
    assert forced.class_names == ["0", "1"] and forced.y_train.dtype == np.int64
    np.savez(tmp_path / "i.npz", x=np.zeros((4, 1)), y=np.array([0, 1, 1, 0]))
    value = prepare(spec("i.npz", labels="value"), tmp_path, 0)
    assert value.y_train.dtype == np.float64 and value.y_train.shape == (4, 1)
    np.savez(tmp_path / "s.npz", x=np.zeros((2, 1)), y=np.array(["a", "b"]))
    with pytest.raises(DataError, match="must be numeric"):
        prepare(spec("s.npz", labels="value"), tmp_path, 0)


def test_string_labels_outside_declared_class_names(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 1)), y=np.array(["cat", "dog"]), class_names=np.array(["cat"]))
    with pytest.raises(DataError, match="'dog' is not one of the declared classes") as info:
        prepare(spec("d.npz"), tmp_path, 0)
    assert "d.npz" in str(info.value)


def test_csv_source_relative_to_base_dir_and_load_inputs(tmp_path):
    (tmp_path / "sub").mkdir()
    rows = "\n".join(f"{i},{i * 2},{'yes' if i % 2 else 'no'}" for i in range(10))
    (tmp_path / "sub" / "t.csv").write_text("a,b,answer\n" + rows + "\n")
    s = prepare(spec("sub/t.csv", target="answer", normalize="standard", test_split=0.2), tmp_path, 0)
    assert s.class_names == ["no", "yes"] and s.feature_names == ["a", "b"] and s.input_shape == (2,)
    # predict: the target column is dropped, nothing is normalized.
    raw = load_inputs("sub/t.csv", spec("sub/t.csv", target="answer"), tmp_path)
    assert raw.shape == (10, 2) and raw[3].tolist() == [3.0, 6.0]
    (tmp_path / "new.csv").write_text("b,extra,a\n4,9,2\n")
    picked = load_inputs(tmp_path / "new.csv", spec("x"), feature_names=s.feature_names)
    assert picked.tolist() == [[2.0, 4.0]]


def test_missing_file_names_the_resolved_path(tmp_path):
    with pytest.raises(DataError, match="no such file") as info:
        prepare(spec("nope.npz"), tmp_path, 0)
    assert str(tmp_path / "nope.npz") in str(info.value)

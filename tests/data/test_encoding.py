"""one_hot and encode_labels: the notes' examples and error cases."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlcli.data.encoding import encode_labels, one_hot
from dlcli.errors import DataError


def test_one_hot_notes_example_2():
    # notes 1.6.2 example 2: y = [3 0 2] -> 3x4
    expected = np.array([[0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0]], dtype=float)
    out = one_hot([3, 0, 2])
    assert out.shape == (3, 4) and out.dtype == np.float64
    np.testing.assert_array_equal(out, expected)


def test_one_hot_notes_example_3():
    # notes 1.6.2 example 3: v = [5 0 4 4 3] -> 5x6
    expected = np.zeros((5, 6))
    expected[[0, 1, 2, 3, 4], [5, 0, 4, 4, 3]] = 1
    np.testing.assert_array_equal(one_hot([5, 0, 4, 4, 3]), expected)


def test_one_hot_notes_example_1_with_declared_classes():
    # notes 1.6.2 example 1: z = [4] -> [0 0 0 0 1]
    np.testing.assert_array_equal(one_hot([4], n_classes=5), [[0, 0, 0, 0, 1]])


def test_one_hot_rows_sum_to_one_and_argmax_roundtrips():
    labels = np.random.default_rng(0).integers(0, 7, size=50)
    out = one_hot(labels, 7)
    np.testing.assert_array_equal(out.sum(axis=1), 1)
    np.testing.assert_array_equal(out.argmax(axis=1), labels)


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]])
def test_one_hot_rejects_labels_outside_declared_classes(labels):
    with pytest.raises(DataError, match="outside"):
        one_hot(labels, n_classes=3)


def test_one_hot_rejects_fractional_labels():
    with pytest.raises(DataError, match="integer"):
        one_hot([0.5, 1.0])


def test_encode_strings_sorted_and_stable():
    labels, names = encode_labels(["virginica", "setosa", "versicolor", "setosa"])
    assert names == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(labels, [2, 0, 1, 0])
    assert labels.dtype == np.int64
    # Row order does not change the mapping.
    _, names_reversed = encode_labels(["setosa", "versicolor", "virginica"][::-1])
    assert names_reversed == names


def test_encode_numbers_sort_numerically():
    labels, names = encode_labels([10, 2, 33, 2])
    assert names == ["2", "10", "33"]
    np.testing.assert_array_equal(labels, [1, 0, 2, 0])


def test_encode_with_declared_classes_keeps_their_order():
    labels, names = encode_labels(["b", "a", "c"], classes=["c", "b", "a"])
    assert names == ["c", "b", "a"]
    np.testing.assert_array_equal(labels, [1, 2, 0])


def test_encode_rejects_value_outside_declared_classes():
    with pytest.raises(DataError, match="'dog' is not one of the declared classes"):
        encode_labels(["cat", "dog"], classes=["cat", "bird"])


@given(st.lists(st.sampled_from(["b", "a", "c", "zz", "10"]), min_size=1, max_size=30))
def test_encode_labels_roundtrips_and_is_sorted(values):
    labels, names = encode_labels(values)
    assert names == sorted(set(values))
    assert [names[i] for i in labels] == values
    np.testing.assert_array_equal(one_hot(labels, len(names)).argmax(axis=1), labels)

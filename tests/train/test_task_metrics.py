"""Precision, recall, F1 and support of classifiers, against hand computations that follow
scikit-learn's definitions (``precision_recall_fscore_support``): precision = TP/(TP+FP),
recall = TP/(TP+FN), F1 = 2PR/(P+R), 0 where a denominator is 0 (its ``zero_division=0``);
a binary score is the positive class's (``pos_label=1``, the second class name); support
is the number of true samples of each class; macro F1 is the unweighted mean of the
per-class F1."""

import numpy as np
import pytest

from dlcli.train.metrics import full_metrics


def test_binary_confusion_precision_recall_f1():
    output = np.array([0.9, 0.2, 0.7, 0.4, 0.6, 0.8]).reshape(-1, 1)
    target = np.array([1, 0, 0, 1, 1, 0], dtype=float).reshape(-1, 1)
    # predicted 1 0 1 0 1 1: TP rows 0, 4; FP rows 2, 5; FN row 3; TN row 1
    m = full_metrics("binary", output, target)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["confusion_matrix"] == [[1, 2], [1, 2]]  # rows true 0/1, columns predicted 0/1
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))  # 4/7
    per = m["per_class"]
    # class 0 seen as the positive one: TP 1 (row 1), FP 1 (row 3), FN 2 (rows 2, 5)
    assert per["precision"] == pytest.approx([1 / 2, 2 / 4])
    assert per["recall"] == pytest.approx([1 / 3, 2 / 3])
    assert per["f1"] == pytest.approx([2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3), 4 / 7])
    assert per["support"] == [3, 3]


def test_binary_without_predicted_positives_scores_zero_not_nan():
    output = np.full((4, 1), 0.1)
    target = np.array([[1.0], [0.0], [1.0], [0.0]])
    m = full_metrics("binary", output, target)
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert m["confusion_matrix"] == [[2, 0], [2, 0]]


def test_classification_f1_support_and_macro_f1():
    target = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 1, 0, 1, 2, 2])
    output = np.eye(3)[pred]
    m = full_metrics("classification", output, target, n_classes=3)
    # class 0: TP 2, FP 0, FN 1; class 1: TP 1, FP 1, FN 1; class 2: TP 1, FP 1, FN 0
    precision, recall = [1.0, 1 / 2, 1 / 2], [2 / 3, 1 / 2, 1.0]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    assert m["precision"] == pytest.approx(precision)
    assert m["recall"] == pytest.approx(recall)
    assert m["f1"] == pytest.approx(f1)
    assert m["support"] == [3, 2, 1]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert m["per_class"]["f1"] == pytest.approx(f1)


def test_a_class_never_seen_nor_predicted_has_zero_scores():
    target = np.array([0, 1, 1])
    output = np.eye(3)[[0, 1, 0]]
    m = full_metrics("classification", output, target, n_classes=3)
    assert m["f1"][2] == 0.0 and m["support"][2] == 0

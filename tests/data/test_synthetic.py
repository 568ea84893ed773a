"""Synthetic generators: registered, deterministic, documented shapes and learnability."""

import numpy as np
import pytest

import dlcli.data  # noqa: F401  (registers the generators)
from dlcli.registry import DATASETS

CLASSIFIERS = ["linearly_separable", "xor", "moons", "circles", "spirals", "blobs", "images"]
ALL = CLASSIFIERS + ["regression", "multilabel"]


def generate(name, seed=0, **params):
    return DATASETS.get(name)(np.random.default_rng(seed), **params)


def test_all_generators_registered():
    assert set(ALL) <= set(DATASETS.names())


@pytest.mark.parametrize("name", ALL)
def test_deterministic_for_a_seed_and_different_across_seeds(name):
    params = {"n_samples": 40}
    x1, y1 = generate(name, 3, **params)
    x2, y2 = generate(name, 3, **params)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    x3, _ = generate(name, 4, **params)
    assert not np.array_equal(x1, x3)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classification_shapes_and_dtypes(name):
    x, y = generate(name, n_samples=37)
    assert x.dtype == np.float64 and x.shape[0] == 37
    assert y.dtype == np.int64 and y.shape == (37,)
    assert y.min() >= 0


@pytest.mark.parametrize(
    "name, params, x_shape, n_classes",
    [
        ("linearly_separable", {}, (200, 2), 2),
        ("xor", {}, (200, 2), 2),
        ("moons", {}, (200, 2), 2),
        ("circles", {}, (200, 2), 2),
        ("spirals", {"n_classes": 5, "n_samples": 100}, (100, 2), 5),
        ("blobs", {"n_classes": 4, "n_features": 6, "n_samples": 80}, (80, 6), 4),
        ("images", {"n_samples": 20, "height": 12, "width": 10, "channels": 1, "n_classes": 4}, (20, 12, 10, 1), 4),
        ("images", {"n_samples": 30}, (30, 32, 32, 3), 10),
    ],
)
def test_documented_shapes(name, params, x_shape, n_classes):
    x, y = generate(name, **params)
    assert x.shape == x_shape
    assert set(np.unique(y)) == set(range(n_classes))  # balanced labels: every class present


def test_regression_target_shape():
    x, y = generate("regression", n_samples=50, n_features=3)
    assert x.shape == (50, 3) and x.dtype == np.float64
    assert y.shape == (50, 1) and y.dtype == np.float64


def test_regression_target_is_nonlinear_but_smooth():
    x, y = generate("regression", n_samples=2000, n_features=2, noise=0.0)
    design = np.c_[x, np.ones(len(x))]
    linear_fit = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    # A linear model leaves much of the variance; the target is not linear.
    assert np.mean((y - linear_fit) ** 2) > 0.1 * np.var(y)


def test_multilabel_shape_and_values():
    x, y = generate("multilabel", n_samples=400, n_features=5, n_labels=3)
    assert x.shape == (400, 5) and y.shape == (400, 3) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1}
    # Each label is linearly separable: least squares on +-1 targets gets most right.
    design = np.c_[x, np.ones(len(x))]
    w = np.linalg.lstsq(design, 2.0 * y - 1, rcond=None)[0]
    assert np.mean((design @ w > 0) == y) > 0.9


def perceptron_errors(x, y, epochs=1000):
    """Errors of the classic perceptron after training to convergence (or ``epochs``)."""
    design = np.c_[x, np.ones(len(x))]
    target = 2 * y - 1
    w = np.zeros(design.shape[1])
    for _ in range(epochs):
        mistakes = 0
        for xi, ti in zip(design, target):
            if ti * (xi @ w) <= 0:
                w += ti * xi
                mistakes += 1
        if mistakes == 0:
            break
    return int(np.sum(target * (design @ w) <= 0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linearly_separable_is_separable_by_a_perceptron(seed):
    x, y = generate("linearly_separable", seed, n_samples=200)
    assert 0 < y.sum() < len(y)
    assert perceptron_errors(x, y) == 0


def test_xor_is_not_linearly_separable():
    x, y = generate("xor", n_samples=200)
    assert perceptron_errors(x, y, epochs=50) > 0


def test_images_classes_are_distinguishable_by_shift_invariant_features():
    # Oriented gratings at random phase: Fourier magnitudes (what conv + pooling can
    # approximate) separate the classes, while the raw pixel mean does not.
    x, y = generate("images", n_samples=400, height=16, width=16)
    features = np.abs(np.fft.fft2(x, axes=(1, 2))).reshape(len(x), -1)
    train, test = slice(0, 300), slice(300, None)
    centroids = np.stack([features[train][y[train] == k].mean(0) for k in range(10)])
    predicted = np.argmin(((features[test][:, None] - centroids) ** 2).sum(-1), axis=1)
    assert np.mean(predicted == y[test]) > 0.9


def test_blobs_are_centres_plus_scaled_noise():
    # the docstring's formula from the same draws, in the generator's order: centres, labels,
    # then the noise (several 4096-row blocks of the in-place construction)
    from dlcli.data.synthetic import _balanced_labels, blobs
    x, y = blobs(np.random.default_rng(3), n_samples=9000, n_classes=5, n_features=4,
                 spread=0.3, center_box=2.0)
    rng = np.random.default_rng(3)
    centers = rng.uniform(-2.0, 2.0, size=(5, 4))
    labels = _balanced_labels(rng, 9000, 5)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(x, centers[labels] + 0.3 * rng.standard_normal((9000, 4)))

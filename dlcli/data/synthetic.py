"""Synthetic datasets, registered in ``dlcli.registry.DATASETS``.

Each generator is ``fn(rng, n_samples=..., **params) -> (x, y)``: x float64, y int64 (N,)
class labels unless stated otherwise. The output depends only on ``rng`` and the
arguments, and no generator loops over samples in Python.
"""

import functools

import numpy as np

from dlcli import rules as r
from dlcli.registry import DATASETS


def validate_params(name: str, params) -> tuple[dict, list[tuple[str, str]]]:
    """Check ``data.params`` of ``synthetic:<name>`` against the rules its generator declares
    (``RULES``, given to :func:`_declares`) with the one checker of :mod:`dlcli.rules`.
    Returns (the params normalized by their rules; [(key, problem)])."""
    generator = DATASETS.get(name)
    if not isinstance(params, dict):
        return {}, [("", f"expected a mapping of parameters, got {r._show(params)}")]
    problems = [(str(key), r.unknown_key_message(str(key), list(generator.RULES)))
                for key in params if key not in generator.RULES]
    clean, broken = r.check(generator.RULES, {k: v for k, v in params.items()
                                              if k in generator.RULES})
    return clean, problems + broken


def _whole(minimum: int) -> r.Rule:
    """A whole number ≥ minimum; ``1e3`` (a float in YAML) is read as 1000."""
    return r.Rule(f"a whole number ≥ {minimum}",
                  lambda v: int(v) if r._is_number(v) and v == int(v) and v >= minimum
                  else r._FAIL, "integer", minimum=minimum, maximum=None)


def _declares(**rules):
    """Register a generator's parameter rules as data (``generator.RULES``); calling it checks
    its arguments against the same rules (config validation has already done so)."""
    def wrap(generator):
        @functools.wraps(generator)
        def checked(rng, **params):
            return generator(rng, **r.enforce(rules, params))
        checked.RULES = rules
        return checked
    return wrap


_SAMPLES = _whole(1)
_SPREAD = r.nonnegative_number


def _balanced_labels(rng: np.random.Generator, n_samples: int, n_classes: int) -> np.ndarray:
    """(N,) int64 labels with class counts differing by at most one, in random order."""
    return rng.permutation(np.arange(n_samples) % n_classes).astype(np.int64)


@DATASETS.register("linearly_separable")
@_declares(n_samples=_SAMPLES, margin=_SPREAD)
def linearly_separable(rng: np.random.Generator, n_samples: int = 200, margin: float = 0.5):
    """Two classes in 2-D split by a random line with a gap of ``2 * margin`` around it.

    Points are drawn uniformly from [-3, 3]^2, labelled by the side of a random line
    through a point near the origin (label 1 where w.x + b > 0), then pushed ``margin``
    away from it, so every point has distance >= margin to the line and a perceptron
    converges to zero errors. Returns x (N, 2), y (N,) in {0, 1}.
    """
    angle = rng.uniform(0, 2 * np.pi)
    w = np.array([np.cos(angle), np.sin(angle)])
    b = rng.uniform(-0.5, 0.5)
    x = rng.uniform(-3, 3, size=(n_samples, 2))
    side = np.where(x @ w + b > 0, 1.0, -1.0)
    x = x + margin * side[:, None] * w
    return x, (side > 0).astype(np.int64)


@DATASETS.register("xor")
@_declares(n_samples=_SAMPLES, noise=_SPREAD)
def xor(rng: np.random.Generator, n_samples: int = 200, noise: float = 0.25):
    """Four Gaussian clusters at (+-1, +-1) with std ``noise``; label 1 where the signs differ.

    Not linearly separable; one hidden layer solves it. Returns x (N, 2), y (N,) in {0, 1}.
    """
    cluster = _balanced_labels(rng, n_samples, 4)
    centers = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    x = centers[cluster] + noise * rng.standard_normal((n_samples, 2))
    return x, (cluster >= 2).astype(np.int64)


@DATASETS.register("moons")
@_declares(n_samples=_SAMPLES, noise=_SPREAD)
def moons(rng: np.random.Generator, n_samples: int = 200, noise: float = 0.1):
    """Two interleaving half circles (as scikit-learn's make_moons), Gaussian noise ``noise``.

    Returns x (N, 2), y (N,) in {0, 1}.
    """
    y = _balanced_labels(rng, n_samples, 2)
    t = rng.uniform(0, np.pi, n_samples)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.where(y[:, None] == 0, upper, lower) + noise * rng.standard_normal((n_samples, 2))
    return x, y


@DATASETS.register("circles")
@_declares(n_samples=_SAMPLES, noise=_SPREAD,
           factor=r.number(0.0, 1.0, min_open=True, max_open=True))
def circles(rng: np.random.Generator, n_samples: int = 200, noise: float = 0.05, factor: float = 0.5):
    """A unit circle (label 0) around a circle of radius ``factor`` (label 1), plus noise.

    Returns x (N, 2), y (N,) in {0, 1}.
    """
    y = _balanced_labels(rng, n_samples, 2)
    t = rng.uniform(0, 2 * np.pi, n_samples)
    radius = np.where(y == 0, 1.0, factor)
    x = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    return x + noise * rng.standard_normal((n_samples, 2)), y


@DATASETS.register("spirals")
@_declares(n_samples=_SAMPLES, n_classes=_whole(2), noise=_SPREAD)
def spirals(rng: np.random.Generator, n_samples: int = 300, n_classes: int = 3, noise: float = 0.2):
    """``n_classes`` interleaved spiral arms in 2-D (the CS231n spiral set).

    Arm k: radius r ~ U(0, 1), angle 4 r + 2 pi k / n_classes + noise * N(0, 1).
    Returns x (N, 2), y (N,) in [0, n_classes).
    """
    y = _balanced_labels(rng, n_samples, n_classes)
    radius = rng.uniform(0, 1, n_samples)
    theta = 4 * radius + 2 * np.pi * y / n_classes + noise * rng.standard_normal(n_samples)
    return np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1), y


@DATASETS.register("blobs")
@_declares(n_samples=_SAMPLES, n_classes=_whole(1), n_features=_whole(1), spread=_SPREAD,
           center_box=_SPREAD)
def blobs(
    rng: np.random.Generator,
    n_samples: int = 300,
    n_classes: int = 3,
    n_features: int = 2,
    spread: float = 1.0,
    center_box: float = 10.0,
):
    """Isotropic Gaussian blobs, one per class, std ``spread``, centres ~ U(-center_box, center_box).

    Returns x (N, n_features), y (N,) in [0, n_classes).
    """
    centers = rng.uniform(-center_box, center_box, size=(n_classes, n_features))
    y = _balanced_labels(rng, n_samples, n_classes)
    # centers[y] + spread * noise, built in place a block of rows at a time (the same values
    # without two more arrays of the data's size)
    x = rng.standard_normal((n_samples, n_features))
    x *= spread
    for start in range(0, n_samples, 4096):
        x[start:start + 4096] += centers[y[start:start + 4096]]
    return x, y


@DATASETS.register("regression")
@_declares(n_samples=_SAMPLES, n_features=_whole(1), noise=_SPREAD)
def regression(rng: np.random.Generator, n_samples: int = 200, n_features: int = 1, noise: float = 0.1):
    """A smooth nonlinear target of uniform inputs.

    x ~ U(-2, 2)^F; with random unit directions u, v and t = x.u, s = x.v:
    y = sin(2 t) + 0.5 s^2 + noise * N(0, 1) (for F = 1, u = v = 1).
    Returns x (N, n_features), y float64 (N, 1).
    """
    directions = rng.standard_normal((n_features, 2))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    if n_features == 1:
        directions = np.ones((1, 2))
    x = rng.uniform(-2, 2, size=(n_samples, n_features))
    t, s = (x @ directions).T
    y = np.sin(2 * t) + 0.5 * s**2 + noise * rng.standard_normal(n_samples)
    return x, y[:, None]


@DATASETS.register("multilabel")
@_declares(n_samples=_SAMPLES, n_features=_whole(1), n_labels=_whole(1))
def multilabel(rng: np.random.Generator, n_samples: int = 300, n_features: int = 4, n_labels: int = 3):
    """Independent binary labels, each a random linear threshold of standard normal inputs.

    y[:, j] = 1 where x . W[:, j] > b_j (b_j small, so each label is roughly balanced);
    a sigmoid output layer learns each column exactly.
    Returns x (N, n_features), y int64 (N, n_labels) of 0/1.
    """
    weights = rng.standard_normal((n_features, n_labels))
    bias = rng.uniform(-0.5, 0.5, n_labels)
    x = rng.standard_normal((n_samples, n_features))
    return x, (x @ weights > bias).astype(np.int64)


@DATASETS.register("images")
@_declares(n_samples=_SAMPLES, n_classes=_whole(2), height=_whole(2), width=_whole(2),
           channels=_whole(1), noise=_SPREAD)
def images(
    rng: np.random.Generator,
    n_samples: int = 500,
    n_classes: int = 10,
    height: int = 32,
    width: int = 32,
    channels: int = 3,
    noise: float = 0.3,
):
    """Small-CNN image classification: class-specific oriented stripes in a class colour.

    Class k is a sinusoidal grating at angle pi k / n_classes with 2 + k % 3 cycles per
    image and a fixed colour mix over the channels; each sample draws a random phase
    (shift), a contrast in [0.7, 1.3] and N(0, noise^2) pixel noise. Values lie roughly
    in [-1.5, 1.5]. Returns x float64 (N, height, width, channels) — the user-facing
    NHWC layout — and y (N,) in [0, n_classes).
    """
    y = _balanced_labels(rng, n_samples, n_classes)
    classes = np.arange(n_classes)
    angle = np.pi * classes / n_classes
    cycles = 2.0 + classes % 3
    # Colour mix per class: a smooth, distinct weighting of the channels in [0.4, 1].
    ch = np.arange(channels)
    colour = 0.7 + 0.3 * np.cos(2 * np.pi * (classes[:, None] / n_classes + ch[None, :] / max(channels, 1)))
    if channels == 1:
        colour = np.ones((n_classes, 1))
    rows = np.linspace(0, 1, height, endpoint=False)[:, None]
    cols = np.linspace(0, 1, width, endpoint=False)[None, :]
    # (N, H, W): each sample's grating along its class direction, at a random phase.
    proj = np.cos(angle[y])[:, None, None] * cols + np.sin(angle[y])[:, None, None] * rows
    phase = rng.uniform(0, 2 * np.pi, n_samples)[:, None, None]
    contrast = rng.uniform(0.7, 1.3, n_samples)[:, None, None, None]
    grating = np.sin(2 * np.pi * cycles[y][:, None, None] * proj + phase)
    x = contrast * grating[..., None] * colour[y][:, None, None, :]
    return x + noise * rng.standard_normal(x.shape), y

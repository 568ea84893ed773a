"""Autoencoders (notes 4.1): the bottleneck, the overcomplete warning, the PCA baseline of
``dlcli eval`` and the picture of inputs beside their reconstructions (``--images``).

An autoencoder is a model of ``task: reconstruction``: its target is its input, so its
output shape equals its input shape. Its *bottleneck* is the smallest layer output in the
network, dim(z); notes 4.1.1 call it undercomplete when dim(z) < dim(x). With
dim(z) >= dim(x) nothing stops the network from learning the identity.
"""

import pathlib

import numpy as np

from dlcli.errors import DataError
from dlcli.nn.layers.base import display_shape, size_of
from dlcli.train.build import bottleneck, overcomplete_warnings  # noqa: F401 (re-exported)

GRID_COLUMNS = 10


def pca_baseline(x_train: np.ndarray, x_eval: np.ndarray, k: int) -> dict:
    """PCA with ``k`` components fitted on ``x_train``, scored on ``x_eval`` (both normalized
    as the autoencoder saw them): {"k", "mse", "explained_variance_ratio"}. ``k`` is capped
    at the number of features and of training samples."""
    from dlcli.use import pca

    d = int(np.prod(x_train.shape[1:]))
    k = max(1, min(int(k), d, len(x_train)))
    fitted = pca.fit(x_train, k)
    return {"k": k, "mse": pca.reconstruction_mse(fitted, x_eval),
            "explained_variance_ratio": float(fitted.explained_variance_ratio[:k].sum())}


def check_image_target(path, run, force: bool = False) -> pathlib.Path:
    """Refuse (before any work) an existing file, another format, a run that is not an
    autoencoder of images, and a missing matplotlib."""
    path = pathlib.Path(path)
    if path.suffix.lower() != ".png":
        raise DataError("--images writes a PNG file; give a path ending in .png", where=str(path))
    if path.exists() and not (force and path.is_file()):
        raise DataError("already exists; dlcli does not overwrite files (choose another "
                        "--images path, or --force to replace it)", where=str(path))
    if run.task != "reconstruction":
        raise DataError(f"--images shows reconstructions; this run's task is {run.task}",
                        where=str(run.run_dir))
    if len(run.model.input_shape) != 3:
        raise DataError(f"--images needs image inputs (height, width, channels); this model "
                        f"takes {display_shape(run.model.input_shape)}", where=str(run.run_dir))
    from dlcli.use.plots import require_matplotlib
    require_matplotlib()
    return path


def _display(images: np.ndarray, low: float, high: float) -> np.ndarray:
    """(N, C, H, W) -> (N, H, W) or (N, H, W, 3) in [0, 1] for imshow."""
    scaled = np.clip((images - low) / (high - low if high > low else 1.0), 0.0, 1.0)
    scaled = scaled.transpose(0, 2, 3, 1)
    return scaled[..., 0] if scaled.shape[-1] == 1 else scaled[..., :3]


def write_image_grid(path, inputs: np.ndarray, outputs: np.ndarray, title: str = "",
                     columns: int = GRID_COLUMNS, force: bool = False) -> pathlib.Path:
    """A PNG grid: the first row ``inputs``, the second their reconstructions ``outputs``
    (both (N, C, H, W) in the raw inputs' units; the first ``columns`` samples). Both rows
    share the inputs' grey-level range, so a faint reconstruction looks faint. The file is
    created exclusively: an existing file is never overwritten."""
    from dlcli.use.plots import require_matplotlib, save
    Figure = require_matplotlib()
    path = pathlib.Path(path)
    n = min(columns, len(inputs))
    if n == 0:
        raise DataError("no samples to draw", where=str(path))
    low, high = float(inputs[:n].min()), float(inputs[:n].max())
    rows = (("input", _display(inputs[:n], low, high)),
            ("reconstruction", _display(outputs[:n], low, high)))
    fig = Figure(figsize=(1.1 * n, 2.6))
    axes = fig.subplots(2, n, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(images[c], cmap="gray" if images.ndim == 3 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    save(fig, path, force)
    return path

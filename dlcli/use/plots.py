"""Figures of runs (``dlcli plot``): learning curves, confusion matrix, first-layer filters,
training diagnostics.

matplotlib is an optional extra (``pip install 'dlcli[plot]'``). It is imported only here,
with the Agg backend and through ``matplotlib.figure.Figure`` (no pyplot global state), so
plotting works without a display and never touches the user's interactive backend.
Output files are created exclusively: an existing file is never overwritten.
"""

import difflib
import io
import math
import os
import pathlib

import numpy as np

from dlcli.errors import CheckpointError, DataError, DlcliError, EXIT_USAGE
from dlcli.use.runs import NOT_METRICS, Run, read_config, read_jsonl

INSTALL_HINT = "pip install 'dlcli[plot]' (from a checkout: pip install '.[plot]')"
MAX_TILES = 64


class MissingExtra(DlcliError):
    """An optional dependency is not installed."""

    exit_code = EXIT_USAGE


def require_matplotlib():
    """Import matplotlib with the Agg backend, or raise MissingExtra with the install hint."""
    try:
        import matplotlib
    except ImportError:
        raise MissingExtra(f"plotting needs matplotlib; install it with: {INSTALL_HINT}") \
            from None
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    return Figure


def check_output(path, force: bool = False) -> pathlib.Path:
    """Refuse an existing output file (unless ``force``) or a format matplotlib cannot
    write."""
    path = pathlib.Path(path)
    if path.exists() and not (force and path.is_file()):
        raise DataError("already exists; dlcli does not overwrite files (choose -o, or "
                        "--force to replace it)", where=str(path))
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf", "svg"):
        raise DataError("expected an output path ending in .png, .pdf or .svg", where=str(path))
    if not path.parent.is_dir():
        raise DataError("the output's directory does not exist", where=str(path))
    return path


def save(fig, path, force: bool = False) -> pathlib.Path:
    """Render ``fig`` in memory, then create ``path`` exclusively (O_EXCL) and write it;
    ``force``: replace it atomically (a temporary file renamed over it)."""
    path = check_output(path, force)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lower().lstrip("."), dpi=110)
    if force:
        from dlcli.train.io import atomic_writer
        try:
            with atomic_writer(path) as handle:
                handle.write(buffer.getvalue())
        except OSError as exc:
            raise DataError(f"cannot write the figure: {exc.strerror}",
                            where=str(path)) from None
        return path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise DataError("already exists; dlcli does not overwrite files (choose -o)",
                        where=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot write the figure: {exc.strerror}", where=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise DataError(f"cannot write the figure: {exc.strerror}", where=str(path)) from None
    return path


def _panel_grid(Figure, count: int, row_height: float):
    """A figure with ``count`` panels, two per row; spare panels hidden."""
    cols = min(2, count)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(6 * cols, row_height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes


# ---- learning curves --------------------------------------------------------------------
def available_metrics(runs: list[Run]) -> list[str]:
    """Base metric names (``loss``, ``accuracy``...) found in the runs' histories, loss first."""
    names: list[str] = []
    for run in runs:
        for row in run.history:
            for key in row:
                base = key[4:] if key.startswith("val_") else key
                if base not in NOT_METRICS and base not in names:
                    names.append(base)
    return sorted(names, key=lambda n: (n != "loss", names.index(n)))


def _series(run: Run, key: str):
    epochs, values = [], []
    for i, row in enumerate(run.history, 1):
        value = row.get(key)
        if key in row:
            epochs.append(row.get("epoch", i))
            values.append(float(value) if isinstance(value, (int, float)) else math.nan)
    return epochs, values


def curves_figure(runs: list[Run], metrics: list[str] | None = None):
    """One panel per metric; per run one colour, training solid, validation dashed.

    A metric named ``val_x`` (or ``lr``) is drawn alone; a base name ``x`` draws both
    ``x`` and ``val_x``.
    """
    Figure = require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    known = available_metrics(runs)
    every_key = {k for r in runs for row in r.history for k in row}
    if not metrics:
        metrics = known
    for name in metrics:
        if name not in every_key and f"val_{name}" not in every_key:
            names = sorted(k for k in every_key if (k[4:] if k.startswith("val_") else k)
                           not in NOT_METRICS or k == "lr")
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(f"no run has the metric {name!r}{hint}; known: "
                            f"{', '.join(known + ['lr']) or '(none)'}", where="--metric")
    if not metrics:
        raise DataError("the runs have no metrics yet (empty metrics.jsonl)",
                        where=str(runs[0].path))
    fig, axes = _panel_grid(Figure, len(metrics), 3.8)
    for ax, name in zip(axes, metrics):
        keys = [name] if name.startswith("val_") or name == "lr" else [name, f"val_{name}"]
        for i, run in enumerate(runs):
            colour = f"C{i % 10}"
            for key in keys:
                epochs, values = _series(run, key)
                if not epochs:
                    continue
                split = "val" if key.startswith("val_") else "train"
                ax.plot(epochs, values, color=colour, linestyle="--" if split == "val" else "-",
                        marker="o" if len(epochs) <= 20 else None, markersize=3,
                        label=f"{run.name} ({split})" if key != "lr" else run.name)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if name == "lr":
            ax.set_yscale("log")
        ax.legend(fontsize="small")
    return fig


# ---- confusion matrix -------------------------------------------------------------------
def confusion_figure(result: dict, title: str = ""):
    """Heatmap of ``result["confusion_matrix"]`` (rows: true class, columns: predicted)."""
    Figure = require_matplotlib()
    if "confusion_matrix" not in result:
        raise DataError(f"a confusion matrix needs a classification run; this one is "
                        f"{result.get('task')!r}")
    cm = np.asarray(result["confusion_matrix"])
    k = len(cm)
    names = result.get("class_names") or [str(i) for i in range(k)]
    size = max(4.0, 0.5 * k + 2)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(cm, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 3 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = result.get("accuracy")
    ax.set_title(f"{title} {result.get('split', '')} split"
                 + (f", accuracy {accuracy:.3f}" if isinstance(accuracy, float) else ""))
    if k <= 30:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize="small",
                        color="white" if cm[i, j] > threshold else "black")
    return fig


def run_confusion(run_dir, split: str = "test", checkpoint: str = "best") -> dict:
    """Load the run and evaluate it on ``split`` (confusion matrix included)."""
    from dlcli.use.evaluate import evaluate_run, load_run

    loaded = load_run(run_dir, checkpoint)
    if loaded.task not in ("classification", "binary"):
        raise DataError(f"a confusion matrix needs a classification run; this one is "
                        f"{loaded.task!r}", where=str(run_dir))
    return evaluate_run(loaded, split)


# ---- first-layer filters ----------------------------------------------------------------
PASS_THROUGH = ("flatten", "dropout", "activation")


def first_layer_filters(run_dir, checkpoint: str = "best") -> dict:
    """The first weight layer of an image model as images.

    Returns ``{"layer", "type", "tiles": (n, h, w) or (n, h, w, 3), "columns", "total"}``.
    A conv weight (out, in, kh, kw) gives one tile per filter (RGB when in = 3, else one per
    filter and input channel); a dense weight (units, C·H·W) right after the image (through
    flatten/dropout/activation only) gives each unit's weights reshaped to the image, in the
    (channel, row, column) order flatten uses.
    """
    run_dir = pathlib.Path(run_dir)
    config, warnings = read_config(run_dir / "config.yaml")
    if config is None:
        raise CheckpointError("not a dlcli run directory (no readable config.yaml)",
                              where=str(run_dir))
    model = config.get("model") or {}
    shape = model.get("input_shape") or []
    if len(shape) == 2:
        shape = [*shape, 1]
    if len(shape) != 3:
        raise DataError(f"filters are drawn for image models; this model's input shape is "
                        f"{tuple(shape)}", where=str(run_dir))
    h, w, c = (int(s) for s in shape)
    path = run_dir / "checkpoints" / f"{checkpoint}.npz"
    if not path.is_file():
        path = run_dir / "checkpoints" / "last.npz"
    if not path.is_file():
        raise CheckpointError("the run has no checkpoint", where=str(run_dir / "checkpoints"))
    layers = model.get("layers") or []
    with np.load(path, allow_pickle=False) as data:
        for index, layer in enumerate(layers):
            kind, name = layer.get("type"), layer.get("name")
            key = f"{name}.weight"
            if key not in data.files:
                if kind in PASS_THROUGH:
                    continue
                if kind in ("dense", "conv2d", "conv_transpose2d"):
                    raise CheckpointError(f"has no {key}", where=str(path))
                continue
            weight = np.asarray(data[key], dtype=np.float64)
            break
        else:
            raise DataError("the model has no dense or convolution layer", where=str(run_dir))
    before = [lay.get("type") for lay in layers[:index]]
    if kind == "conv_transpose2d":
        weight = weight.transpose(1, 0, 2, 3)  # (in, out, kh, kw) -> (out, in, kh, kw)
        kind = "conv2d"
    if weight.ndim == 4:
        out_ch, in_ch = weight.shape[:2]
        if in_ch == 3:
            tiles, columns = weight.transpose(0, 2, 3, 1), None
        elif in_ch == 1:
            tiles, columns = weight[:, 0], None
        else:
            shown = min(in_ch, 8)
            tiles, columns = weight[:, :shown].reshape(-1, *weight.shape[2:]), shown
    elif weight.ndim == 2:
        if any(t not in PASS_THROUGH for t in before) or weight.shape[1] != h * w * c:
            raise DataError(f"the first weight layer ({name}) does not see the image directly, "
                            "so its weights are not images", where=str(run_dir))
        images = weight.reshape(len(weight), c, h, w)
        if c == 3:
            tiles, columns = images.transpose(0, 2, 3, 1), None
        elif c == 1:
            tiles, columns = images[:, 0], None
        else:
            tiles, columns = images[:, :min(c, 8)].reshape(-1, h, w), min(c, 8)
    else:
        raise DataError(f"{name}.weight has shape {weight.shape}; cannot draw it",
                        where=str(path))
    total = len(tiles)
    if columns is None:
        tiles = tiles[:MAX_TILES]
        columns = math.ceil(math.sqrt(len(tiles)))
    else:
        tiles = tiles[:(MAX_TILES // columns) * columns]
    return {"layer": name, "type": kind, "tiles": tiles, "columns": int(columns),
            "total": int(total), "checkpoint": str(path)}


def mosaic(tiles: np.ndarray, columns: int, pad: int = 1) -> np.ndarray:
    """Tiles in a grid, each scaled on its own: to [-1, 1] by its largest |value| for
    single-channel tiles (NaN between tiles), to [0, 1] by min-max for RGB (white between)."""
    n, th, tw = tiles.shape[:3]
    rgb = tiles.ndim == 4
    rows = math.ceil(n / columns)
    shape = (rows * (th + pad) - pad, columns * (tw + pad) - pad) + ((3,) if rgb else ())
    grid = np.full(shape, 1.0 if rgb else np.nan)
    for k, tile in enumerate(tiles):
        if rgb:
            lo, hi = tile.min(), tile.max()
            tile = (tile - lo) / (hi - lo) if hi > lo else np.full_like(tile, 0.5)
        else:
            scale = np.abs(tile).max()
            tile = tile / scale if scale > 0 else tile
        r, col = divmod(k, columns)
        grid[r * (th + pad):r * (th + pad) + th, col * (tw + pad):col * (tw + pad) + tw] = tile
    return grid


def filters_figure(info: dict, title: str = ""):
    Figure = require_matplotlib()
    grid = mosaic(info["tiles"], info["columns"])
    height = max(3.0, 8.0 * grid.shape[0] / max(grid.shape[1], 1))
    fig = Figure(figsize=(8, min(height, 14)), layout="constrained")
    ax = fig.subplots()
    if grid.ndim == 3:
        ax.imshow(grid, interpolation="nearest")
    else:
        image = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        fig.colorbar(image, ax=ax, shrink=0.6, label="weight / max |weight| of its filter")
    ax.set_axis_off()
    shown = len(info["tiles"])
    more = f" (first {shown} of {info['total']})" if shown < info["total"] else ""
    ax.set_title(f"{title} {info['layer']} ({info['type']}) weights{more}".strip())
    return fig


# ---- diagnostics ------------------------------------------------------------------------
DIAGNOSTIC_PANELS = (("grad_norm", "gradient norm ‖g‖ (mean over steps)", True),
                     ("update_ratio", "update / weight ‖ΔW‖/‖W‖ (last step)", True),
                     ("weight_norm", "weight norm ‖W‖", False),
                     ("dead_fraction", "dead ReLU units (fraction)", False),
                     ("saturated_fraction", "saturated sigmoid/tanh units (fraction)", False))


def read_diagnostics(run_dir) -> tuple[list[dict], list[str]]:
    path = pathlib.Path(run_dir) / "diagnostics.jsonl"
    if not path.is_file():
        raise DataError("the run has no diagnostics.jsonl (train with training.diagnostics: "
                        "true)", where=str(run_dir))
    return read_jsonl(path)


def diagnostics_figure(rows: list[dict], title: str = ""):
    """One panel per diagnostic that has data; one line per layer over the epochs."""
    Figure = require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    series: dict[str, dict[str, tuple[list, list]]] = {}
    for i, row in enumerate(rows, 1):
        epoch = row.get("epoch", i)
        for layer, stats in (row.get("layers") or {}).items():
            for key, *_ in DIAGNOSTIC_PANELS:
                value = stats.get(key)
                if isinstance(value, (int, float)):
                    xs, ys = series.setdefault(key, {}).setdefault(layer, ([], []))
                    xs.append(epoch)
                    ys.append(float(value))
    panels = [p for p in DIAGNOSTIC_PANELS if p[0] in series]
    if not panels:
        raise DataError("diagnostics.jsonl holds no values")
    fig, axes = _panel_grid(Figure, len(panels), 3.6)
    layer_colours: dict[str, str] = {}
    for ax, (key, label, log) in zip(axes, panels):
        for layer, (xs, ys) in series[key].items():
            colour = layer_colours.setdefault(layer, f"C{len(layer_colours) % 10}")
            ax.plot(xs, ys, color=colour, marker="o" if len(xs) <= 20 else None,
                    markersize=3, label=layer)
        if log and all(v > 0 for _, ys in series[key].values() for v in ys):
            ax.set_yscale("log")
        if key == "update_ratio":
            ax.axhline(1e-3, color="grey", linestyle=":", linewidth=1)
        if key in ("dead_fraction", "saturated_fraction"):
            ax.set_ylim(-0.02, 1.02)
            ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig

"""Using a finished run: load it, score it (``dlcli eval``), apply it (``dlcli predict``)."""

import json
import pathlib
from dataclasses import dataclass

import numpy as np

from dlcli.config.resolve import Config, resolve
from dlcli.errors import CheckpointError, DataError
from dlcli.train import checkpoint as ckpt
from dlcli.train.checkpoint import find_checkpoint  # noqa: F401 (re-exported)


@dataclass
class LoadedRun:
    run_dir: pathlib.Path
    checkpoint: pathlib.Path
    config: Config
    model: object
    loss: object
    task: str
    normalizer: object
    class_names: list | None
    feature_names: list | None = None  # CSV feature columns, in training order
    table: object = None  # data.tabular.Table: categories and fill values of CSV columns


def load_run(target, which: str = "best") -> LoadedRun:
    """Rebuild a run's model from its config.yaml and the weights of one checkpoint."""
    from dlcli.config import loader
    from dlcli.data.prepare import Normalizer
    from dlcli.train.build import prepare

    run_dir, path = find_checkpoint(target, which)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise CheckpointError("no config.yaml beside the checkpoint's run", where=str(run_dir))
    raw = loader.load_file(config_path)
    config = resolve(raw, path=config_path)
    parts = ckpt.load(path)
    if config["model"]["input_shape"] is None:
        raise CheckpointError("the run's config.yaml has no model.input_shape", where=str(run_dir))
    prep = prepare(config, data=False)
    model = prep.model
    model.build(np.random.default_rng(0))
    ckpt.check_matches(parts["model"], model.expected_state(), str(path))
    model.load_state_dict(parts["model"])
    if not parts["normalizer"]:
        raise CheckpointError("holds no normalizer state", where=str(path))
    normalizer = Normalizer.from_state(parts["normalizer"])
    class_names = _read_names(run_dir / "classes.json")
    feature_names = _read_names(run_dir / "features.json")
    return LoadedRun(run_dir, path, config, model, prep.loss, raw.get("task", prep.task),
                     normalizer, class_names, feature_names, _read_table(run_dir))


def _read_table(run_dir):
    """The run's encoding.json as a Table (None for runs on arrays, or made before it)."""
    from dlcli.data.tabular import Table

    path = run_dir / "encoding.json"
    if not path.is_file():
        return None
    try:
        return Table.from_state(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise CheckpointError("is unreadable: expected the JSON object dlcli wrote",
                              where=str(path)) from None


def _read_names(path) -> list[str] | None:
    """A run's classes.json or features.json (a JSON list of strings), None when absent."""
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError):
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError("is unreadable: expected a JSON list of names", where=str(path))
    return names


def _check_input_shape(run, shape, where) -> None:
    expected = tuple(run.model.input_shape)
    if tuple(shape) != expected:
        from dlcli.nn.layers.base import display_shape
        raise DataError(f"inputs have shape {display_shape(tuple(shape))} per sample; "
                        f"the model takes {display_shape(expected)}", where=str(where))


SCORING_BATCH_MIN = 64


def scoring_batch_size(run: LoadedRun) -> int:
    """Samples per forward pass of ``eval`` and ``predict``: the run's training batch size
    (its training already held a batch that size, with everything kept for the backward
    pass), at least :data:`SCORING_BATCH_MIN` (a run trained one sample at a time, as the
    perceptron, would otherwise score one sample per call: ``dlcli predict`` of 100,000
    inputs to configs/logistic_regression.yaml took 2.3 s so, 1.1 s in batches of 64),
    1024 for a ``full``-batch run."""
    size = run.config["training"]["batch_size"]
    return 1024 if size == "full" else max(int(size), SCORING_BATCH_MIN)


def evaluate_run(run: LoadedRun, split: str | None = "test", data_source: str | None = None,
                 images=None, batch_size: int | None = None, force: bool = False) -> dict:
    """Loss and task metrics of ``run`` on a split of its data, or on ``data_source``: all of
    it when ``split`` is None (as ``predict`` reads it; split ``"all"``), else that split
    drawn as in training; in batches of ``batch_size`` (default
    :func:`scoring_batch_size`).

    Reconstruction runs also get ``bottleneck`` (the smallest layer output) and ``pca``: the
    MSE of PCA with k = the bottleneck's size, fitted on the same (normalized) training split
    and scored on the same split, the linear baseline of notes 4.1.2. ``images`` (a .png path,
    reconstruction runs of images only) writes inputs beside their reconstructions.
    """
    from dlcli.data.lazy import Chain, is_lazy
    from dlcli.data.prepare import prepare as prepare_data
    from dlcli.train.metrics import evaluate
    from dlcli.train.build import targets

    reconstruction = run.task == "reconstruction"
    if images is not None:
        from dlcli.use.reconstruction import check_image_target
        images = check_image_target(images, run, force)
    spec = dict(run.config["data"])
    if data_source is not None:
        spec["source"] = str(pathlib.Path(data_source).resolve())
    if split is None:
        split = "test" if data_source is None else "all"
    if split == "all":  # the whole file: every row goes to the "train" split, in file order
        spec["test_split"] = spec["validation_split"] = 0.0
    # Raw inputs, then the normalizer stored with the run (fitted on its training split).
    spec["normalize"] = "none"
    classes = run.class_names if run.task == "classification" else None
    splits = prepare_data(spec, run.config.base_dir, run.config["seed"],
                          targets=not reconstruction, classes=classes, dtype=None,
                          table=run.table)
    _check_input_shape(run, splits.input_shape, spec["source"])
    ys = dict(zip(("train", "val", "test"),
                  targets(splits, run.task, run.model.dtype, run.loss)))
    streamed = is_lazy(splits.x_train)
    if split == "all" and len(splits.x_test):  # a file's own x_test / y_test are part of it
        parts = (splits.x_train, splits.x_test)
        x = (Chain(*(normalized(p, run.normalizer, run.model.dtype) for p in parts))
             if streamed else normalized(np.concatenate(parts), run.normalizer,
                                         run.model.dtype))
        y = _joined(ys["train"], ys["test"])
    else:
        key = "train" if split == "all" else split
        x = normalized(getattr(splits, f"x_{key}"), run.normalizer, run.model.dtype)
        y = ys[key]
    if run.task == "reconstruction":
        y = x
    if len(x) == 0:
        key = {"val": "data.validation_split", "test": "data.test_split"}.get(split)
        hint = f" (the run's {key} is {spec[key.split('.')[1]]})" if key else ""
        raise DataError(f"the {split} split is empty{hint}", where=spec["source"])
    n_classes = len(run.class_names) if run.class_names else None
    result = evaluate(run.model, run.loss, x, y, run.task, n_classes=n_classes, full=True,
                      batch_size=batch_size or scoring_batch_size(run))
    result.update({"split": split, "samples": int(len(x)), "task": run.task,
                   "checkpoint": str(run.checkpoint)})
    if run.class_names:
        result["class_names"] = list(run.class_names)
    if run.task == "binary":
        result["positive_class"] = run.class_names[1] if run.class_names else "1"
    if data_source is not None:
        result["data"] = spec["source"]
    result["warnings"] = list(splits.warnings)
    if reconstruction:
        from dlcli.use.reconstruction import bottleneck, pca_baseline
        name, shape, size = bottleneck(run.model)
        result["bottleneck"] = {"layer": name, "shape": list(shape), "size": size}
        if streamed:  # PCA's SVD needs the whole training split in memory
            result["warnings"].append("no PCA baseline: the data are streamed from disk "
                                      "(larger than lazy.STREAM_BYTES)")
        else:
            x_train = run.normalizer.apply(splits.x_train)
            result["pca"] = pca_baseline(x_train, x, size)
    if images is not None:
        from dlcli.use.reconstruction import GRID_COLUMNS, write_image_grid
        from dlcli.train.metrics import predict
        shown = x[:GRID_COLUMNS]
        out = predict(run.model, run.loss, shown)
        write_image_grid(images, run.normalizer.invert(shown), run.normalizer.invert(out),
                         title=f"{run.run_dir.name}: {split} inputs (top) and reconstructions",
                         force=force)
        result["images"] = str(images)
    return result


def normalized(raw_x, normalizer, dtype):
    """``raw_x`` normalized into ``dtype``: a new array, or for rows streamed from a file
    (:class:`dlcli.data.lazy.Rows`) a view normalized a batch at a time."""
    from dlcli.data.lazy import Rows

    if isinstance(raw_x, Rows):
        return Rows(raw_x.source, raw_x.index, normalizer, dtype)
    return normalizer.transform(raw_x, None, dtype)


def _joined(first, second):
    """Two splits' targets one after the other (one-hot rows made per batch stay so)."""
    from dlcli.data.lazy import OneHotRows

    if isinstance(first, OneHotRows):
        return OneHotRows(np.concatenate([first.labels, second.labels]), first.n_classes,
                          first.dtype)
    return np.concatenate([first, second])


SCORES_FILE = "scores.json"


def record_scores(run: LoadedRun, result: dict) -> None:
    """Keep the scalar scores of an ``eval`` of the run's own data in ``<run>/scores.json``,
    keyed ``<checkpoint>/<split>`` (``dlcli compare`` shows the test ones). A run
    directory that cannot be written (read-only, another user's) is scored all the same."""
    from dlcli.train.io import write_json

    path = run.run_dir / SCORES_FILE
    try:
        scores = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        scores = {}
    if not isinstance(scores, dict):
        scores = {}
    scores[f"{run.checkpoint.stem}/{result['split']}"] = {
        k: v for k, v in result.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "samples"}
    try:
        write_json(path, scores)
    except OSError:
        pass


def predict_file(run: LoadedRun, input_path, batch_size: int | None = None,
                 layer: str | None = None):
    """Outputs of ``run`` for the inputs in ``input_path``: (outputs, predicted names or None),
    all in memory (``dlcli predict`` writes :func:`predict_batches` as they come instead).

    ``layer``: the activations of that named layer (after its activation function, e.g. an
    autoencoder's bottleneck codes) instead of the network's output. A reconstruction run's
    outputs are its reconstructions in the units of the raw inputs (the normalization
    undone). Image outputs are (N, height, width, channels), as in the notes.
    """
    _, vocabulary, batches = predict_batches(run, input_path, batch_size, layer)
    outs, picks = zip(*batches)
    names = None
    if vocabulary is not None:
        names = [vocabulary[i] for i in np.concatenate(picks).tolist()]
    return np.concatenate(outs), names


def predict_batches(run: LoadedRun, input_path, batch_size: int | None = None,
                    layer: str | None = None):
    """``(n, vocabulary, batches)``: the number of inputs in ``input_path``, the names a
    predicted label indexes (None when there are none) and an iterator of ``(outputs,
    labels or None)`` per batch of ``batch_size`` (default :func:`scoring_batch_size`), as
    :func:`predict_file` describes them.

    The inputs stay in their own dtype (a memory-mapped file stays on disk): each batch is
    read, normalized with the run's statistics and cast to the model's dtype on its own,
    so memory holds one batch and its outputs, not a float copy of the file.
    """
    from dlcli.data.lazy import Rows
    from dlcli.data.prepare import load_inputs

    spec = run.config["data"]
    raw = load_inputs(input_path, spec, pathlib.Path.cwd(), feature_names=run.feature_names,
                      table=run.table)
    _check_input_shape(run, raw.shape[1:], input_path)
    if len(raw) == 0:
        raise DataError("holds no samples", where=str(input_path))
    x = Rows(raw, None, run.normalizer, run.model.dtype)
    batch_size = batch_size or scoring_batch_size(run)
    if layer is not None:
        check_layer_name(run.model, layer)
    vocabulary = None
    if layer is None and run.task == "classification" and run.class_names:
        vocabulary = list(run.class_names)
    elif layer is None and run.task == "binary":
        vocabulary = list(run.class_names) if run.class_names else ["0", "1"]

    def batches():
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            if layer is not None:
                yield _display_layout(run.model.forward_to(xb, layer)), None
                continue
            out = run.loss.output(run.model.forward(xb, training=False, logits=True))
            if run.task == "reconstruction":
                yield _display_layout(run.normalizer.invert(out)), None
            elif vocabulary is not None and run.task == "classification":
                yield out, np.argmax(out, axis=1)
            elif vocabulary is not None:
                yield out, (out.reshape(len(out), -1)[:, 0] >= 0.5).astype(np.int64)
            else:
                yield out, None

    return len(x), vocabulary, batches()


def check_layer_name(model, name: str) -> None:
    """DataError naming the layers (and the closest one) when ``model`` has no layer ``name``."""
    import difflib

    names = [layer.name for layer in model.layers]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"the model has no layer {name!r}{hint}; its layers: {', '.join(names)}",
                        where="--layer")


def _display_layout(out: np.ndarray) -> np.ndarray:
    """Internal (N, C, H, W) images -> the notes' (N, H, W, C); vectors unchanged."""
    return np.ascontiguousarray(out.transpose(0, 2, 3, 1)) if out.ndim == 4 else out

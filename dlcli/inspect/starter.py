"""``dlcli init DATAFILE``: a commented starter config inferred from a data file.

What is inferred, and how (each choice is written into the config as a comment):

* target (CSV): ``--target``, else the first column named like a target (``target``,
  ``label``, ``class``, ``y``, ``outcome``, ``species``, ``survived``, any case), else the
  last column;
* task: text targets, and integer targets with at most ``MAX_CLASSES`` distinct values,
  are classes: two classes make a binary task (one sigmoid unit, binary cross-entropy),
  more a softmax over them with categorical cross-entropy; other numbers are values
  (regression: one identity unit, MSE);
* columns left out (CSV): id-like integer columns and text columns with a different value
  in most rows (names, tickets), as ``data.exclude``; other text columns are one-hot
  encoded by the data layer;
* empty cells: ``data.missing: mean`` when only features have some, ``drop`` when targets
  do;
* model: one hidden layer of 32 ReLU units for feature vectors; flatten and 128 ReLU units
  for images (the shipped ``configs/cnn_digits.yaml`` shows convolutions).

The config is resolved and its data prepared before it is written, so what ``init`` writes
trains as written; nothing is overwritten without ``force``.
"""

import json
import os
import pathlib

import numpy as np

from dlcli.errors import DataError

TARGET_NAMES = ("target", "label", "labels", "class", "y", "outcome", "species", "survived")
MAX_CLASSES = 20


def _guess_target(header: list[str]) -> tuple[str, str]:
    for name in header:
        if name.lower() in TARGET_NAMES:
            return name, "its name says so"
    return header[-1], "the last column"


def _csv_plan(path: pathlib.Path, target: str | None) -> dict:
    from dlcli.data import readers, tabular

    header, cells, _ = readers.read_csv_cells(path)
    cells = np.char.strip(cells)
    if target is not None and target not in header:
        raise DataError(f"--target: no column {target!r}; the columns are "
                        f"{', '.join(header)}", where=str(path))
    why = "chosen with --target"
    if target is None:
        target, why = _guess_target(header)
    exclude, notes = [], []
    target_gaps = np.isin(cells[:, header.index(target)], list(tabular.MISSING_TOKENS))
    feature_gaps = False
    for j, name in enumerate(header):
        if name == target:
            continue
        values, gaps, bad = tabular._numbers(cells[:, j])
        feature_gaps |= bool(gaps.any())
        if bad.any():
            distinct = len(set(cells[~gaps, j].tolist()))
            if distinct > max(tabular.MAX_AUTO_CATEGORIES, len(cells) // 2):
                exclude.append(name)
                notes.append(f"{name}: text with {distinct} distinct values in {len(cells)} "
                             "rows (an identifier or free text)")
        elif not gaps.any() and (why := tabular._id_like(values, name)):
            exclude.append(name)
            notes.append(f"{name}: a row id ({why.split(';')[0]})")
    missing = "drop" if target_gaps.any() else "mean" if feature_gaps else "refuse"
    return {"target": target, "target_why": why, "exclude": exclude, "notes": notes,
            "missing": missing}


def _task(y: np.ndarray, class_names) -> tuple[str, list | None]:
    """(classification | binary | regression, class names or None) of raw targets."""
    y = np.asarray(y)
    if class_names is not None:
        return ("binary" if len(class_names) == 2 else "classification"), list(class_names)
    if y.ndim > 1 and y.shape[1] > 1:
        return "regression", None
    y = y.reshape(len(y))
    # as the data layer reads them (data.labels: auto): floats are values
    if y.dtype.kind in "US" or (y.dtype.kind in "biu" and len(np.unique(y)) <= MAX_CLASSES):
        names = [str(v) for v in np.unique(y).tolist()]
        return ("binary" if len(names) == 2 else "classification"), names
    return "regression", None


def plan(data: pathlib.Path, target: str | None = None) -> dict:
    """Everything ``init`` decides about ``data``: source kind, target and columns, task,
    classes, input shape (height, width, channels) or (features,)."""
    from dlcli.data import readers
    from dlcli.data.prepare import _mnist_in_dir, detect_layout

    data = pathlib.Path(data)
    if data.is_dir() and not (data / "x.npy").is_file():  # else a folder of .npy files
        data = _mnist_in_dir(data)
    suffix = data.suffix.lower()
    out = {"source": data, "csv": suffix == ".csv"}
    if suffix == ".csv":
        from dlcli.data.tabular import read_table

        out.update(_csv_plan(data, target))
        raw = read_table(data, out["target"], exclude=out["exclude"] or None,
                         missing=out["missing"])
        out["input_shape"] = [int(raw["x"].shape[1])]
        out["categories"] = raw["table"].categories
        out["task"], out["classes"] = _task(raw["y"], None)
        return out
    if target is not None:
        raise DataError("--target names a CSV column; this file holds arrays", where=str(data))
    raw = readers.read_array_file(data)
    if "y" not in raw:
        raise DataError("holds inputs but no labels beside them (an IDX *images* file needs "
                        "its *labels* file in the same folder)", where=str(data))
    x = np.asarray(raw["x"])
    layout = detect_layout(x.shape, "auto", where=str(data))
    if layout == "vector":
        out["input_shape"] = [int(np.prod(x.shape[1:]))] if x.ndim > 1 else [1]
    elif layout == "NHW":
        out["input_shape"] = [int(x.shape[1]), int(x.shape[2]), 1]
    elif layout == "NHWC":
        out["input_shape"] = [int(s) for s in x.shape[1:]]
    else:
        out["input_shape"] = [int(x.shape[2]), int(x.shape[3]), int(x.shape[1])]
    names = raw.get("class_names")
    out["task"], out["classes"] = _task(raw["y"], None if names is None else names.tolist())
    return out


def _q(value) -> str:
    """A YAML scalar or flow list (JSON is YAML)."""
    return json.dumps(value)


def render(decided: dict, source_text: str, name: str) -> str:
    """The commented YAML of a starter config."""
    task, classes, shape = decided["task"], decided["classes"], decided["input_shape"]
    image = len(shape) == 3
    lines = [f"# A starter config written by dlcli init for {decided['source'].name}.",
             "# Train:   dlcli train THIS.yaml   (then dlcli eval RUN_DIR)",
             "# Every key: dlcli config THIS.yaml; options: README 'Writing a config'.",
             f"name: {_q(name)}", "seed: 0"]
    if task == "binary":
        lines.append(f"# binary: two classes, {classes[0]!r} and {classes[1]!r} (the positive "
                     "class, whose precision and recall eval reports)")
    elif task == "classification":
        shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
        lines.append(f"# classification: {len(classes)} classes ({shown})")
    else:
        lines.append("# regression: the target holds values, not classes")
    where = "absolute" if os.path.isabs(source_text) else "relative to this file"
    lines += [f"task: {task}", "data:", f"  source: {_q(source_text)}   # {where}"]
    if decided["csv"]:
        lines.append(f"  target: {_q(decided['target'])}   # {decided['target_why']}; "
                     "dlcli init --target COLUMN picks another")
        if decided["exclude"]:
            lines.append(f"  exclude: {_q(decided['exclude'])}   # left out: "
                         + "; ".join(decided["notes"]))
        else:
            lines.append("  exclude: []          # columns left out (names or globs)")
        lines.append("  # text columns are one-hot encoded; features: [...] keeps only some")
        note = {"mean": "empty feature cells filled with the training mean",
                "drop": "rows with an empty cell are skipped (some targets are empty)",
                "refuse": "no empty cells: any in later data are refused"}[decided["missing"]]
        lines.append(f"  missing: {decided['missing']}   # {note}")
    if task == "regression" and decided["csv"]:
        lines.append("  labels: value        # the target is a number to predict")
    lines += ["  test_split: 0.2      # held out for dlcli eval",
              "  validation_split: 0.1   # watched during training (val_loss)",
              "  normalize: standard  # inputs standardized on the training split", "model:",
              f"  input_shape: {_q(shape)}   # "
              + ("(height, width, channels)" if image else "features per sample"
                 + (f" ({', '.join(decided['categories'])} one-hot encoded)"
                    if decided.get("categories") else "")),
              "  layers:"]
    if image:
        lines += ["    - {type: flatten}    # configs/cnn_digits.yaml shows convolutions",
                  "    - {type: dense, units: 128, activation: relu}"]
    else:
        lines.append("    - {type: dense, units: 32, activation: relu}   # one hidden layer")
    if task == "classification":
        lines += [f"    - {{type: dense, units: {len(classes)}, activation: softmax}}   "
                  "# one unit per class", "  loss: categorical_crossentropy"]
    elif task == "binary":
        lines += ["    - {type: dense, units: 1, activation: sigmoid}   # P(positive class)",
                  "  loss: binary_crossentropy"]
    else:
        units = decided.get("outputs", 1)
        lines += [f"    - {{type: dense, units: {units}, activation: identity}}   "
                  f"# {units} value(s) per sample", "  loss: mse"]
    lines += ["training:", "  epochs: 100",
              "  batch_size: 32",
              "  optimizer: {type: adam, lr: 0.01}",
              "  early_stopping: {patience: 10}   # stop when val_loss stops improving"]
    return "\n".join(lines) + "\n"


def write_starter(data, output=None, *, target=None, force=False):
    """Write the starter config for ``data`` to ``output`` (default ``<stem>.yaml`` in the
    working directory); returns (path, plan). Refuses an existing file unless ``force``."""
    from dlcli.config.resolve import resolve
    from dlcli.train.io import write_text
    import yaml

    data = pathlib.Path(data)
    if not data.exists():
        raise DataError("no such file", where=str(data))
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in data.stem) or "run"
    output = pathlib.Path(output or f"{name}.yaml")
    if output.exists() and not force:
        raise DataError("already exists; dlcli init does not overwrite it (choose -o, or "
                        "--force)", where=str(output))
    if output.suffix.lower() not in (".yaml", ".yml"):
        raise DataError("expected a config path ending in .yaml or .yml", where=str(output))
    decided = plan(data, target)
    if decided["task"] == "regression" and not decided["csv"]:
        y_shape = readers_y_width(decided["source"])
        decided["outputs"] = y_shape
    base = output.resolve().parent
    source_text = os.path.relpath(decided["source"].resolve(), base)
    if source_text.startswith(".."):  # outside the config's folder: say where it is
        source_text = str(decided["source"].resolve())
    text = render(decided, source_text, name)
    config = resolve(yaml.safe_load(text), path=output.resolve())
    from dlcli.train.build import prepare
    prepare(config)  # the data, model and loss fit together: it trains as written
    try:
        base.mkdir(parents=True, exist_ok=True)
        write_text(output, text)
    except OSError as exc:
        raise DataError(f"cannot write the config: {exc.strerror or exc}",
                        where=str(output)) from None
    return output, decided


def readers_y_width(path) -> int:
    from dlcli.data import readers

    y = np.asarray(readers.read_array_file(path)["y"])
    return 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))

"""``dlcli predict``'s output files: the target checked first, then written atomically as
CSV (class names and probabilities, or values) or .npz."""

import csv

import numpy as np


def check_prediction_target(path, force: bool = False):
    """Refuse, before any work, an existing file (unless ``force``) or a format predict
    cannot write."""
    import pathlib

    from dlcli.errors import DataError

    path = pathlib.Path(path)
    if path.exists() and not (force and path.is_file()):
        raise DataError("already exists; dlcli does not overwrite files (choose -o, or "
                        "--force to replace it)", where=str(path))
    if path.suffix not in (".csv", ".npz"):
        raise DataError("expected an output path ending in .csv or .npz", where=str(path))
    return path


def write_predictions(path, outputs: np.ndarray, names, run, layer: str | None = None,
                      force: bool = False) -> None:
    """Write outputs (and predicted class names) to .csv or .npz; never overwrites.

    ``layer``: the outputs are that layer's activations (CSV columns ``<layer>_<i>``)."""

    from dlcli.errors import DataError
    from dlcli.train.io import atomic_writer

    path = check_prediction_target(path, force)
    flat = outputs.reshape(len(outputs), -1)
    if layer is not None:
        columns = [f"{layer}_{i}" for i in range(flat.shape[1])]
    elif run.task == "classification" and run.class_names:
        columns = [f"p_{c}" for c in run.class_names]
    else:
        columns = [f"output_{i}" for i in range(flat.shape[1])]
    try:
        if path.suffix == ".npz":
            arrays = {"outputs": outputs}
            if names is not None:
                arrays["predicted"] = np.array(names, dtype=str)
            with atomic_writer(path, exclusive=not force) as handle:
                np.savez(handle, **arrays)
            return
        with atomic_writer(path, "w", exclusive=not force) as handle:
            writer = csv.writer(handle)
            writer.writerow((["predicted"] if names is not None else []) + columns)
            for i, row in enumerate(flat):
                writer.writerow(([names[i]] if names is not None else [])
                                + [f"{v:.6g}" for v in row])
    except FileExistsError:
        raise DataError("already exists; dlcli does not overwrite files (choose -o)",
                        where=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot write predictions: {exc.strerror}", where=str(path)) from None


# ---- runs and comparisons -----------------------------------------------------------------

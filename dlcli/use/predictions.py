"""``dlcli predict``'s output files: the target checked first, then written atomically as
CSV (class names and probabilities, or values) or .npz."""

import csv
import io

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
    picks = None if names is None else np.arange(len(outputs))
    write_prediction_batches(path, len(outputs), names, [(outputs, picks)], run, layer, force)


def write_prediction_batches(path, n: int, vocabulary, batches, run, layer: str | None = None,
                             force: bool = False) -> None:
    """Write ``n`` outputs as they come, batch by batch: ``batches`` yields ``(outputs,
    labels)``, the predicted name of a row being ``vocabulary[label]`` (no names when
    ``vocabulary`` is None). The same files as :func:`write_predictions` of the whole
    arrays; memory holds one batch (and, for .npz, the labels until their array is
    written). Atomic: nothing is left at ``path`` unless every batch was written."""
    import zipfile

    from dlcli.errors import DataError
    from dlcli.train.io import atomic_writer

    path = check_prediction_target(path, force)
    batches = iter(batches)
    first = next(batches)
    try:
        if path.suffix == ".npz":
            with atomic_writer(path, exclusive=not force) as handle, \
                    zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
                labels = []
                outputs = first[0]
                with _npy_member(archive, "outputs", outputs.dtype,
                                 (n, *outputs.shape[1:])) as member:
                    for out, picks in _chain(first, batches):
                        member.write(np.ascontiguousarray(out).tobytes())
                        if picks is not None:
                            labels.append(np.asarray(picks))
                if vocabulary is not None:
                    labels = np.concatenate(labels)
                    used = np.unique(labels)
                    width = max((len(str(vocabulary[i])) for i in used.tolist()), default=1)
                    dtype = np.dtype(f"<U{max(width, 1)}")
                    with _npy_member(archive, "predicted", dtype, (n,)) as member:
                        for start in range(0, n, 65536):
                            chunk = labels[start:start + 65536].tolist()
                            member.write(np.array([vocabulary[i] for i in chunk],
                                                  dtype=dtype).tobytes())
            return
        with atomic_writer(path, "w", exclusive=not force) as handle:
            writer = csv.writer(handle)
            columns = None
            quoted: dict = {}
            for out, picks in _chain(first, batches):
                flat = out.reshape(len(out), -1)
                if columns is None:
                    columns = _columns(run, layer, flat.shape[1])
                    writer.writerow((["predicted"] if vocabulary is not None else [])
                                    + columns)
                # csv.writer's rows, formatted a row at a time by one %-format (2-3x faster
                # than csv.writer with a format per value; the same text)
                numbers = ",".join(["%.6g"] * flat.shape[1]) + "\r\n"
                if vocabulary is None:
                    handle.write("".join([numbers % tuple(row) for row in flat.tolist()]))
                    continue
                names = [_csv_field(vocabulary[i], quoted) for i in picks.tolist()]
                line = "%s," + numbers
                handle.write("".join([line % (name, *row)
                                      for name, row in zip(names, flat.tolist())]))
    except FileExistsError:
        raise DataError("already exists; dlcli does not overwrite files (choose -o)",
                        where=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot write predictions: {exc.strerror}", where=str(path)) from None


def _csv_field(value, cache: dict) -> str:
    """``value`` as ``csv.writer`` writes it as one field of a longer row (quoted when it
    holds a comma, a quote or a line break), remembered in ``cache``."""
    text = cache.get(value)
    if text is None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow([value, ""])
        text = cache[value] = buffer.getvalue()[:-2]  # less the empty field's "," and "\n"
    return text


def _chain(first, rest):
    yield first
    yield from rest


def _columns(run, layer, width: int) -> list[str]:
    if layer is not None:
        return [f"{layer}_{i}" for i in range(width)]
    if run.task == "classification" and run.class_names:
        return [f"p_{c}" for c in run.class_names]
    return [f"output_{i}" for i in range(width)]


class _npy_member:
    """A stored (uncompressed) .npy member of a zip archive, its header written first and
    its data streamed after it, as np.load reads it back."""

    def __init__(self, archive, key: str, dtype, shape):
        self.handle = archive.open(f"{key}.npy", "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                  "fortran_order": False, "shape": tuple(int(d) for d in shape)}
        np.lib.format.write_array_header_1_0(self.handle, header)

    def __enter__(self):
        return self.handle

    def __exit__(self, *exc):
        self.handle.close()


# ---- runs and comparisons -----------------------------------------------------------------

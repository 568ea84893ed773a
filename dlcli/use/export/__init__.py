"""``dlcli export``: a trained run as a file other tools load, with a model card beside it.

Formats: ``onnx`` (the whole inference path, see :mod:`dlcli.use.export.onnx`) and
``safetensors`` (the weights, see :mod:`dlcli.use.export.safetensors`). Every export writes
``MODEL.md`` (:mod:`dlcli.use.export.card`) in the same folder. Nothing that exists is
overwritten without ``force``; everything that can be refused is refused before any work.
"""

from __future__ import annotations

import hashlib
import pathlib

from dlcli.errors import ExportError

FORMATS = {"onnx": ".onnx", "safetensors": ".safetensors"}
CARD = "MODEL.md"


def default_output(run_dir: pathlib.Path, fmt: str) -> pathlib.Path:
    """``<run>/export/model.<ext>``."""
    return pathlib.Path(run_dir) / "export" / f"model{FORMATS[fmt]}"


def _check_targets(path: pathlib.Path, card: pathlib.Path, run, force: bool) -> None:
    from dlcli.use.export.card import is_ours
    if path.is_dir():
        raise ExportError("is a directory; give the file to write (e.g. model"
                          f"{path.suffix or '.onnx'})", where=str(path))
    if path.exists() and not force:
        raise ExportError("already exists; dlcli does not overwrite files (add --force, or "
                          "choose another -o)", where=str(path))
    if card.exists() and not force and not is_ours(card, run):
        raise ExportError("already exists and is not this run's model card; dlcli does not "
                          "overwrite it (add --force, or export into another folder)",
                          where=str(card))


def _metadata(run, version: str) -> dict:
    from dlcli.nn.layers.base import display_shape
    meta = {"dlcli_version": version, "run": run.run_dir.resolve().name,
            "checkpoint": run.checkpoint.name, "task": run.task,
            "input_shape": list(display_shape(run.model.input_shape)),
            "input_layout": "NHWC" if len(run.model.input_shape) == 3 else "NF"}
    if run.class_names:
        meta["class_names"] = list(run.class_names)
    return meta


def export_run(target, *, fmt: str, checkpoint: str = "best", output=None,
               force: bool = False) -> dict:
    """Export the run (directory or checkpoint) ``target``; returns what was written."""
    from dlcli import __version__
    from dlcli.use.evaluate import load_run
    from dlcli.use.export import card

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}",
                          where="--format")
    run = load_run(target, checkpoint)
    path = pathlib.Path(output) if output else default_output(run.run_dir, fmt)
    card_path = path.parent / CARD
    _check_targets(path, card_path, run, force)
    meta = _metadata(run, __version__)
    if fmt == "onnx":
        from dlcli.use.export import onnx as onnx_export
        proto = onnx_export.build(run, meta)  # refuses (ExportError) before writing anything
        _mkdir(path.parent)
        onnx_export.write(proto, path)
        what = f"ONNX opset {onnx_export.OPSET}, float32, input `input`, output `output`"
    else:
        from dlcli.use.export import safetensors
        _mkdir(path.parent)
        safetensors.write(run, path, meta)
        what = "safetensors, the weights under their checkpoint names"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    line = f"- `{path.name}`: {what}; {path.stat().st_size:,} bytes, sha256 `{digest[:16]}…`"
    files = card.listed_files(card_path) if card_path.exists() and card.is_ours(card_path, run) \
        else []
    files = [f for f in files if not f.startswith(f"- `{path.name}`")] + [line]
    from dlcli.train.io import write_text
    write_text(card_path, card.render(run, files, __version__, card.contract_text(run)))
    return {"format": fmt, "path": str(path), "card": str(card_path), "sha256": digest,
            "bytes": path.stat().st_size, "checkpoint": str(run.checkpoint)}


def _mkdir(folder: pathlib.Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the folder: {exc.strerror}", where=str(folder)) from None

"""Checkpoints: an ``.npz`` of arrays plus a JSON manifest that commits it.

Array file (a public contract, documented in the README), readable with
``numpy.load(path, allow_pickle=False)``:
  ``<layer>.<param>``     model parameters, e.g. ``dense1.weight`` (out, in)
  ``optimizer/<key>``     optimizer state, e.g. ``optimizer/dense1.weight.exp_avg``
  ``normalizer/<key>``    the input normalization fitted on the training split
  ``trainer/<key>``       loop state: ``epoch``, ``step``, ``batch``, ``order``, partial
                          epoch sums, the monitor's ``best``/``best_epoch``/``wait`` and
                          ``rng`` (the training generator's state as UTF-8 JSON bytes)

Manifest ``<name>.json``, written after the array file and so the commit point: the
SHA-256 of the array file and the name, shape and dtype of every array in it. Loading
verifies both, so a flipped bit or a missing array is refused (a zip's CRCs alone let a
damaged member silently disappear). Writing ``last`` first links the current verified pair to
``previous.npz``/``previous.json``; a crash at any moment leaves at least one verified
checkpoint, and resume falls back to ``previous`` when ``last`` fails to verify.
"""

import hashlib
import json
import os
import pathlib
import zipfile

import numpy as np

from dlcli.errors import CheckpointError, DataError
from dlcli.train.io import TMP_PREFIX, atomic_writer, write_json

MANIFEST_FORMAT = "dlcli-checkpoint-1"


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flatten(model_state, optimizer_state, normalizer_state, trainer_state) -> dict:
    arrays = {key: np.asarray(value) for key, value in model_state.items()}
    for prefix, part in (("optimizer", optimizer_state), ("normalizer", normalizer_state),
                         ("trainer", trainer_state)):
        for key, value in (part or {}).items():
            arrays[f"{prefix}/{key}"] = np.asarray(value)
    return arrays


def save(path, model_state: dict, optimizer_state: dict | None = None,
         normalizer_state: dict | None = None, trainer_state: dict | None = None) -> None:
    """Write ``path`` (.npz) and then its manifest ``path.with_suffix('.json')``."""
    path = pathlib.Path(path)
    arrays = _flatten(model_state, optimizer_state, normalizer_state, trainer_state)
    for key, value in arrays.items():
        if value.dtype == object:
            raise TypeError(f"checkpoint array {key} has dtype object")
    with atomic_writer(path) as handle:
        np.savez(handle, **arrays)
    manifest = {
        "format": MANIFEST_FORMAT,
        "file": path.name,
        "sha256": _sha256(path),
        "arrays": {key: {"shape": list(value.shape), "dtype": value.dtype.str}
                   for key, value in arrays.items()},
    }
    write_json(path.with_suffix(".json"), manifest)


def rotate(directory: pathlib.Path, name: str = "last", keep: str = "previous") -> None:
    """Make the current ``name`` pair also ``keep`` (hard links: no copy, no rewrite)."""
    src, src_json = directory / f"{name}.npz", directory / f"{name}.json"
    if not (src.is_file() and src_json.is_file()):
        return
    for source, target in ((src, directory / f"{keep}.npz"), (src_json, directory / f"{keep}.json")):
        tmp = directory / f"{TMP_PREFIX}{target.name}.{os.getpid()}"
        try:
            os.link(source, tmp)
        except OSError:  # filesystems without hard links: copy
            tmp.write_bytes(source.read_bytes())
        os.replace(tmp, target)


def verify(path) -> dict:
    """Check ``path`` against its manifest; return the manifest or raise CheckpointError."""
    path = pathlib.Path(path)
    manifest_path = path.with_suffix(".json")
    if not path.is_file():
        raise CheckpointError("checkpoint not found", where=str(path))
    if not manifest_path.is_file():
        raise CheckpointError(f"has no manifest {manifest_path.name}: it was never committed "
                              "(the writer stopped before finishing it)", where=str(path))
    try:
        manifest = json.loads(manifest_path.read_text())
        expected_sha = manifest["sha256"]
        if not isinstance(manifest["arrays"], dict):
            raise TypeError("arrays is not a mapping")
    except (ValueError, KeyError, TypeError, OSError):
        raise CheckpointError("its manifest is unreadable", where=str(manifest_path)) from None
    if _sha256(path) != expected_sha:
        raise CheckpointError("SHA-256 differs from its manifest: the file is damaged",
                              where=str(path))
    return manifest


def load(path, *, verified: bool | None = True) -> dict[str, dict]:
    """Return {"model", "optimizer", "normalizer", "trainer"} dicts of arrays.

    ``verified=True``: a manifest must exist and match. ``None``: verify when a manifest
    exists (a weights file exported by another tool has none). Arrays are always read with
    ``allow_pickle=False``.
    """
    path = pathlib.Path(path)
    if verified is None:
        verified = path.with_suffix(".json").is_file()
    manifest = verify(path) if verified else None
    if not path.is_file():
        raise CheckpointError("checkpoint not found", where=str(path))
    parts = {"model": {}, "optimizer": {}, "normalizer": {}, "trainer": {}}
    from dlcli.data.readers import check_zip
    try:
        check_zip(path, "a checkpoint")
    except DataError as exc:
        raise CheckpointError(exc.message, where=str(path)) from None
    try:
        with np.load(path, allow_pickle=False) as data:
            files = list(data.files)
            if manifest is not None:
                missing = sorted(set(manifest["arrays"]) - set(files))
                extra = sorted(set(files) - set(manifest["arrays"]))
                if missing or extra:
                    raise CheckpointError(f"arrays differ from its manifest (missing "
                                          f"{missing[:3]}, unexpected {extra[:3]})", where=str(path))
            for key in files:
                value = data[key]
                if manifest is not None:
                    meta = manifest["arrays"][key]
                    if list(value.shape) != meta["shape"] or value.dtype.str != meta["dtype"]:
                        raise CheckpointError(
                            f"array {key} is {value.dtype.str}{list(value.shape)}, its manifest "
                            f"says {meta['dtype']}{meta['shape']}", where=str(path))
                prefix, _, rest = key.partition("/")
                if rest and prefix in parts:
                    parts[prefix][rest] = value
                else:
                    parts["model"][key] = value
    except CheckpointError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CheckpointError("holds a pickled object array; refused (dlcli never "
                                  "unpickles: a pickle can run code)", where=str(path)) from None
        raise CheckpointError(f"not a readable checkpoint: {exc}", where=str(path)) from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise CheckpointError(f"not a readable checkpoint: {exc}", where=str(path)) from None
    return parts


def load_latest(directory) -> tuple[pathlib.Path, dict, list[str]]:
    """The newest verified of ``last`` and ``previous``: (path, parts, warnings)."""
    directory = pathlib.Path(directory)
    warnings = []
    for name in ("last", "previous"):
        path = directory / f"{name}.npz"
        try:
            return path, load(path), warnings
        except CheckpointError as exc:
            if path.exists() or name == "last":
                warnings.append(f"{exc}; falling back")
    raise CheckpointError("no verified checkpoint to resume from ("
                          + "; ".join(warnings) + ")", where=str(directory))


def check_matches(model_state: dict, expected: dict[str, tuple], where: str) -> None:
    """Refuse a checkpoint whose parameter names or shapes differ from the model's."""
    problems = []
    for key, shape in expected.items():
        if key not in model_state:
            problems.append(f"{key} missing")
        elif tuple(model_state[key].shape) != tuple(shape):
            problems.append(f"{key} has shape {tuple(model_state[key].shape)}, "
                            f"the model needs {tuple(shape)}")
    for key in model_state:
        if key not in expected:
            problems.append(f"{key} is not a parameter of this model")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError("does not match the config's layers: "
                              + "; ".join(problems[:3]) + more, where=where)


def rng_to_array(rng: np.random.Generator) -> np.ndarray:
    return np.frombuffer(json.dumps(rng.bit_generator.state).encode(), dtype=np.uint8).copy()


def restore_rng(rng: np.random.Generator, array: np.ndarray) -> None:
    """Set ``rng``'s state in place (layers holding the same generator follow)."""
    state = json.loads(bytes(np.asarray(array, dtype=np.uint8)).decode())
    rng.bit_generator.state = state

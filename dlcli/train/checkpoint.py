"""Checkpoints: an ``.npz`` of arrays plus a JSON manifest that commits it.

Array file (a public contract, documented in the README), readable with
``numpy.load(path, allow_pickle=False)``:
  ``<layer>.<param>``     model parameters, e.g. ``dense1.weight`` (out, in)
  ``optimizer/<key>``     optimizer state, e.g. ``optimizer/dense1.weight.exp_avg``
  ``normalizer/<key>``    the input normalization fitted on the training split
  ``trainer/<key>``       loop state: ``epoch``, ``step``, ``batch``, ``order``, partial
                          epoch sums, the monitor's ``best``/``best_epoch``/``wait``, the
                          stop decision ``stop``/``stopped_epoch`` and ``rng`` (the training
                          generator's state as UTF-8 JSON bytes)

Manifest ``<name>.json``, the commit marker (as Orbax's and TensorFlow's checkpoint
managers commit a step): the SHA-256 of the array file, the name, shape and dtype of every
array, and the epoch and step it holds. Writing a pair first removes the old manifest (the
name is uncommitted, never "damaged", while it is rewritten), then renames the array file
into place, then the manifest; the directory is fsynced after each step. Loading verifies
the manifest's fields, the hash and every array, on one snapshot of the file's bytes. The
rotation between ``last``, ``previous`` and ``best`` (hard links of verified pairs) lives in
:mod:`dlcli.train.recovery`.
"""

import contextlib
import hashlib
import io
import json
import os
import pathlib
import re
import time
import zipfile

import numpy as np

from dlcli.errors import CheckpointError, DataError
from dlcli.train.io import TMP_PREFIX, fsync_dir

MANIFEST_FORMAT = "dlcli-checkpoint-1"
# A reader that finds a pair mid-rotation waits (0.05 s, doubling) and reads it again.
RETRY_SECONDS = 0.05
RETRIES = 5
_SHA = re.compile(r"^[0-9a-f]{64}$")


def _flatten(model_state, optimizer_state, normalizer_state, trainer_state) -> dict:
    arrays = {key: np.asarray(value) for key, value in model_state.items()}
    for prefix, part in (("optimizer", optimizer_state), ("normalizer", normalizer_state),
                         ("trainer", trainer_state)):
        for key, value in (part or {}).items():
            arrays[f"{prefix}/{key}"] = np.asarray(value)
    return arrays


def manifest_path(path) -> pathlib.Path:
    return pathlib.Path(path).with_suffix(".json")


def uncommit(path) -> None:
    """Remove the manifest of ``path`` (durably): the pair is no longer a checkpoint."""
    try:
        os.unlink(manifest_path(path))
    except FileNotFoundError:
        return
    fsync_dir(pathlib.Path(path).parent)


def save(path, model_state: dict, optimizer_state: dict | None = None,
         normalizer_state: dict | None = None, trainer_state: dict | None = None) -> None:
    """Write ``path`` (.npz) and then its manifest ``path.with_suffix('.json')``."""
    path = pathlib.Path(path)
    arrays = _flatten(model_state, optimizer_state, normalizer_state, trainer_state)
    for key, value in arrays.items():
        if value.dtype == object:
            raise TypeError(f"checkpoint array {key} has dtype object")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    trainer = trainer_state or {}
    manifest = {
        "format": MANIFEST_FORMAT,
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "epoch": int(trainer.get("epoch", 0)),
        "step": int(trainer.get("step", 0)),
        "mid_epoch": "order" in trainer,
        "arrays": {key: {"shape": list(value.shape), "dtype": value.dtype.str}
                   for key, value in arrays.items()},
    }
    text = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
    # Both files are written in full (a full disk fails here, the old pair untouched),
    # then the old pair is uncommitted, the array file renamed in, the manifest commits.
    staged = []
    try:
        for target, payload in ((path, data), (manifest_path(path), text.encode())):
            tmp = target.with_name(f"{TMP_PREFIX}{target.name}.{os.getpid()}")
            staged.append((tmp, target))
            with open(tmp, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
        uncommit(path)
        for tmp, target in staged:
            os.replace(tmp, target)
            fsync_dir(path.parent)  # the array file's rename is durable before the commit
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


def _check_manifest(manifest, where: str) -> None:
    """Every field of a manifest has its type; CheckpointError naming the first that has not."""
    def bad(key, expected, value):
        raise CheckpointError(f"manifest field {key}: expected {expected}, found "
                              f"{json.dumps(value)[:60]}", where=where)
    if not isinstance(manifest, dict):
        bad("(top level)", "a JSON object", manifest)
    if manifest.get("format") != MANIFEST_FORMAT:
        bad("format", json.dumps(MANIFEST_FORMAT), manifest.get("format"))
    sha = manifest.get("sha256")
    if not isinstance(sha, str) or not _SHA.match(sha):
        bad("sha256", "64 hexadecimal digits", sha)
    for key in ("epoch", "step"):
        value = manifest.get(key, 0)
        if type(value) is not int or value < 0:
            bad(key, "a count of at least 0", value)
    arrays = manifest.get("arrays")
    if not isinstance(arrays, dict):
        bad("arrays", "a mapping of array names", arrays)
    for name, meta in arrays.items():
        if not isinstance(meta, dict):
            bad(f"arrays.{name}", "a mapping with shape and dtype", meta)
        shape, dtype = meta.get("shape"), meta.get("dtype")
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            bad(f"arrays.{name}.shape", "a list of sizes", shape)
        if not isinstance(dtype, str):
            bad(f"arrays.{name}.dtype", "a dtype string", dtype)


def _read_pair(path: pathlib.Path) -> tuple[dict, bytes]:
    """One snapshot of (manifest, array file bytes), verified against each other."""
    mpath = manifest_path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", where=str(path))
    try:
        text = mpath.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"has no manifest {mpath.name}: it was never committed (a write "
                              "was interrupted)", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"its manifest is unreadable: {exc}", where=str(mpath)) from None
    try:
        manifest = json.loads(text)
    except ValueError:
        raise CheckpointError("its manifest is not JSON", where=str(mpath)) from None
    _check_manifest(manifest, str(mpath))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read: {exc.strerror}", where=str(path)) from None
    if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise CheckpointError("SHA-256 differs from its manifest: the file is damaged",
                              where=str(path))
    return manifest, data


def _identity(path: pathlib.Path):
    out = []
    for p in (path, manifest_path(path)):
        try:
            st = os.stat(p)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return out


def read_verified(path, *, retry: bool = True) -> tuple[dict, bytes]:
    """``(manifest, bytes)`` of a committed checkpoint, or CheckpointError.

    A reader racing a writer (``dlcli eval --checkpoint last`` while the run trains) can
    catch a pair between two renames. With ``retry`` it reads again after a pause, for as
    long as the files keep changing between attempts (at most :data:`RETRIES` times), so a
    pair being replaced is never called damaged; a pair that stays the same and fails is."""
    path = pathlib.Path(path)
    seen = _identity(path)
    for attempt in range(RETRIES + 1):
        try:
            return _read_pair(path)
        except CheckpointError:
            if not retry or attempt == RETRIES:
                raise
        time.sleep(RETRY_SECONDS * 2 ** attempt)
        now = _identity(path)
        if now == seen and attempt > 0:
            return _read_pair(path)  # unchanged since the last failure: really damaged
        seen = now
    raise AssertionError("unreachable")


def verify(path) -> dict:
    """Check ``path`` against its manifest; return the manifest or raise CheckpointError."""
    return read_verified(path, retry=False)[0]


def load(path, *, verified: bool | None = True, retry: bool = True) -> dict[str, dict]:
    """Return {"model", "optimizer", "normalizer", "trainer"} dicts of arrays.

    ``verified=True``: a manifest must exist and match. ``None``: verify when a manifest
    exists (a weights file exported by another tool has none). Arrays are always read with
    ``allow_pickle=False``, from the same bytes the hash was computed on.
    """
    path = pathlib.Path(path)
    if verified is None:
        verified = manifest_path(path).is_file()
    if verified:
        manifest, data = read_verified(path, retry=retry)
    else:
        manifest = None
        if not path.is_file():
            raise CheckpointError("checkpoint not found", where=str(path))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"cannot read: {exc.strerror}", where=str(path)) from None
    parts = {"model": {}, "optimizer": {}, "normalizer": {}, "trainer": {}}
    from dlcli.data.readers import ZIP_MAGIC, check_zip
    if data[:4] not in ZIP_MAGIC:  # the bytes read, not the file as it may be now
        try:
            check_zip(path, "a checkpoint")
        except DataError as exc:
            raise CheckpointError(exc.message, where=str(path)) from None
        raise CheckpointError("not a checkpoint: not a zip archive", where=str(path))
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            files = list(npz.files)
            if manifest is not None:
                missing = sorted(set(manifest["arrays"]) - set(files))
                extra = sorted(set(files) - set(manifest["arrays"]))
                if missing or extra:
                    raise CheckpointError(f"arrays differ from its manifest (missing "
                                          f"{missing[:3]}, unexpected {extra[:3]})", where=str(path))
            for key in files:
                value = npz[key]
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


def rotate(directory, name: str = "last", keep: str = "previous") -> bool:
    """Make the verified pair ``name`` also ``keep``; see :func:`dlcli.train.recovery.link_pair`."""
    from dlcli.train.recovery import link_pair
    return link_pair(pathlib.Path(directory), name, keep)


def load_latest(directory) -> tuple[pathlib.Path, dict, list[str]]:
    """The newest verified checkpoint of the directory; see :func:`dlcli.train.recovery.latest`."""
    from dlcli.train.recovery import latest
    return latest(pathlib.Path(directory))


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

"""Checkpoint files: an ``.npz`` readable with ``numpy.load(path, allow_pickle=False)``.

Keys (a public contract, documented in the README):
  ``<layer>.<param>``          model parameters, e.g. ``dense1.weight`` (out, in)
  ``optimizer/<key>``          optimizer state, e.g. ``optimizer/dense1.weight.exp_avg``
  ``normalizer/<key>``         the input normalization fitted on the training split
  ``trainer/<key>``            counters: ``epoch``, ``step``, ``best``, ``best_epoch``,
                               ``wait``, and ``rng`` (the training generator's state as
                               UTF-8 JSON bytes)
"""

import json
import pathlib
import zipfile

import numpy as np

from dlcli.errors import CheckpointError
from dlcli.train.io import atomic_writer


def save(path, model_state: dict, optimizer_state: dict | None = None,
         normalizer_state: dict | None = None, trainer_state: dict | None = None) -> None:
    arrays = dict(model_state)
    for prefix, part in (("optimizer", optimizer_state), ("normalizer", normalizer_state),
                         ("trainer", trainer_state)):
        for key, value in (part or {}).items():
            arrays[f"{prefix}/{key}"] = np.asarray(value)
    with atomic_writer(path) as handle:
        np.savez(handle, **arrays)


def load(path) -> dict[str, dict]:
    """Return {"model": ..., "optimizer": ..., "normalizer": ..., "trainer": ...}."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", where=str(path))
    parts = {"model": {}, "optimizer": {}, "normalizer": {}, "trainer": {}}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                prefix, _, rest = key.partition("/")
                if rest and prefix in parts:
                    parts[prefix][rest] = data[key]
                else:
                    parts["model"][key] = data[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CheckpointError("holds a pickled object array; refused (dlcli never "
                                  "unpickles: a pickle can run code)", where=str(path)) from None
        raise CheckpointError(f"not a readable checkpoint: {exc}", where=str(path)) from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"not a readable checkpoint: {exc}", where=str(path)) from None
    return parts


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
    return np.frombuffer(json.dumps(rng.bit_generator.state).encode(), dtype=np.uint8)


def rng_from_array(array: np.ndarray) -> np.random.Generator:
    state = json.loads(bytes(np.asarray(array, dtype=np.uint8)).decode())
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)

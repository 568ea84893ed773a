"""The checkpoint protocol of a run directory: rotating ``last``, ``previous`` and ``best``,
and recovering after a crash.

Invariant: from the first committed checkpoint on, at least one of ``last``, ``previous``
and ``best`` verifies, whatever sequence of crashes (including crashes during a recovery)
happens:

* a pair is rotated (hard-linked) into ``previous`` or ``best`` only after it verifies,
  so an unverified ``last`` never replaces a good ``previous``;
* a target is uncommitted (its manifest removed) before its files are replaced and
  committed again (manifest renamed into place) after, the directory fsynced in between;
* writing ``last`` starts only once ``previous`` (or another pair) holds a verified copy.

On resume :func:`latest` considers every verified pair and takes the newest (by epoch and
step), :func:`reconcile_best` makes ``best`` hold the best epoch the resumed state records
(repairing it from ``last`` or ``previous``, or removing a ``best`` that cannot be trusted),
and the caller removes every temporary file a dead writer left (``io.remove_stale_temporaries``).
"""

import contextlib
import os
import pathlib

from dlcli.errors import CheckpointError
from dlcli.train import checkpoint as ckpt
from dlcli.train.io import TMP_PREFIX, fsync_dir

NAMES = ("last", "previous", "best")


def _same_file(a: pathlib.Path, b: pathlib.Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _place(source: pathlib.Path, target: pathlib.Path) -> None:
    """``target`` becomes a hard link of ``source`` (a copy where links are unsupported),
    through a temporary name and one rename."""
    tmp = target.with_name(f"{TMP_PREFIX}{target.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.link(source, tmp)
    except FileExistsError:
        raise
    except OSError:  # filesystems without hard links: copy, fsynced
        with open(tmp, "wb") as handle:
            handle.write(source.read_bytes())
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, target)
    # rename(2) of two links to the same file does nothing and leaves the temporary name
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def link_pair(directory: pathlib.Path, name: str, keep: str) -> bool:
    """Make the pair ``name`` also ``keep`` when it verifies; False (nothing touched) when
    it does not. ``keep`` is uncommitted while its files are replaced."""
    src = directory / f"{name}.npz"
    try:
        ckpt.verify(src)
    except CheckpointError:
        return False
    target = directory / f"{keep}.npz"
    if _same_file(src, target) and _same_file(ckpt.manifest_path(src), ckpt.manifest_path(target)):
        return True
    ckpt.uncommit(target)
    _place(src, target)
    _place(ckpt.manifest_path(src), ckpt.manifest_path(target))  # the commit
    fsync_dir(directory)
    return True


def remove_pair(directory: pathlib.Path, name: str) -> None:
    path = directory / f"{name}.npz"
    ckpt.uncommit(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fsync_dir(directory)


def _position(parts: dict) -> tuple[int, int, bool] | None:
    """(epoch, step, mid-epoch) of a loaded checkpoint's trainer state (0 for a count it
    lacks), None when a count is not a number."""
    trainer = parts["trainer"]
    try:
        return (int(trainer.get("epoch", 0)), int(trainer.get("step", 0)),
                "order" in trainer)
    except (TypeError, ValueError):
        return None


def _describe(path: pathlib.Path, position) -> str:
    epoch, step, mid = position
    return f"{path.parent.name}/{path.name} (epoch {epoch}{' (mid-epoch)' if mid else ''}, " \
           f"step {step})"


def latest(directory: pathlib.Path) -> tuple[pathlib.Path, dict, list[str]]:
    """The newest verified checkpoint among ``last``, ``previous`` and ``best``:
    ``(path, parts, warnings)``; the warnings name every pair passed over and, when it is
    not ``last``, the one used. CheckpointError when none verifies."""
    found, warnings = [], []
    for rank, name in enumerate(NAMES):
        path = directory / f"{name}.npz"
        if not path.exists() and not ckpt.manifest_path(path).exists():
            if name == "last":
                warnings.append(f"{path}: checkpoint not found")
            continue
        try:
            parts = ckpt.load(path, retry=False)
        except CheckpointError as exc:
            warnings.append(f"{exc}; not used")
            continue
        position = _position(parts)
        if position is None:
            warnings.append(f"{path}: its trainer state has no readable epoch and step; "
                            "not used")
            continue
        found.append(((position[0], position[1], -rank), path, parts, position))
    if not found:
        raise CheckpointError("no verified checkpoint to resume from ("
                              + "; ".join(warnings) + ")", where=str(directory))
    _, path, parts, position = max(found, key=lambda item: item[0])
    if path.name != "last.npz":
        warnings.append(f"resuming from {_describe(path, position)}, the newest verified "
                        "checkpoint")
    return path, parts, warnings


def _end_of_epoch(directory: pathlib.Path, name: str, epoch: int) -> bool:
    """Whether the pair ``name`` verifies and holds the end of ``epoch``."""
    try:
        position = _position(ckpt.load(directory / f"{name}.npz", retry=False))
    except CheckpointError:
        return False
    return position is not None and position[0] == epoch and not position[2]


def reconcile_best(directory: pathlib.Path, best_epoch: int) -> list[str]:
    """Make ``best`` hold the end of ``best_epoch`` (the monitor's best in the resumed
    state; 0 when nothing improved yet), as the run's summary will say. Repaired from
    ``last`` or ``previous`` when one of them holds that epoch; otherwise a ``best`` that
    verifies but holds another epoch, or does not verify, is removed (it is written again at
    the next improvement) rather than left to disagree. Returns what was done."""
    best = directory / "best.npz"
    present = best.exists() or ckpt.manifest_path(best).exists()
    if best_epoch <= 0:  # nothing to agree with (a best written before any improvement)
        return []
    if _end_of_epoch(directory, "best", best_epoch):
        return []
    for name in ("last", "previous"):
        if _end_of_epoch(directory, name, best_epoch):
            link_pair(directory, name, "best")
            return [f"repaired {best} from {name}.npz (epoch {best_epoch}, the best epoch)"]
    if present:
        remove_pair(directory, "best")
        return [f"removed {best}: it did not hold the best epoch {best_epoch} and no verified "
                "checkpoint does; it is written again at the next improvement"]
    return []

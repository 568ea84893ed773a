"""Atomic file writes: a temporary file in the same directory, fsynced, renamed into place."""

import contextlib
import json
import os
import pathlib

TMP_PREFIX = ".tmp-"


def _fsync_dir(directory: pathlib.Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path, mode="wb", *, exclusive=False):
    """Yield a file handle; on success the file replaces ``path`` atomically.

    The temporary file lives beside ``path`` (a rename across filesystems is not atomic) and
    is removed if anything fails, so no partial file is ever left behind. ``exclusive``:
    never replace an existing ``path`` (FileExistsError), even one created meanwhile.
    """
    path = pathlib.Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    try:
        with open(tmp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)  # fails if path exists; a rename would replace it
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def write_text(path, text: str) -> None:
    with atomic_writer(path, "w") as handle:
        handle.write(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def remove_stale_temporaries(directory) -> list[pathlib.Path]:
    """Delete temporary files a crashed process left in ``directory`` (and return them)."""
    removed = []
    directory = pathlib.Path(directory)
    if directory.is_dir():
        for tmp in directory.glob(f"{TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def pid_alive(pid) -> bool:
    """True when a process with this id exists (signal 0 probes without signalling)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True

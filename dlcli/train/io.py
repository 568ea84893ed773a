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


def read_pid(path) -> int | None:
    """The pid written in a lock file (a bare number), or None."""
    try:
        return int(pathlib.Path(path).read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def read_jsonl(path) -> tuple[list[dict], list[str]]:
    """Rows of a JSON-lines file and warnings about lines that were skipped.

    A last line that is not valid JSON (or lacks its newline and does not parse) is the
    mark of a crash during a write: it is dropped with a warning, as is any other line
    that does not hold a JSON object. A missing file gives no rows and no warning.
    """
    path = pathlib.Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [f"{path}: cannot read ({exc.strerror})"]
    text = raw.decode("utf-8", errors="replace")
    lines = text.split("\n")
    rows, warnings = [], []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            if i == last:
                warnings.append(f"{path}: the last line is incomplete (the run stopped "
                                "while writing it); ignored")
            else:
                warnings.append(f"{path}: line {i + 1} is not a JSON object; ignored")
            continue
        rows.append(row)
    return rows, warnings


def truncate_jsonl(path, last_epoch: int) -> list[str]:
    """Keep the rows of a per-epoch JSON-lines file up to ``last_epoch`` (a resumed run's
    checkpoint; later rows are replayed), dropping a torn last line. Returns the warnings."""
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    rows, warnings = read_jsonl(path)
    keep = [r for r in rows if isinstance(r.get("epoch"), int) and r["epoch"] <= last_epoch]
    write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in keep))
    return warnings

"""Atomic file writes: a temporary file in the same directory, fsynced, renamed into place."""

import contextlib
import json
import os
import pathlib

TMP_PREFIX = ".tmp-"


def fsync_dir(directory) -> None:
    """Make the renames and unlinks done in ``directory`` durable (a rename is only on disk
    once its directory is; POSIX leaves it to the caller). Filesystems that cannot fsync a
    directory are skipped silently."""
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
    fsync_dir(path.parent)


def write_text(path, text: str) -> None:
    with atomic_writer(path, "w") as handle:
        handle.write(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def remove_stale_temporaries(directory) -> list[pathlib.Path]:
    """Delete temporary files a crashed process left in ``directory`` (and return them).

    Called by the holder of the run's lock, so every writer of the other temporaries is
    dead; only the ``.tmp-lock.<pid>`` of a live process (about to take the lock, and to be
    refused) is left alone."""
    removed = []
    directory = pathlib.Path(directory)
    if directory.is_dir():
        for tmp in sorted(directory.glob(f"{TMP_PREFIX}*")):
            owner = tmp.name.rpartition(".")[2]
            if tmp.name.startswith(f"{TMP_PREFIX}lock.") and owner != str(os.getpid()) \
                    and pid_alive(owner):
                continue
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
        if removed:
            fsync_dir(directory)
    return removed


# Linux's largest pid (/proc/sys/kernel/pid_max can be at most 2**22); a number past any
# platform's pid_t is not a pid (os.kill would raise OverflowError).
PID_MAX = 2**31 - 1


def pid_alive(pid) -> bool:
    """True when a process with this id exists (signal 0 probes without signalling)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if not 0 < pid <= PID_MAX:
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


def process_start_time(pid) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (field 22 of
    ``/proc/PID/stat``), or None where there is no such file (not Linux, or no process).
    With the pid it names one process: a pid reused later has another start time."""
    try:
        stat = pathlib.Path(f"/proc/{int(pid)}/stat").read_text()
        # the command name (field 2) is in parentheses and may hold spaces
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def parse_lock(text: str) -> tuple[int, int | None] | None:
    """(pid, start time or None) from a lock file's text ``"<pid> [<start time>]"``; None
    when it is not that."""
    fields = text.split()
    if not 1 <= len(fields) <= 2 or not all(f.isascii() and f.isdigit() for f in fields):
        return None
    pid = int(fields[0])
    if not 0 < pid <= PID_MAX:
        return None
    return pid, (int(fields[1]) if len(fields) == 2 else None)


def lock_text() -> str:
    """What this process writes into a run's lock: its pid and start time."""
    start = process_start_time(os.getpid())
    return f"{os.getpid()}\n" if start is None else f"{os.getpid()} {start}\n"


def lock_holder_alive(pid: int, start: int | None) -> bool:
    """Whether the process that wrote a lock still runs: its pid exists and, where the lock
    and /proc record it, started when the lock says (a reused pid is another process)."""
    if not pid_alive(pid):
        return False
    if start is None:
        return True
    now = process_start_time(pid)
    return now is None or now == start


def read_lock(path) -> tuple[int, int | None] | None:
    """(pid, start time or None) written in a lock file, or None (no file, or not a lock)."""
    try:
        return parse_lock(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def read_pid(path) -> int | None:
    """The pid written in a lock file, or None."""
    parsed = read_lock(path)
    return parsed[0] if parsed else None


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

"""Errors users see, and the exit codes they map to.

Every user-facing error renders as one line: ``<where>: <what>``. ``where`` names the
file and, for configs, the key path (``model.layers[2].units``).
"""

import difflib


EXIT_OK = 0
EXIT_FAILURE = 1  # a failure during training (divergence, disk full, ...)
EXIT_USAGE = 2  # bad command line, config, data file or checkpoint


def human_bytes(n: int) -> str:
    """``n`` bytes in B, KiB, ... EiB (one decimal; whole EiB beyond a float's range)."""
    if n >= 1024 ** 7:
        return f"{n // 1024 ** 6:,} EiB"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class DlcliError(Exception):
    """Base of all errors shown to users as one line."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ConfigError(DlcliError):
    """A config value is missing, of the wrong type, out of range or unknown.

    ``errors`` holds every (path, message) pair found in one validation pass.
    """

    def __init__(self, errors, *, file: str | None = None):
        if isinstance(errors, str):
            errors = [("", errors)]
        self.errors = list(errors)
        self.file = file
        super().__init__(self._render())

    def _render(self) -> str:
        """One line per error (several errors: several lines)."""
        return "\n".join(f"{path}: {msg}" if path else msg for path, msg in self.errors)

    def __str__(self) -> str:
        if not self.file:
            return self.message
        return "\n".join(f"{self.file}: {line}" for line in self.message.split("\n"))


class DataError(DlcliError):
    """A data file is missing, unreadable or malformed."""


class CheckpointError(DlcliError):
    """A checkpoint or run directory is missing, damaged or does not match the model."""


class ShapeError(ConfigError):
    """A layer cannot take the shape its predecessor produces."""


class TrainingError(DlcliError):
    """Training failed at run time (non-finite loss, disk full). ``status`` is what the
    run's summary records: ``diverged`` or ``failed``."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, where: str | None = None, status: str = "failed"):
        super().__init__(message, where=where)
        self.status = status


class RunInterrupted(DlcliError):
    """Training stopped on SIGINT/SIGTERM after checkpointing; exit 128 + signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class ExportError(DlcliError):
    """A run cannot be exported in the requested format (``dlcli export``)."""


def _show(value) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def unknown_key_message(key, known) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key{hint} (known: {', '.join(sorted(map(str, known)))})"

"""The matplotlib plumbing every figure shares: the optional import (with the install hint
when it is missing), the output-path check and the exclusive write.

matplotlib is an optional extra (``pip install 'dlcli[plot]'``). It is imported only here,
with the Agg backend and through ``matplotlib.figure.Figure`` (no pyplot global state), so
plotting works without a display and never touches the user's interactive backend.
Output files are created exclusively: an existing file is replaced only with ``force``.
"""

import io
import os
import pathlib

from dlcli.errors import DataError, DlcliError, EXIT_USAGE


INSTALL_HINT = "pip install 'dlcli[plot]' (from a checkout: pip install '.[plot]')"


class MissingExtra(DlcliError):
    """An optional dependency is not installed."""

    exit_code = EXIT_USAGE


def require_matplotlib():
    """Import matplotlib with the Agg backend, or raise MissingExtra with the install hint."""
    try:
        import matplotlib
    except ImportError:
        raise MissingExtra(f"plotting needs matplotlib; install it with: {INSTALL_HINT}") \
            from None
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    return Figure


def check_output(path, force: bool = False) -> pathlib.Path:
    """Refuse an existing output file (unless ``force``) or a format matplotlib cannot
    write."""
    path = pathlib.Path(path)
    if path.exists() and not (force and path.is_file()):
        raise DataError("already exists; dlcli does not overwrite files (choose -o, or "
                        "--force to replace it)", where=str(path))
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf", "svg"):
        raise DataError("expected an output path ending in .png, .pdf or .svg", where=str(path))
    if not path.parent.is_dir():
        raise DataError("the output's directory does not exist", where=str(path))
    return path


def save(fig, path, force: bool = False) -> pathlib.Path:
    """Render ``fig`` in memory, then create ``path`` exclusively (O_EXCL) and write it;
    ``force``: replace it atomically (a temporary file renamed over it)."""
    path = check_output(path, force)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lower().lstrip("."), dpi=110)
    if force:
        from dlcli.train.io import atomic_writer
        try:
            with atomic_writer(path) as handle:
                handle.write(buffer.getvalue())
        except OSError as exc:
            raise DataError(f"cannot write the figure: {exc.strerror}",
                            where=str(path)) from None
        return path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise DataError("already exists; dlcli does not overwrite files (choose -o)",
                        where=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot write the figure: {exc.strerror}", where=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise DataError(f"cannot write the figure: {exc.strerror}", where=str(path)) from None
    return path

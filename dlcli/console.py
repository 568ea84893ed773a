"""The terminal console every command prints through, and the table and warning printers
they share (rich is imported when one is used, so ``dlcli --help`` stays fast)."""

import math
import os
import sys


def make_console(quiet=False, stderr=False):
    """A rich console for a command's output (stderr for warnings); a reader that goes away
    (``dlcli train ... | head``) silences it instead of failing the command."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # The reader went away (`dlcli train ... | head`): stop printing, keep training;
            # the run directory still gets every metric and checkpoint.
            self.quiet = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, (sys.stderr if stderr else sys.stdout).fileno())

    return _Console(stderr=stderr, quiet=quiet, highlight=False)


def _fmt(value) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"
    return str(value)


def print_table(console, table) -> None:
    """Print ``table`` when the console is wide enough for it without cutting a value;
    otherwise print its title, then each row as one line of ``header value`` pairs, which
    wraps between values instead of truncating them ("1,234…")."""
    import io

    from rich.console import Console
    from rich.text import Text

    def plain(value) -> str:
        return (value.plain if isinstance(value, Text) else str(value)).strip()

    # Rendered at this width, does every header and value still appear whole, on one line?
    # Rich may shorten a cell ("…"), fold a long token or wrap a header over two lines.
    probe = Console(file=io.StringIO(), width=console.width, color_system=None,
                    legacy_windows=False, safe_box=console.safe_box)
    probe.print(table)
    shown = probe.file.getvalue()
    cells = {plain(c) for column in table.columns for c in (column.header, *column.cells)}
    if all(c in shown for c in cells):
        console.print(table)
        return

    from dlcli.terminal import fold_fields
    if table.title:
        console.print(plain(table.title), markup=False, soft_wrap=True)
    headers = [plain(column.header) for column in table.columns]
    for cells in zip(*(list(column.cells) for column in table.columns)):
        values = [plain(cell) for cell in cells]
        fields = [f"{h} {v}".strip() + "," for h, v in zip(headers[1:], values[1:]) if v]
        if fields:
            fields[-1] = fields[-1][:-1]
        if values[0]:
            fields.insert(0, f"{values[0]}:")
        # Broken only between "header value" fields, each whole on its line.
        console.print("\n".join(fold_fields(fields, console.width, sep=" ")), markup=False,
                      soft_wrap=True)


def print_warnings(console, warnings) -> None:
    for text in warnings:
        console.print(f"warning: {text}", markup=False, soft_wrap=True)

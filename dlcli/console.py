"""The terminal console every command prints through (rich is imported when one is made,
so ``dlcli --help`` stays fast)."""

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

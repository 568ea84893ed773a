"""A trial's process: ``python -m dlcli.sweep.child PARENT_PID STOP_FILE dlcli-args...``.

It runs the ordinary ``dlcli`` command line (``train ...`` or ``train --resume ...``) with a
watchdog thread beside it that sends the process SIGTERM (the trainer then finishes its step,
writes a checkpoint and exits 143) when the process that started it dies (a driver or a Dask
worker killed with ``kill -9``: no orphan keeps writing a trial that will be continued
elsewhere) or when STOP_FILE appears (how a driver stops trials on other machines).
"""

import os
import signal
import sys
import threading
import time

POLL_S = 0.2


def _watch(parent: int, stop_file: str) -> None:
    while True:
        time.sleep(POLL_S)
        if os.getppid() != parent or (stop_file and os.path.exists(stop_file)):
            os.kill(os.getpid(), signal.SIGTERM)
            return


def main(argv: list[str]) -> None:
    # The parent's pid comes from the parent: one that died before this process got here
    # is noticed at the first poll (os.getppid() would already name the adopting process).
    parent, stop_file, *args = argv
    threading.Thread(target=_watch, args=(int(parent), stop_file), daemon=True).start()
    from dlcli.cli import cli
    cli.main(args=args, prog_name="dlcli")


if __name__ == "__main__":
    main(sys.argv[1:])

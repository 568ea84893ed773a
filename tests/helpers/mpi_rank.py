"""One rank of a test's ``mpiexec`` run (or the single-process reference): dlcli's CLI
in-process, the rank's exit code written to ``$DLCLI_TEST_CODES/rank<r>``.

``DLCLI_TEST_SIGNAL=rank:step:signum`` sends the signal to this process right after the
optimizer step ``step`` on rank ``rank`` (a real signal through the real handlers)."""

import os
import pathlib
import signal
import sys

RANK = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))


def _arm(spec: str) -> None:
    rank, step, signum = map(int, spec.split(":"))
    if rank != RANK:
        return
    from dlcli.train.trainer import Trainer
    original = Trainer._emit

    def emit(self, hook, *args):
        original(self, hook, *args)
        if hook == "on_batch_end" and self.step == step:
            os.kill(os.getpid(), signum)

    Trainer._emit = emit


def main() -> None:
    if os.environ.get("DLCLI_TEST_SIGNAL"):
        _arm(os.environ["DLCLI_TEST_SIGNAL"])
    code = 1
    try:
        from dlcli.cli import cli
        cli.main(sys.argv[1:], prog_name="dlcli")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    finally:
        where = os.environ.get("DLCLI_TEST_CODES")
        if where:
            pathlib.Path(where, f"rank{RANK}").write_text(str(code))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()

"""Signals during training: SIGINT/SIGTERM ask the trainer to stop after the current step."""

import contextlib
import signal


@contextlib.contextmanager
def interrupt_handlers(trainer):
    """SIGINT/SIGTERM ask the trainer to stop after the current step (a second SIGINT stops
    at once). SIGXFSZ is ignored so that a file-size limit surfaces as an OSError."""
    def request(signum, frame):
        if trainer.interrupt_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.interrupt_signal = signum

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, request)
        except ValueError:  # not the main thread
            pass
    if hasattr(signal, "SIGXFSZ"):
        with contextlib.suppress(ValueError):
            previous[signal.SIGXFSZ] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

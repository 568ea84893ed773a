"""Interrupting training at an exact step with a real signal."""

import os
import signal

from dlcli.train.trainer import Trainer


def interrupt_at(monkeypatch, step, signum=signal.SIGINT):
    """Deliver ``signum`` to this process right after optimizer step ``step``."""
    original = Trainer._emit

    def emit(self, hook, *args):
        original(self, hook, *args)
        if hook == "on_batch_end" and self.step == step:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(Trainer, "_emit", emit)


def train_until_interrupted(monkeypatch, config, run_dir, step, signum=signal.SIGTERM):
    """Train ``config`` into ``run_dir`` and stop it with ``signum`` after ``step``."""
    import pytest

    from dlcli.errors import RunInterrupted
    from dlcli.train import session

    with monkeypatch.context() as patch:
        interrupt_at(patch, step, signum)
        with pytest.raises(RunInterrupted) as info:
            session.train(config, run_dir=run_dir)
    return info.value

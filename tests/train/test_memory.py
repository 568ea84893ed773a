"""Training does not leak: resident memory stays flat after warm-up.

Buffers (batch gathering, im2col workspaces, optimizer state and scratch) are allocated in the
first steps and reused; anything kept per step (a history of arrays, a growing cache) would
show as RSS growth over a few hundred steps. The tolerance (5 MB) is well above allocator
noise and catches a leak of about 17 KB or more per step (5 MB / 300): keeping the CNN's
(32, 4, 8, 8) float32 conv output each step, 32 KiB, would add 9.8 MB. Nothing here measures time.
"""

import gc
import os
import resource

import numpy as np
import pytest

import dlcli.nn.losses  # noqa: F401 - registers the losses
import dlcli.nn.optim  # noqa: F401 - registers the optimizers
from dlcli.nn.model import Model
from dlcli.registry import OPTIMIZERS
from dlcli.train.session import make_loss
from dlcli.train.trainer import Trainer


def rss_bytes() -> int:
    """Current resident set size (Linux /proc/self/statm; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        scale = 1 if os.uname().sysname == "Darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


MLP = [{"type": "dense", "units": 64, "activation": "relu"},
       {"type": "dense", "units": 32, "activation": "relu"},
       {"type": "dense", "units": 10, "activation": "softmax"}]
CNN = [{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
       {"type": "maxpool2d", "pool_size": 2},
       {"type": "dense", "units": 10, "activation": "softmax", "flatten_input": True}]


@pytest.mark.parametrize("layers, shape, optimizer", [
    (MLP, (20,), {"type": "adam"}),
    (MLP, (20,), {"type": "sgd", "momentum": 0.9}),
    (CNN, (1, 10, 10), {"type": "adam"}),
], ids=["mlp-adam", "mlp-momentum", "cnn-adam"])
def test_rss_is_flat_after_warmup(layers, shape, optimizer):
    model = Model.from_config(layers, shape, np.float32).build(np.random.default_rng(0))
    loss = make_loss({"model": {"loss": "categorical_crossentropy"}}, model)
    opt_cfg = dict(optimizer)
    opt = OPTIMIZERS.get(opt_cfg.pop("type"))(**opt_cfg)
    rng = np.random.default_rng(1)
    batch, steps = 32, 300
    x = rng.standard_normal((batch * 10, *shape)).astype(np.float32)
    y = rng.integers(0, 10, len(x))
    trainer = Trainer(model, loss, opt, task="classification", batch_size=batch, epochs=3,
                      rng=np.random.default_rng(2))
    trainer.fit(x, y)  # warm-up: 30 steps allocate every buffer and state
    gc.collect()
    before = rss_bytes()
    trainer.epochs += steps // 10
    trainer.fit(x, y)
    gc.collect()
    growth = rss_bytes() - before
    assert trainer.step == 30 + steps
    assert growth < 5 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over {steps} steps"

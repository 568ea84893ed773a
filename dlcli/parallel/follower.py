"""What a rank other than 0 runs: the same model, data and loop as rank 0, writing nothing.

Rank 0 runs ``dlcli.train.session`` as a plain run does (run directory, progress,
checkpoints). Every other rank builds the same model from the same seed, reads the same
data file, takes rank 0's checkpoint on resume (broadcast, so the ranks need not share a
file system for it), and runs the loop with the callbacks that change the run itself:
the monitor and early stopping.
"""

from __future__ import annotations

import numpy as np


def follow(config, plan, *, seed=None, resume=False, **_ignored) -> dict:
    from dlcli.train import checkpoint as ckpt
    from dlcli.train import session
    from dlcli.train.callbacks import EarlyStopping

    if seed is not None:
        config.data["seed"] = seed
    seed = config["seed"]
    prep = session.prepare(config, seed)
    model, loss, task, splits = prep.model, prep.loss, prep.task, prep.splits
    optimizer, train_rng = session.initialize(config, model, seed)
    init_from = config["model"]["init_from"]
    if init_from and not resume:
        model.load_state_dict(ckpt.load(config.base_dir / init_from, verified=None)["model"])
    dtype = model.dtype
    x_train = splits.x_train.astype(dtype, copy=False)
    x_val = splits.x_val.astype(dtype, copy=False)
    y_train, y_val, _ = session.targets(splits, task, dtype, loss)
    training = config["training"]
    monitor = session._monitor(config, task, bool(len(x_val)))
    schedule = None
    if training.get("schedule"):
        from dlcli.nn.optim.schedules import make_schedule
        schedule = make_schedule(training["schedule"], optimizer.lr, training["epochs"])
    trainer = plan.make_trainer(
        model, loss, optimizer, task=task, batch_size=training["batch_size"],
        epochs=training["epochs"], rng=train_rng, shuffle=training["shuffle"],
        n_classes=splits.n_classes, clip_norm=training["clip_norm"],
        clip_value=training["clip_value"], schedule=schedule, seed=seed)
    if resume:
        parts = plan.share(None)
        model.load_state_dict(parts["model"])
        optimizer.load_state_dict(parts["optimizer"])
        trainer.load_state_dict(parts["trainer"])
        monitor.load_state_dict(parts["trainer"])
    callbacks = [monitor]
    if training["early_stopping"]:
        callbacks.append(EarlyStopping(monitor, training["early_stopping"]["patience"]))
    trainer.callbacks = callbacks
    with session.interrupt_handlers(trainer), np.errstate(all="ignore"):
        trainer.fit(x_train, y_train, x_val, y_val)
    raise SystemExit(0)  # rank 0 reports the run

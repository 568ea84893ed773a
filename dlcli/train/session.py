"""One training run from a validated config: build it, open its run directory, run the
loop with its callbacks, write its summary."""

import contextlib
import functools
import pathlib
import signal
import time

import numpy as np
import yaml

from dlcli.config.resolve import Config
from dlcli.errors import DataError, RunInterrupted, TrainingError
from dlcli.nn.layers.base import display_shape
from dlcli.train import checkpoint as ckpt
# Re-exported: building a run and its directory are imported from here by inspect/ and use/.
from dlcli.train.build import (Prepared, initialize, make_loss, make_monitor,  # noqa: F401
                               make_schedule, output_activation_name, prepare, targets)
from dlcli.train.callbacks import Checkpointer, EarlyStopping, MetricsLogger
from dlcli.train.diagnostics import Diagnostics
from dlcli.train.io import read_jsonl, remove_stale_temporaries, truncate_jsonl, write_json, \
    write_text
from dlcli.train.progress import Progress
from dlcli.train.rundir import (RUN_FILLED, RunLock, check_same_normalizer,  # noqa: F401
                                config_differences, new_run_dir, open_resume, stored_config,
                                write_summary)
from dlcli.train.signals import interrupt_handlers
from dlcli.train.trainer import Interrupted, Trainer


def train(config: Config, **options) -> dict:
    """Train ``config`` into a new run directory, or continue ``run_dir`` when ``resume``.

    ``options``: ``run_dir``, ``seed``, ``console``, ``interactive``, ``quiet``, ``resume``
    and ``changes`` (the config differences the user allowed on resume, from
    ``open_resume``); ``warn`` is called with the config's warnings before training (they
    are then left out of the summary's); ``threads``: ``"auto"`` measures the model's step
    to pick the BLAS thread count (:mod:`dlcli.train.threads`), a number was forced;
    ``memory_check=False`` skips the check that the run fits in memory
    (:mod:`dlcli.train.budget`). With
    ``training.parallel`` or under an MPI launcher the run is data-parallel
    (``dlcli.parallel``): rank 0 runs it here, the other ranks follow.

    Returns the summary also written to ``summary.json``.
    """
    from dlcli.parallel import plan as parallel_plan
    par = parallel_plan(config)
    if par is None:
        return _train(config, None, **options)
    from dlcli.parallel.follower import follow
    return par.run(lambda: _train(config, par, **options),
                   lambda: follow(config, par, **options))


def _train(config: Config, par, *, run_dir=None, seed=None, console=None, interactive=False,
           quiet=False, resume: bool = False, changes: list[str] = (), warn=None,
           threads="auto", memory_check=True) -> dict:
    if seed is not None:
        config.data["seed"] = seed
    seed = config["seed"]
    budget = None
    if memory_check and par is None:  # a data-parallel rank holds a share of the batch
        from dlcli.train.budget import MemoryBudget
        budget = MemoryBudget.measure()
    prep = prepare(config, seed, budget=budget)
    model, loss, task, splits = prep.model, prep.loss, prep.task, prep.splits
    warnings = list(prep.warnings) + (par.notes if par is not None else [])
    if warn is not None:
        warn(warnings)
        warnings = []
    dtype = model.dtype
    optimizer, train_rng = initialize(config, model, seed)
    init_from = config["model"]["init_from"]
    if init_from and not resume:
        path = config.base_dir / init_from
        if path.is_dir():  # a run directory, as eval and predict take it: its best weights
            _, path = ckpt.find_checkpoint(path, "best")
        parts = ckpt.load(path, verified=None)
        ckpt.check_matches(parts["model"], model.expected_state(), str(path))
        model.load_state_dict(parts["model"])

    x_train = splits.x_train.astype(dtype, copy=False)
    x_val = splits.x_val.astype(dtype, copy=False)
    y_train, y_val, _ = targets(splits, task, dtype, loss)
    training = config["training"]
    monitor = make_monitor(config, task, bool(len(x_val)))
    run_dir = _open_run_dir(config, run_dir, resume)

    schedule = None
    if training.get("schedule"):
        schedule = make_schedule(training["schedule"], optimizer.lr, training["epochs"])
    make = Trainer if par is None else functools.partial(par.make_trainer, seed=seed)
    trainer = make(model, loss, optimizer, task=task, batch_size=training["batch_size"],
                   epochs=training["epochs"], rng=train_rng, shuffle=training["shuffle"],
                   n_classes=splits.n_classes,
                   clip_norm=training["clip_norm"], clip_value=training["clip_value"],
                   schedule=schedule)
    normalizer_state = splits.normalizer.state()
    from dlcli.train import threads as blas_threads
    # Data-parallel ranks keep the library's count (rank 0 alone must not measure).
    trainer.blas_threads = blas_threads.choose(
        config, x_train, y_train, task, seed, threads if par is None or threads != "auto"
        else "library", resumed=blas_threads.previous_count(run_dir) if resume else None)
    with RunLock(run_dir) as lock:
        if lock.taken_over is not None:
            warnings.append(f"took over the stale lock of process {lock.taken_over}")
        for tmp in remove_stale_temporaries(run_dir) + remove_stale_temporaries(
                run_dir / "checkpoints"):
            warnings.append(f"removed the leftover temporary file {tmp}")
        rows, path, parts = [], None, None
        if resume:
            path, rows, parts = _restore(run_dir, model, optimizer, trainer, monitor,
                                  normalizer_state, changes, warnings,
                                  share=par.share if par is not None else None)
        else:
            (run_dir / "checkpoints").mkdir()
            if splits.class_names is not None:
                write_json(run_dir / "classes.json", list(splits.class_names))
            if splits.feature_names is not None:  # predict picks CSV columns by these names
                write_json(run_dir / "features.json", list(splits.feature_names))
            if splits.table is not None:  # categories and fill values of the CSV columns
                write_json(run_dir / "encoding.json", splits.table.state())
        # The config the run continues with (on resume, possibly changed by the user).
        resolved = stored_config(config)
        resolved["task"] = task
        resolved["model"]["input_shape"] = list(display_shape(model.input_shape))
        write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))

        stopper = None
        if training["early_stopping"]:
            stopper = EarlyStopping(monitor, training["early_stopping"]["patience"])
            if resume and trainer.stop_training:
                stopper.load_state_dict(parts["trainer"])
        checkpointer = Checkpointer(run_dir, monitor, normalizer_state,
                                    training["checkpoint_every"], stopper)
        if resume:
            checkpointer.last_good = f"{path} (epoch {trainer.epoch}, step {trainer.step})"
        logger = MetricsLogger(run_dir, rows, cadence=checkpointer.cadence)
        checkpointer.sync = logger.sync
        callbacks = [monitor, logger]
        diagnostics = None
        if training["diagnostics"]:
            if resume:  # rows past the checkpoint are replayed
                warnings += truncate_jsonl(run_dir / "diagnostics.jsonl", trainer.epoch)
            diagnostics = Diagnostics(run_dir)
            if trainer.resumes_mid_epoch:
                diagnostics.partial_epoch = trainer.epoch + 1
            callbacks.append(diagnostics)
        if training.get("tensorboard"):  # after diagnostics: it writes that epoch's row too
            from dlcli.train.tensorboard import TensorBoardLogger
            callbacks.append(TensorBoardLogger(run_dir, diagnostics,
                                               trainer.epoch if resume else None, rows))
        if console is not None:
            callbacks.append(Progress(console, interactive, quiet, header={
                "run_dir": run_dir, "params": model.param_count(), "monitor": monitor.name,
                "samples": (len(x_train), len(x_val), len(splits.x_test)),
                "resumed_at": trainer.epoch if resume else None}))
        if stopper is not None:  # before the checkpoint: the stop decision is saved with it
            callbacks.append(stopper)
        callbacks.append(checkpointer)
        trainer.callbacks = callbacks

        started = time.perf_counter()
        finish = lambda status: write_summary(  # noqa: E731
            run_dir, config, model, task, trainer, monitor, started, status, stopper)
        history, summary = _fit(trainer, finish, run_dir, x_train, y_train, x_val, y_val)
        warnings += trainer.notes
        if diagnostics is not None:
            warnings += diagnostics.warnings
    summary["warnings"] = warnings
    summary["history"] = history
    return summary


def _open_run_dir(config: Config, run_dir, resume: bool) -> pathlib.Path:
    """The run directory: the one resumed, a new ``<output_dir>/<name>-<stamp>``, or the
    ``--run-dir`` asked for, which must not exist yet."""
    if resume:
        return pathlib.Path(run_dir)
    if run_dir is None:
        return new_run_dir(pathlib.Path(config["training"]["output_dir"]), config["name"])
    run_dir = pathlib.Path(run_dir)
    if run_dir.exists():
        raise DataError("already exists; dlcli never writes into an existing run "
                        "directory (choose another --run-dir, or --resume it)",
                        where=str(run_dir))
    try:
        run_dir.mkdir(parents=True)
    except OSError as exc:
        raise DataError(f"cannot create the run directory: {exc.strerror}",
                        where=str(run_dir)) from None
    return run_dir


def _restore(run_dir, model, optimizer, trainer, monitor, normalizer_state, changes, warnings,
             share=None):
    """Load the latest good checkpoint into the model, optimizer, trainer and monitor; returns
    its path, the metric rows up to it (later rows are replayed by the resumed run) and the
    checkpoint's parts.
    ``share(parts)`` hands the checkpoint to the other ranks of a data-parallel run."""
    from dlcli.train.recovery import latest, reconcile_best
    path, parts, fallbacks = latest(run_dir / "checkpoints")
    warnings += fallbacks
    if share is not None:
        share(parts)
    ckpt.check_matches(parts["model"], model.expected_state(), str(path))
    model.load_state_dict(parts["model"])
    try:
        optimizer.load_state_dict(parts["optimizer"])
    except ValueError as exc:
        raise DataError(f"optimizer state does not fit: {exc}", where=str(path)) from None
    try:
        trainer.load_state_dict(parts["trainer"])
    except ValueError as exc:
        raise DataError(f"trainer state does not fit: {exc}", where=str(path)) from None
    monitor.load_state_dict(parts["trainer"])
    warnings += reconcile_best(run_dir / "checkpoints", monitor.best_epoch)
    if changes and trainer.stop_training:  # trained further on purpose
        trainer.stop_training = False
    # A summary of an earlier stop would disagree with what this run writes.
    with contextlib.suppress(FileNotFoundError):
        (run_dir / "summary.json").unlink()
    if not check_same_normalizer(parts["normalizer"], normalizer_state, path,
                                 data_changed=any(c.startswith(("data.", "seed:"))
                                                  for c in changes)):
        warnings.append("the inputs are normalized with statistics refitted on the "
                        "changed training data")
    # Rows after the checkpoint are replayed by the resumed run: keep one copy.
    warnings += truncate_jsonl(run_dir / "metrics.jsonl", trainer.epoch)
    rows, _ = read_jsonl(run_dir / "metrics.jsonl")
    trainer.history = [dict(r) for r in rows]
    return path, rows, parts


def _fit(trainer, finish, run_dir, x_train, y_train, x_val, y_val):
    """Run the loop; whatever stops it, the summary says how the run ended. Returns the
    history and the summary of a finished run."""
    try:
        # Overflow shows up as a non-finite loss or gradient, which the trainer reports
        # with the epoch and step; NumPy's own warnings would only add noise. The handlers
        # stay until the summary is written: a signal after the last step (the final
        # checkpoint is on disk) lets the run end as finished instead of cutting the
        # summary short.
        with interrupt_handlers(trainer), np.errstate(all="ignore"):
            history = trainer.fit(x_train, y_train, x_val, y_val)
            return history, finish("finished")
    except TrainingError as exc:
        finish(exc.status)
        exc.message += f"; run directory {run_dir}"
        raise
    except Interrupted as exc:
        finish("interrupted")
        name = signal.Signals(exc.signum).name
        raise RunInterrupted(
            f"{name} received: stopped after epoch {exc.epoch} step {exc.batch}, "
            f"checkpoint written to {run_dir / 'checkpoints' / 'last.npz'}; resume with:\n"
            f"  dlcli train --resume {run_dir}", exc.signum) from None
    except KeyboardInterrupt:
        finish("interrupted")
        raise
    except Exception:
        finish("failed")  # whatever it was, the run directory says it did not finish
        raise

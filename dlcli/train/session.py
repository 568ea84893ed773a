"""One training run from a validated config: data, model, run directory, loop, summary."""

import contextlib
import datetime
import json
import os
import pathlib
import platform
import signal
import time
from dataclasses import dataclass

import numpy as np
import yaml

from dlcli.config.resolve import Config, build_model, compute_dtype, flatten_keys, infer_task, \
    pairing_warnings, to_internal_shape
from dlcli.errors import ConfigError, DataError, RunInterrupted, TrainingError
from dlcli.registry import LOSSES, OPTIMIZERS
from dlcli.train import checkpoint as ckpt
from dlcli.train.io import read_jsonl, read_pid, truncate_jsonl, write_json, write_text


@dataclass
class Prepared:
    """Everything a run needs, built from a config (shared by train, eval, gradcheck, time)."""

    config: Config
    splits: object
    model: object
    loss: object
    task: str
    warnings: list


def make_loss(config: Config, model):
    """The config's loss, fused with the model's output activation when the pair allows."""
    loss = LOSSES.get(config["model"]["loss"])()
    act = model.output_activation()
    if loss.fuses is not None and act is not None and act.activation_name == loss.fuses:
        model.fused_output = True
        loss.from_logits = True
    return loss


def output_activation_name(model) -> str:
    act = model.output_activation()
    return act.activation_name if act is not None else "identity"


def prepare(config: Config, seed: int | None = None, *, data=True) -> Prepared:
    """Load data, build (but do not initialize) the model, pick the loss and the task."""
    from dlcli.data.prepare import prepare as prepare_data

    seed = config["seed"] if seed is None else seed
    # An autoencoder's target is its input: its data need no labels.
    needs_targets = config["task"] != "reconstruction"
    splits = (prepare_data(config["data"], config.base_dir, seed, targets=needs_targets,
                           dtype=compute_dtype(config)) if data else None)
    declared = config["model"]["input_shape"]
    input_shape = tuple(splits.input_shape) if splits is not None else to_internal_shape(declared)
    if declared is not None and splits is not None and to_internal_shape(declared) != input_shape:
        from dlcli.nn.layers.base import display_shape
        raise ConfigError(
            f"model.input_shape: the config says {tuple(declared)} but the data's samples "
            f"have shape {display_shape(input_shape)}", file=config.source)
    model = build_model(config, input_shape)
    out_shape = model.output_shape
    task = infer_task(config, out_shape[0] if len(out_shape) == 1 else None)
    warnings = list(config.warnings)
    if (splits is not None and config["task"] == "auto" and task == "regression"
            and splits.class_names is not None and len(splits.class_names) == 2
            and tuple(out_shape) == (1,)):
        task = "binary"  # ADALINE-style: a linear output fitted to 0/1 class labels
    if splits is not None:
        _check_targets(config, splits, task, out_shape)
    loss = make_loss(config, model)
    if loss.name == "perceptron" and output_activation_name(model) not in ("binary_step",
                                                                           "identity"):
        raise ConfigError(
            f"model.layers[{len(model.layers) - 1}]: the perceptron loss thresholds z = xᵀW at "
            f"0, so the output must be binary_step or identity, not "
            f"{output_activation_name(model)}", file=config.source)
    warnings += pairing_warnings(task, output_activation_name(model), loss.name)
    if task == "reconstruction":
        from dlcli.reconstruction import overcomplete_warnings
        warnings += overcomplete_warnings(model)
    return Prepared(config, splits, model, loss, task, warnings)


def _check_targets(config, splits, task, out_shape):
    src = config["data"]["source"]
    last = f"model.layers[{len(config['model']['layers']) - 1}]"
    if task == "classification":
        if splits.class_names is None:
            raise DataError("task classification needs class labels, but the targets are "
                            "values; set data.labels: class or use another loss", where=src)
        k = len(splits.class_names)
        if tuple(out_shape) != (k,):
            raise ConfigError(f"{last}: the output has shape {tuple(out_shape)} but the data "
                              f"has {k} classes; set units: {k}", file=config.source)
    elif task == "reconstruction":
        if tuple(out_shape) != tuple(splits.input_shape):
            from dlcli.nn.layers.base import display_shape
            raise ConfigError(f"{last}: a reconstruction model must output the input's shape "
                              f"{display_shape(splits.input_shape)}, got "
                              f"{display_shape(out_shape)}", file=config.source)
    else:
        y = splits.y_train
        k = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
        if tuple(out_shape) != (k,):
            hint = ""
            if splits.class_names is not None and config["task"] == "auto":
                hint = (f" (the loss {config['model']['loss']} implies task {task}; for the "
                        f"{len(splits.class_names)} class labels set task: classification)")
            raise ConfigError(f"{last}: the output has shape {tuple(out_shape)} but each "
                              f"target has {k} value(s){hint}", file=config.source)


def initialize(config: Config, model, seed: int):
    """Initialize ``model`` from the generator ``[seed, 0]`` and return the config's optimizer
    and the training generator ``[seed, 1]`` (data order and dropout masks)."""
    model.build(np.random.default_rng([seed, 0]))
    train_rng = np.random.default_rng([seed, 1])
    model.set_rng(train_rng)
    options = dict(config["training"]["optimizer"])
    optimizer = OPTIMIZERS.get(options.pop("type"))(**options)
    return optimizer, train_rng


def targets(splits, task, dtype, loss=None):
    """Train, validation and test targets in the form ``loss`` takes: class labels for
    categorical cross-entropy, one-hot rows for any other loss on class labels (notes
    1.6.2), the inputs themselves for reconstruction."""
    from dlcli.data.encoding import one_hot
    from dlcli.train.metrics import prepare_targets
    pick = (lambda x, y: x) if task == "reconstruction" else (lambda x, y: y)
    out = [prepare_targets(pick(x, y), task, dtype) for x, y in
           ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val),
            (splits.x_test, splits.y_test))]
    if task == "classification" and loss is not None and loss.name != "categorical_crossentropy":
        k = len(splits.class_names)
        out = [one_hot(y, k, dtype=dtype) for y in out]
    return out


def new_run_dir(root: pathlib.Path, name: str) -> pathlib.Path:
    """``<root>/<name>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``... so nothing is overwritten."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the output directory: {exc.strerror}", where=str(root))
    for k in range(1, 1000):
        path = root / (f"{name}-{stamp}" if k == 1 else f"{name}-{stamp}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise DataError(f"cannot create the run directory: {exc.strerror}", where=str(path))
    raise DataError("too many runs with the same name and time", where=str(root))


def stored_config(config: Config) -> dict:
    """The resolved config with file paths made absolute so the run can be used anywhere."""
    data = json.loads(json.dumps(config.data))
    source = data["data"]["source"]
    if not source.startswith("synthetic:"):
        data["data"]["source"] = str((config.base_dir / source).resolve())
    if data["model"]["init_from"]:
        data["model"]["init_from"] = str((config.base_dir / data["model"]["init_from"]).resolve())
    return data


# Keys a run fills in itself: not a difference between a config and the run made from it.
RUN_FILLED = ("task", "model.input_shape")


def config_differences(run_config: dict, new_config: dict) -> list[str]:
    a, b = flatten_keys(run_config), flatten_keys(new_config)
    keys = sorted(set(a) | set(b), key=lambda k: (k.split(".")[0], k))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys
            if k not in RUN_FILLED and a.get(k) != b.get(k)]


class RunLock:
    """``<run>/lock`` holding the writer's pid and start time; the lock of a process that is
    gone (its pid free, or reused by a process that started later) is taken over."""

    def __init__(self, run_dir: pathlib.Path):
        self.path = run_dir / "lock"
        self.taken_over = None

    def __enter__(self):
        # The pid is written to a private file first and hard-linked into place, so the
        # lock never exists without its pid (another process could take an empty one for
        # stale). The private file goes whatever happens, a full disk included.
        from dlcli.train.io import TMP_PREFIX, lock_text
        mine = self.path.with_name(f"{TMP_PREFIX}lock.{os.getpid()}")
        try:
            try:
                with open(mine, "w", encoding="utf-8") as handle:
                    handle.write(lock_text())
            except OSError as exc:
                raise DataError(f"cannot write the run's lock: {exc.strerror or exc}",
                                where=str(mine)) from None
            return self._take(mine)
        finally:
            with contextlib.suppress(OSError):
                mine.unlink()

    def _take(self, mine: pathlib.Path):
        from dlcli.train.io import lock_holder_alive, lock_text, parse_lock
        for _ in range(2):
            try:
                try:
                    os.link(mine, self.path)
                except FileExistsError:
                    raise
                except OSError:  # no hard links here (or our file vanished): create in place
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                    with os.fdopen(fd, "w") as handle:
                        handle.write(lock_text())
            except FileExistsError:
                try:
                    text = self.path.read_text(encoding="utf-8", errors="replace")
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise DataError(f"cannot read the run's lock: {exc.strerror}",
                                    where=str(self.path)) from None
                holder = parse_lock(text)
                if holder is None:
                    raise DataError(f"holds {text.strip()[:40]!r}, not a dlcli lock (a pid and "
                                    "its start time); if no dlcli process writes this run, "
                                    "delete the file", where=str(self.path))
                if holder[0] != os.getpid() and lock_holder_alive(*holder):
                    raise DataError(f"is being written by another dlcli process (pid "
                                    f"{holder[0]}); wait for it or stop it first",
                                    where=str(self.path.parent))
                self.taken_over = holder[0]
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            except OSError as exc:
                raise DataError(f"cannot write the run's lock: {exc.strerror or exc}",
                                where=str(self.path)) from None
            return self
        raise DataError("cannot take the run's lock file", where=str(self.path))

    def __exit__(self, *exc):
        with contextlib.suppress(OSError):
            if read_pid(self.path) == os.getpid():
                self.path.unlink()


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


def open_resume(run_dir, config: Config | None, overrides, allow_change: bool):
    """The config to continue ``run_dir`` with; refuses a changed config unless allowed."""
    from dlcli.config import loader
    from dlcli.config.resolve import apply_overrides, resolve

    run_dir = pathlib.Path(run_dir)
    stored_path = run_dir / "config.yaml"
    if not stored_path.is_file():
        raise DataError("is not a dlcli run directory (no config.yaml)", where=str(run_dir))
    stored_raw = loader.load_file(stored_path)
    if config is None:
        raw = apply_overrides(stored_raw, list(overrides)) if overrides else stored_raw
        new = resolve(raw, path=stored_path)
    else:
        new = config
    differences = config_differences(stored_raw, stored_config(new))
    if differences and not allow_change:
        raise ConfigError(f"the config to resume with differs from the run's config.yaml in "
                          f"{len(differences)} key(s): " + "; ".join(differences[:5])
                          + (" ..." if len(differences) > 5 else "")
                          + "; pass --allow-config-change to resume with it anyway",
                          file=str(run_dir))
    try:
        status = json.loads((run_dir / "summary.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if status == "finished" and not differences:
        raise DataError("the run has already finished; to train it further, resume with "
                        "--set training.epochs=N --allow-config-change", where=str(run_dir))
    return new, differences


def train(config: Config, *, run_dir=None, seed=None, console=None, interactive=False,
          quiet=False, resume: bool = False, changes: list[str] = ()) -> dict:
    """Train ``config`` into a new run directory, or continue ``run_dir`` when ``resume``.

    ``changes``: the config differences the user allowed on resume (from ``open_resume``).

    Returns the summary also written to ``summary.json``.
    """
    from dlcli.train.callbacks import Checkpointer, EarlyStopping, MetricsLogger, Monitor
    from dlcli.train.io import remove_stale_temporaries
    from dlcli.train.progress import Progress
    from dlcli.train.trainer import Interrupted, Trainer

    if seed is not None:
        config.data["seed"] = seed
    seed = config["seed"]
    prep = prepare(config, seed)
    model, loss, task, splits = prep.model, prep.loss, prep.task, prep.splits
    warnings = list(prep.warnings)
    dtype = model.dtype
    optimizer, train_rng = initialize(config, model, seed)
    init_from = config["model"]["init_from"]
    if init_from and not resume:
        path = config.base_dir / init_from
        parts = ckpt.load(path, verified=None)
        ckpt.check_matches(parts["model"], model.expected_state(), str(path))
        model.load_state_dict(parts["model"])

    x_train = splits.x_train.astype(dtype, copy=False)
    x_val = splits.x_val.astype(dtype, copy=False)
    y_train, y_val, _ = targets(splits, task, dtype, loss)
    training = config["training"]
    monitor_name = training["monitor"]
    if monitor_name == "auto":
        monitor_name = "val_loss" if len(x_val) else "loss"
    if monitor_name.startswith("val_") and not len(x_val):
        raise ConfigError(f"training.monitor: {monitor_name!r} needs a validation split; set "
                          "data.validation_split above 0 or monitor 'loss'", file=config.source)
    from dlcli.train.metrics import monitorable
    known = monitorable(task, bool(len(x_val)))
    if monitor_name not in known:
        from dlcli.config.rules import unknown_key_message
        hint = unknown_key_message(monitor_name, known).replace("unknown key", "")
        raise ConfigError(f"training.monitor: {task} runs log no metric {monitor_name!r}"
                          f"{hint}", file=config.source)
    monitor = Monitor(monitor_name, training["monitor_mode"],
                      (training["early_stopping"] or {}).get("min_delta", 0.0))

    if resume:
        run_dir = pathlib.Path(run_dir)
    elif run_dir is None:
        run_dir = new_run_dir(pathlib.Path(training["output_dir"]), config["name"])
    else:
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

    schedule = None
    if training.get("schedule"):
        from dlcli.schedules import make_schedule
        schedule = make_schedule(training["schedule"], optimizer.lr, training["epochs"])
    trainer = Trainer(model, loss, optimizer, task=task, batch_size=training["batch_size"],
                      epochs=training["epochs"], rng=train_rng, shuffle=training["shuffle"],
                      n_classes=splits.n_classes,
                      clip_norm=training["clip_norm"], clip_value=training["clip_value"],
                      schedule=schedule)
    normalizer_state = splits.normalizer.state()
    with RunLock(run_dir) as lock:
        if lock.taken_over is not None:
            warnings.append(f"took over the stale lock of process {lock.taken_over}")
        for tmp in remove_stale_temporaries(run_dir) + remove_stale_temporaries(
                run_dir / "checkpoints"):
            warnings.append(f"removed the leftover temporary file {tmp}")
        rows = []
        if resume:
            from dlcli.train.recovery import latest, reconcile_best
            path, parts, fallbacks = latest(run_dir / "checkpoints")
            warnings += fallbacks
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
            if not _check_same_normalizer(parts["normalizer"], normalizer_state, path,
                                          data_changed=any(c.startswith(("data.", "seed:"))
                                                           for c in changes)):
                warnings.append("the inputs are normalized with statistics refitted on the "
                                "changed training data")
            # Rows after the checkpoint are replayed by the resumed run: keep one copy.
            warnings += truncate_jsonl(run_dir / "metrics.jsonl", trainer.epoch)
            rows, _ = read_jsonl(run_dir / "metrics.jsonl")
            trainer.history = [dict(r) for r in rows]
        else:
            (run_dir / "checkpoints").mkdir()
            if splits.class_names is not None:
                write_json(run_dir / "classes.json", list(splits.class_names))
            if splits.feature_names is not None:  # predict picks CSV columns by these names
                write_json(run_dir / "features.json", list(splits.feature_names))
        # The config the run continues with (on resume, possibly changed by the user).
        from dlcli.nn.layers.base import display_shape
        resolved = stored_config(config)
        resolved["task"] = task
        resolved["model"]["input_shape"] = list(display_shape(model.input_shape))
        write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))

        stopper = None
        if training["early_stopping"]:
            stopper = EarlyStopping(monitor, training["early_stopping"]["patience"])
            if resume and trainer.stop_training:
                stopper.load_state_dict(parts["trainer"])
        checkpointer = Checkpointer(run_dir, monitor, normalizer_state, stopper)
        if resume:
            checkpointer.last_good = f"{path} (epoch {trainer.epoch}, step {trainer.step})"
        callbacks = [monitor, MetricsLogger(run_dir, rows)]
        diagnostics = None
        if training["diagnostics"]:
            from dlcli.train.diagnostics import Diagnostics
            if resume:  # rows past the checkpoint are replayed
                warnings += truncate_jsonl(run_dir / "diagnostics.jsonl", trainer.epoch)
            diagnostics = Diagnostics(run_dir)
            if trainer.resumes_mid_epoch:
                diagnostics.partial_epoch = trainer.epoch + 1
            callbacks.append(diagnostics)
        if console is not None:
            callbacks.append(Progress(console, interactive, quiet))
        if stopper is not None:  # before the checkpoint: the stop decision is saved with it
            callbacks.append(stopper)
        callbacks.append(checkpointer)
        trainer.callbacks = callbacks

        started = time.perf_counter()
        finish = lambda status: _write_summary(  # noqa: E731
            run_dir, config, model, task, trainer, monitor, started, status, stopper)
        try:
            # Overflow shows up as a non-finite loss or gradient, which the trainer reports
            # with the epoch and step; NumPy's own warnings would only add noise.
            with interrupt_handlers(trainer), np.errstate(all="ignore"):
                history = trainer.fit(x_train, y_train, x_val, y_val)
        except TrainingError as exc:
            finish(exc.status)
            exc.message += f"; run directory {run_dir}"
            raise
        except Interrupted as exc:
            finish("interrupted")
            name = signal.Signals(exc.signum).name
            raise RunInterrupted(
                f"{name} received: stopped after epoch {exc.epoch} step {exc.batch}, "
                f"checkpoint written to {run_dir / 'checkpoints' / 'last.npz'}; resume with: "
                f"dlcli train --resume {run_dir}", exc.signum) from None
        except KeyboardInterrupt:
            finish("interrupted")
            raise
        except Exception:
            finish("failed")  # whatever it was, the run directory says it did not finish
            raise
        summary = finish("finished")
        warnings += trainer.notes
        if diagnostics is not None:
            warnings += diagnostics.warnings
    summary["warnings"] = warnings
    summary["history"] = history
    return summary


def _check_same_normalizer(stored: dict, current: dict, path, data_changed=False) -> bool:
    """A resumed run must see the inputs normalized exactly as before: the data it re-reads
    must give the statistics stored with the checkpoint, unless the user changed the data
    keys on purpose. Returns whether they are the same."""
    same = stored.keys() == current.keys() and all(
        np.array_equal(np.asarray(stored[k]), np.asarray(current[k])) for k in current)
    if not same and not data_changed:
        raise DataError("the training data's normalization statistics differ from those "
                        "stored with the run: the data file changed since the run started",
                        where=str(path))
    return same


def _write_summary(run_dir, config, model, task, trainer, monitor, started, status, stopper):
    from dlcli import __version__
    from dlcli.train.callbacks import json_safe

    final = {k: v for k, v in (trainer.history[-1] if trainer.history else {}).items()
             if k not in ("best",)}
    summary = {
        "run_dir": str(run_dir),
        "name": config["name"],
        "task": task,
        "status": status,
        "epochs_done": trainer.epoch,
        "steps": trainer.step,
        "stopped_early": bool(stopper and stopper.stopped_epoch),
        "monitor": monitor.name,
        "best": monitor.best if monitor.best_epoch else None,
        "best_epoch": monitor.best_epoch or None,
        "final": json_safe(final),
        "params": model.param_count(),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "versions": {"dlcli": __version__, "python": platform.python_version(),
                     "numpy": np.__version__},
        "pid": os.getpid(),
    }
    try:
        write_json(run_dir / "summary.json", json_safe(summary))
    except OSError:
        pass  # the failure being reported matters more than the summary
    return summary

"""The run directory: its name, its lock, the config stored in it, resuming it, and its
summary."""

import contextlib
import datetime
import json
import os
import pathlib
import platform
import time

import numpy as np

from dlcli import __version__
from dlcli.config import loader
from dlcli.config.resolve import Config, apply_overrides, flatten_keys, resolve
from dlcli.errors import ConfigError, DataError
from dlcli.train.callbacks import json_safe
from dlcli.train.io import TMP_PREFIX, lock_holder_alive, lock_text, parse_lock, read_pid, \
    write_json


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
    from dlcli.config.keypaths import portable
    return portable(config)


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


def open_resume(run_dir, config: Config | None, overrides, allow_change: bool):
    """The config to continue ``run_dir`` with; refuses a changed config unless allowed."""
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
    # TensorBoard's event files are written beside the results and change none of them:
    # turning them on (or off) at --resume is not a change to refuse.
    differences = [d for d in config_differences(stored_raw, stored_config(new))
                   if not d.startswith("training.tensorboard:")]
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


def check_same_normalizer(stored: dict, current: dict, path, data_changed=False) -> bool:
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


def write_summary(run_dir, config, model, task, trainer, monitor, started, status, stopper):
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
        "checkpoint_every": config["training"]["checkpoint_every"],
        "threads": getattr(trainer, "blas_threads", None),
    }
    try:
        write_json(run_dir / "summary.json", json_safe(summary))
    except OSError:
        pass  # the failure being reported matters more than the summary
    return summary

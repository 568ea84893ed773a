"""``dlcli sweep``: create a sweep directory, run its trials through an executor, resume it.

```
sweeps/<name>-<time>/
  sweep.yaml        the spec as resolved (base config absolute, defaults filled in)
  configs/NNNN.yaml each trial's resolved config (what its run was started from)
  trials.jsonl      append-only: one line per event of a trial (see record.py)
  trials/NNNN/      each trial an ordinary run directory
  logs/NNNN.log     what each trial's process printed, attempt after attempt
  best.json         the best finished trial so far
  abandoned/        directories of attempts that died before their first checkpoint
  lock              the driver's pid while it runs
```
"""

import contextlib
import json
import os
import pathlib
import signal

import yaml

from dlcli.errors import DataError, RunInterrupted
from dlcli.sweep import attempt, generate, record
from dlcli.sweep.spec import Spec, check_trials, trial_config

SPEC_FILE = "sweep.yaml"


class SweepInterrupted(RunInterrupted):
    """The driver stopped on SIGINT/SIGTERM after its running trials checkpointed."""


def planned_trials(spec: Spec) -> list[tuple[int, dict]]:
    """(number, values) of every trial of a grid or random sweep."""
    return [(n, generate.values_for(spec, n)) for n in range(generate.trial_count(spec))]


def validate(spec: Spec) -> list[tuple[int, dict]]:
    """Resolve every trial's config before anything runs (tpe: the ends of every range)."""
    if spec["method"] == "tpe":
        check_trials(spec, list(enumerate(generate.corner_values(spec.parameters))))
        return []
    trials = planned_trials(spec)
    check_trials(spec, trials)
    return trials


def _write_config(sweep_dir: pathlib.Path, number: int, config) -> None:
    from dlcli.train.io import write_text
    from dlcli.train.rundir import stored_config
    path = attempt.trial_paths(sweep_dir, number)["config"]
    path.parent.mkdir(exist_ok=True)
    write_text(path, yaml.safe_dump(stored_config(config), sort_keys=False))


def create(spec: Spec, trials: list[tuple[int, dict]], directory=None) -> pathlib.Path:
    """Make the sweep directory (never an existing one) and write its spec and configs."""
    from dlcli.train.io import write_text
    from dlcli.train.rundir import new_run_dir
    if directory is None:
        sweep_dir = new_run_dir(pathlib.Path(spec["output_dir"]), spec["name"])
    else:
        sweep_dir = pathlib.Path(directory)
        if sweep_dir.exists():
            raise DataError("already exists; dlcli never writes into an existing sweep "
                            "directory (choose another --dir, or --resume it)",
                            where=str(sweep_dir))
        try:
            sweep_dir.mkdir(parents=True)
        except OSError as exc:
            raise DataError(f"cannot create the sweep directory: {exc.strerror}",
                            where=str(sweep_dir)) from None
    for sub in ("configs", "trials", "logs"):
        (sweep_dir / sub).mkdir()
    write_text(sweep_dir / SPEC_FILE, yaml.safe_dump(spec.data, sort_keys=False))
    for number, values in trials:
        _write_config(sweep_dir, number, trial_config(spec, values, check_data=False))
    (sweep_dir / record.TRIALS).touch()
    return sweep_dir


def open_sweep(sweep_dir) -> Spec:
    from dlcli.config import loader
    sweep_dir = pathlib.Path(sweep_dir)
    path = sweep_dir / SPEC_FILE
    if not path.is_file():
        raise DataError(f"is not a dlcli sweep directory (no {SPEC_FILE})", where=str(sweep_dir))
    return Spec(data=loader.load_file(path), path=path)


def make_executor(spec: Spec, parallel: int | None):
    """The spec's executor (a Dask one has checked its workers); ``attach`` it to a sweep."""
    options = spec["executor"]
    threads, metric = options["threads_per_trial"], spec["metric"]["name"]
    if parallel is None and options["parallel"] != "auto":
        parallel = options["parallel"]
    if options["type"] == "dask":
        from dlcli.sweep.dask_executor import DaskExecutor
        return DaskExecutor(metric, threads, parallel, options["address"])
    from dlcli.sweep.local import LocalExecutor, auto_parallel
    return LocalExecutor(metric, threads, parallel or auto_parallel(threads))


class Driver:
    """Runs the trials of one sweep directory to the end (or until a signal)."""

    def __init__(self, spec: Spec, sweep_dir, executor, display):
        self.spec, self.dir, self.executor, self.display = spec, pathlib.Path(sweep_dir), \
            executor, display
        executor.attach(self.dir)
        self.total = (generate.trial_count(spec) if spec["method"] != "tpe"
                      else spec["trials"])
        self.latest, self.warnings = record.read(self.dir)
        self.todo = [n for n in range(self.total)
                     if self.latest.get(n, {}).get("status") not in record.FINAL]
        self.retried: dict[int, int] = {}
        self.stop_signal = None
        self.signalled = 0
        self.tpe = None
        if spec["method"] == "tpe":
            from dlcli.sweep.tpe import TPE
            self.tpe = TPE(spec, self.dir, self.latest)

    def params(self, number: int) -> dict:
        if number in self.latest:
            return self.latest[number]["params"]
        if self.tpe is not None:
            values = self.tpe.ask(number)
            try:
                _write_config(self.dir, number, trial_config(self.spec, values))
            except Exception:
                self.tpe.tell(number, None)
                raise
            return values
        return generate.values_for(self.spec, number)

    def _start(self, number: int) -> None:
        params = self.params(number)
        previous = self.latest.get(number, {})
        kind = self.executor.start(number, previous)
        if kind == "done":
            self.latest[number] = {**previous, "trial": number, "params": params}
            return
        row = {"trial": number, "status": "running", "params": params,
               "run_dir": f"trials/{record.trial_name(number)}",
               "attempt": previous.get("attempts", 0) + 1,
               "resumed": None if kind == "submitted" else kind == "resume"}
        if self.executor.pid_of(number):
            row.update(pid=self.executor.pid_of(number), host=os.uname().nodename)
        record.append(self.dir, row)
        self.latest[number] = {**row, "attempts": row["attempt"]}
        self.display.started(number, self.latest[number])

    def _ended(self, number: int, out: dict) -> None:
        previous = self.latest.get(number, {})
        row = {"trial": number, "status": out["status"], "params": previous.get("params"),
               "run_dir": f"trials/{record.trial_name(number)}",
               "attempt": previous.get("attempts", 1), "resumed": out.get("kind") == "resume",
               "metric": out.get("metric"), "best_epoch": out.get("best_epoch"),
               "epochs": out.get("epochs"), "exit_code": out.get("exit_code"),
               "wall_time_s": out.get("wall_time_s"), "host": out.get("host")}
        record.append(self.dir, row)
        self.latest[number] = {**row, "attempts": row["attempt"]}
        if self.tpe is not None and out["status"] in record.FINAL:
            self.tpe.tell(number, out.get("metric") if out["status"] == "finished" else None)
        best = record.write_best(self.dir, self.spec.data, self.latest)
        if (out["status"] == "crashed" and self.stop_signal is None
                and self.retried.get(number, 0) < self.spec["executor"]["retries"]):
            self.retried[number] = self.retried.get(number, 0) + 1
            self.todo.insert(0, number)
        self.display.ended(number, self.latest[number], best)

    def _on_signal(self, signum, frame):
        self.stop_signal = signum

    def run(self) -> dict:
        from dlcli.train.rundir import RunLock
        with RunLock(self.dir), self._signals():
            with contextlib.suppress(FileNotFoundError):
                (self.dir / attempt.STOP_FILE).unlink()
            try:
                self._loop()
            finally:
                self.executor.close()
                self.display.close()
        return self.result()

    @contextlib.contextmanager
    def _signals(self):
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _loop(self) -> None:
        while True:
            if self.stop_signal is not None and self.signalled == 0:
                self.signalled = self.stop_signal
                self.executor.signal(self.stop_signal)
            if self.stop_signal is None:
                while self.todo and self.executor.free() > 0:
                    self._start(self.todo.pop(0))
            if not self.executor.running and not self.executor.ready and (
                    self.stop_signal is not None or not self.todo):
                break
            for number, out in self.executor.poll(0.5):
                self._ended(number, out)
            self.display.refresh()
        if self.stop_signal is not None:
            left = [n for n in range(self.total)
                    if self.latest.get(n, {}).get("status") not in record.FINAL]
            name = signal.Signals(self.stop_signal).name
            raise SweepInterrupted(
                f"{name} received: the sweep stopped with {self.total - len(left)} of "
                f"{self.total} trials done; running trials wrote checkpoints; continue with: "
                f"dlcli sweep --resume {self.dir}", self.stop_signal)

    def result(self) -> dict:
        counts: dict[str, int] = {}
        for row in self.latest.values():
            counts[row.get("status")] = counts.get(row.get("status"), 0) + 1
        try:
            best = json.loads((self.dir / "best.json").read_text())
        except (OSError, ValueError):
            best = None
        return {"sweep_dir": str(self.dir), "total": self.total, "counts": counts,
                "best": best, "warnings": self.warnings}

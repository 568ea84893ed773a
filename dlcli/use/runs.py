"""Reading run directories (``dlcli runs``, ``dlcli compare``, ``dlcli plot``).

A run directory holds ``config.yaml``, ``metrics.jsonl`` (one JSON object per epoch),
``summary.json`` (written when training ends), ``checkpoints/`` and optionally
``diagnostics.jsonl``, ``classes.json`` and a ``lock`` file. Every reader here tolerates
missing or damaged files: a run killed mid-write leaves a torn last line in
``metrics.jsonl``, which is skipped with a warning, and a run without ``summary.json`` is
``running`` while the process that owns it is alive and ``interrupted`` otherwise.
"""

import datetime
import json
import math
import pathlib
import re
import time
from dataclasses import dataclass, field

from dlcli.config.resolve import flatten_keys
from dlcli.train.io import lock_holder_alive, read_jsonl, read_lock  # noqa: F401 (read_jsonl re-exported)

STATUSES = ("running", "finished", "interrupted", "failed", "diverged")
SPARK_BARS = "▁▂▃▄▅▆▇█"
STAMP = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?$")
# Columns of metrics.jsonl that are bookkeeping, not metrics.
NOT_METRICS = ("epoch", "time", "best", "nonfinite", "lr")
# With no pid to ask, a run whose files changed this recently counts as running.
FRESH_SECONDS = 120.0


@dataclass
class Run:
    """What a run directory says about its run (every field tolerates missing files)."""

    path: pathlib.Path
    name: str  # the directory's name
    config_name: str | None
    started: datetime.datetime | None
    status: str
    epochs_done: int
    monitor: str | None
    best: float | None
    best_epoch: int | None
    wall_time_s: float | None
    final: dict
    history: list[dict]
    config: dict | None
    summary: dict | None
    task: str | None
    warnings: list[str] = field(default_factory=list)
    scores: dict = field(default_factory=dict)  # scores.json: what ``dlcli eval`` measured

    def curve(self) -> tuple[str, list]:
        """(metric name, values per epoch) of the validation loss, or the loss without one."""
        key = "val_loss" if any(r.get("val_loss") is not None for r in self.history) else "loss"
        return key, [r.get(key) for r in self.history]

    def to_dict(self) -> dict:
        key, values = self.curve()
        return {"path": str(self.path), "name": self.name, "config": self.config_name,
                "task": self.task,
                "started": self.started.isoformat(timespec="seconds") if self.started else None,
                "status": self.status, "epochs_done": self.epochs_done, "monitor": self.monitor,
                "best": self.best, "best_epoch": self.best_epoch,
                "wall_time_s": self.wall_time_s, "final": self.final, "curve_metric": key,
                "curve": values, "warnings": self.warnings}


# ---- files ------------------------------------------------------------------------------
def read_json(path) -> tuple[object, list[str]]:
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8")), []
    except FileNotFoundError:
        return None, []
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, [f"{path}: unreadable ({exc}); ignored"]


def read_config(path) -> tuple[dict | None, list[str]]:
    import yaml

    path = pathlib.Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, [f"{path}: unreadable ({type(exc).__name__}); ignored"]
    if not isinstance(data, dict):
        return None, [f"{path}: not a mapping; ignored"]
    return data, []


def _last_activity(run_dir: pathlib.Path) -> float | None:
    times = []
    for name in ("metrics.jsonl", "config.yaml", "diagnostics.jsonl", "checkpoints/last.npz"):
        try:
            times.append((run_dir / name).stat().st_mtime)
        except OSError:
            pass
    return max(times) if times else None


def run_status(run_dir: pathlib.Path, summary: dict | None, history: list[dict],
               now: float | None = None) -> str:
    """finished / diverged / failed / interrupted from summary.json; otherwise running when
    the owning process (``pid`` in summary.json, or the ``lock`` file's pid with the start
    time it records, as :func:`dlcli.train.io.lock_holder_alive` tests) is alive.

    With no pid anywhere (runs written before lock files existed), a run whose files
    changed in the last ``max(FRESH_SECONDS, 5 × its slowest epoch)`` seconds is taken
    to be running.
    """
    status = summary.get("status") if isinstance(summary, dict) else None
    if status in STATUSES and status != "running":
        return status
    # The lock names its writer by pid and start time: a pid reused since is not the run's.
    owners = [lock for lock in [read_lock(run_dir / "lock")] if lock is not None]
    if (summary or {}).get("pid") is not None:
        owners.append((summary["pid"], None))
    if owners:
        return "running" if any(lock_holder_alive(*o) for o in owners) else "interrupted"
    last = _last_activity(run_dir)
    slowest = max((r["time"] for r in history if isinstance(r.get("time"), (int, float))),
                  default=0.0)
    now = time.time() if now is None else now
    if last is not None and now - last < max(FRESH_SECONDS, 5 * slowest):
        return "running"
    return "interrupted"


def _started(run_dir: pathlib.Path) -> datetime.datetime | None:
    match = STAMP.search(run_dir.name)
    if match:
        try:
            return datetime.datetime.strptime(match.group(1), "%Y%m%d-%H%M%S")
        except ValueError:
            pass
    for name in ("config.yaml", "metrics.jsonl"):
        try:
            return datetime.datetime.fromtimestamp((run_dir / name).stat().st_mtime)
        except OSError:
            continue
    return None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def best_of(history: list[dict], monitor: str) -> tuple[float | None, int | None]:
    """The best value of ``monitor`` over ``history`` (max for accuracy-like, else min)."""
    from dlcli.train.metrics import HIGHER_IS_BETTER

    sign = -1 if monitor in HIGHER_IS_BETTER else 1
    best = best_epoch = None
    for i, row in enumerate(history, 1):
        value = row.get(monitor)
        if _finite(value) and (best is None or sign * value < sign * best):
            best, best_epoch = value, row.get("epoch", i)
    return best, best_epoch


def is_run_dir(path: pathlib.Path) -> bool:
    return path.is_dir() and any((path / n).exists() for n in
                                 ("config.yaml", "metrics.jsonl", "summary.json"))


def load(path, now: float | None = None) -> Run:
    """Read one run directory. Raises FileNotFoundError when it is not a run directory."""
    run_dir = pathlib.Path(path)
    if not is_run_dir(run_dir):
        raise FileNotFoundError(f"{run_dir}: not a dlcli run directory (no config.yaml, "
                                "metrics.jsonl or summary.json)")
    warnings: list[str] = []
    history, w = read_jsonl(run_dir / "metrics.jsonl")
    warnings += w
    summary, w = read_json(run_dir / "summary.json")
    warnings += w
    if summary is not None and not isinstance(summary, dict):
        warnings.append(f"{run_dir / 'summary.json'}: not a JSON object; ignored")
        summary = None
    config, w = read_config(run_dir / "config.yaml")
    warnings += w
    summary_d = summary or {}
    config_name = summary_d.get("name") or (config or {}).get("name")
    task = summary_d.get("task") or (config or {}).get("task")
    status = run_status(run_dir, summary, history, now)
    epochs = summary_d.get("epochs_done")
    if not isinstance(epochs, int) or (status == "running" and history):
        epochs = max((r.get("epoch", 0) for r in history if isinstance(r.get("epoch"), int)),
                     default=len(history))
    monitor = summary_d.get("monitor")
    if not monitor:
        monitor = ((config or {}).get("training") or {}).get("monitor", "auto")
        if monitor in (None, "auto"):
            monitor = "val_loss" if any("val_loss" in r for r in history) else "loss"
    if "best" in summary_d and status != "running":
        best, best_epoch = summary_d.get("best"), summary_d.get("best_epoch")
    else:
        best, best_epoch = best_of(history, monitor)
    wall = summary_d.get("wall_time_s")
    if not _finite(wall):
        times = [r["time"] for r in history if _finite(r.get("time"))]
        wall = round(sum(times), 3) if times else None
    final = summary_d.get("final") if isinstance(summary_d.get("final"), dict) else None
    if final is None or status == "running":
        final = dict(history[-1]) if history else {}
    scores, w = read_json(run_dir / "scores.json")
    warnings += w
    return Run(path=run_dir, name=run_dir.name, config_name=config_name,
               started=_started(run_dir), status=status, epochs_done=int(epochs),
               monitor=monitor, best=best, best_epoch=best_epoch, wall_time_s=wall,
               final=final, history=history, config=config, summary=summary, task=task,
               warnings=warnings, scores=scores if isinstance(scores, dict) else {})


def find_runs(root, now: float | None = None) -> list[Run]:
    """Every run directory in ``root`` (or ``root`` itself when it is one), newest first."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    if is_run_dir(root):
        candidates = [root]
    else:
        candidates = sorted(p for p in root.iterdir() if is_run_dir(p))
    runs = [load(p, now) for p in candidates]
    epoch0 = datetime.datetime.min
    runs.sort(key=lambda r: (r.started or epoch0, r.name), reverse=True)
    return runs


def select(runs: list[Run], config_name: str | None = None,
           status: str | None = None) -> list[Run]:
    return [r for r in runs if (config_name is None or r.config_name == config_name)
            and (status is None or r.status == status)]


# ---- rendering helpers ------------------------------------------------------------------
def sparkline(values, width: int = 16) -> str:
    """Unicode bars ▁..█ scaled between the finite minimum and maximum of ``values``.

    More than ``width`` values are averaged in ``width`` consecutive buckets. A missing
    or non-finite value is a space; a flat series sits on the lowest bar.
    """
    values = [float(v) if _finite(v) else None for v in values]
    if len(values) > width:
        buckets = []
        for k in range(width):
            part = [v for v in values[k * len(values) // width:(k + 1) * len(values) // width]
                    if v is not None]
            buckets.append(sum(part) / len(part) if part else None)
        values = buckets
    finite = [v for v in values if v is not None]
    if not finite:
        return " " * len(values)
    lo, hi = min(finite), max(finite)
    span = hi - lo
    top = len(SPARK_BARS) - 1
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif span <= 0:
            out.append(SPARK_BARS[0])
        else:
            out.append(SPARK_BARS[min(top, int(round((v - lo) / span * top)))])
    return "".join(out)


MISSING = object()


def config_differences(runs: list[Run]) -> dict[str, list]:
    """Flattened config keys whose values are not the same in every run (MISSING marks a
    key a run lacks), in first-seen order."""
    flat = [flatten_keys(r.config or {}) for r in runs]
    keys: list[str] = []
    seen = set()
    for f in flat:
        for k in f:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    diff = {}
    for k in keys:
        values = [f.get(k, MISSING) for f in flat]
        if any(v is MISSING or v != values[0] for v in values[1:]) or (
                values[0] is MISSING):
            diff[k] = values
    return diff


def final_metrics(runs: list[Run]) -> dict[str, list]:
    """Each run's final value of every metric any of them has (None where missing)."""
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r.final if k not in keys and k not in ("epoch", "time",
                                                                       "best", "nonfinite")]
    out = {k: [r.final.get(k) for r in runs] for k in keys}
    tests = [test_scores(r) for r in runs]
    for key in [k for t in tests for k in t]:
        out.setdefault(key, [t.get(key) for t in tests])
    return out


def test_scores(run: Run) -> dict:
    """``test_<metric>`` of the run's test split as ``dlcli eval`` scored it (best
    checkpoint, else last); empty when it was never scored."""
    scored = run.scores.get("best/test") or run.scores.get("last/test")
    if not isinstance(scored, dict):
        return {}
    return {f"test_{k}": v for k, v in scored.items() if _finite(v)}


def compare(runs: list[Run]) -> dict:
    """What ``dlcli compare --json`` prints."""
    diff = config_differences(runs)
    return {"runs": [str(r.path) for r in runs],
            "names": [r.name for r in runs],
            "config": {k: [None if v is MISSING else v for v in vals] for k, vals in diff.items()},
            "missing": {k: [v is MISSING for v in vals] for k, vals in diff.items()
                        if any(v is MISSING for v in vals)},
            "status": [r.status for r in runs],
            "epochs_done": [r.epochs_done for r in runs],
            "best": [{"monitor": r.monitor, "value": r.best, "epoch": r.best_epoch}
                     for r in runs],
            "final": final_metrics(runs)}

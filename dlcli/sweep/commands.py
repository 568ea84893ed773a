"""What ``dlcli sweep`` does, callable without the command line (the CLI only parses)."""

import json
import pathlib

from dlcli.errors import DataError
from dlcli.sweep import driver, generate, record
from dlcli.sweep.display import SweepDisplay, print_dry_run, print_show, show_rows
from dlcli.sweep.spec import load_spec


def _run(spec, sweep_dir, executor, console, interactive) -> dict:
    total = generate.trial_count(spec)
    console.print(f"sweep {spec['name']}: {total} trials ({spec['method']}), "
                  f"{executor.describe()}; writing {sweep_dir}", markup=False,
                  highlight=False, soft_wrap=True)
    display = SweepDisplay(console, spec, total, interactive, sweep_dir)
    return driver.Driver(spec, sweep_dir, executor, display).run()


def new_sweep(spec_path, overrides=(), directory=None, parallel=None, dry_run=False, *,
              console, interactive=False) -> dict | None:
    """Validate every trial, then (unless ``dry_run``) create the directory and run them."""
    spec = load_spec(spec_path, overrides)
    trials = driver.validate(spec)
    if dry_run:
        shown = trials or list(enumerate(generate.corner_values(spec.parameters)))
        print_dry_run(console, spec, shown, generate.trial_count(spec))
        return None
    executor = driver.make_executor(spec, parallel)  # a Dask cluster's workers checked first
    try:
        sweep_dir = driver.create(spec, trials, directory)
    except BaseException:
        executor.close()
        raise
    return _run(spec, sweep_dir, executor, console, interactive)


def resume_sweep(sweep_dir, parallel=None, *, console, interactive=False) -> dict:
    spec = driver.open_sweep(sweep_dir)
    return _run(spec, pathlib.Path(sweep_dir), driver.make_executor(spec, parallel), console,
                interactive)


def show_sweep(sweep_dir, as_json: bool, console) -> None:
    spec = driver.open_sweep(sweep_dir)
    rows = show_rows(sweep_dir, spec)
    total = generate.trial_count(spec)
    if as_json:
        best = record.best({r["trial"]: r for r in rows}, spec["metric"]["goal"])
        print(json.dumps({"sweep_dir": str(sweep_dir), "name": spec["name"],
                          "metric": spec["metric"], "total": total,
                          "best_trial": best["trial"] if best else None, "trials": rows}))
    else:
        print_show(console, spec, rows, total)


def summary_lines(result: dict) -> list[str]:
    counts = result["counts"]
    parts = [f"{counts.get(k, 0)} {k}" for k in ("finished", "failed", "crashed") if
             counts.get(k)]
    lines = [f"sweep done: {', '.join(parts) or 'no trials'} of {result['total']}"]
    best = result.get("best")
    if best:
        params = " ".join(f"{k}={json.dumps(v)}" for k, v in best["params"].items())
        lines.append(f"best {best['metric']} {best['value']:.6g} at trial {record.trial_name(best['trial'])} "
                     f"(epoch {best['best_epoch']}): {params}")
        lines.append(f"evaluate it with: dlcli eval "
                     f"{pathlib.Path(result['sweep_dir']) / best['run_dir']}")
    left = counts.get("crashed", 0) + counts.get("interrupted", 0) + counts.get("running", 0)
    if left:
        lines.append(f"{left} trial(s) did not finish; continue them with: dlcli sweep "
                     f"--resume {result['sweep_dir']}")
    lines.append(f"look at all trials with: dlcli sweep --show {result['sweep_dir']}")
    return lines


def require_sweep_dir(path) -> pathlib.Path:
    path = pathlib.Path(path)
    if not (path / driver.SPEC_FILE).is_file():
        raise DataError(f"is not a dlcli sweep directory (no {driver.SPEC_FILE})",
                        where=str(path))
    return path

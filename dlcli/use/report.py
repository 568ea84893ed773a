"""Rendering training summaries, evaluations, runs and comparisons for people (rich tables).

The inspect commands' tables are in :mod:`dlcli.inspect.report`, prediction files in
:mod:`dlcli.use.predictions`; both are re-exported here."""

import math

from dlcli.console import _fmt, print_table, print_warnings  # noqa: F401
from dlcli.inspect.report import print_gradcheck, print_shapes, print_timing  # noqa: F401
from dlcli.errors import human_bytes
from dlcli.use.predictions import check_prediction_target, write_predictions  # noqa: F401


def print_train_summary(console, summary: dict) -> None:
    from rich.table import Table

    stopped = " (stopped early)" if summary.get("stopped_early") else ""
    epochs = summary["epochs_done"]
    console.print(f"{summary['name']}: {summary['status']}{stopped} after "
                  f"{epochs} epoch{'' if epochs == 1 else 's'} in {summary['wall_time_s']:.1f}s",
                  markup=False, soft_wrap=True)
    table = Table()
    table.add_column("metric")
    table.add_column("final", justify="right")
    for key, value in summary["final"].items():
        if key in ("epoch", "time", "nonfinite"):
            continue
        table.add_row(key, _fmt(value))
    print_table(console, table)
    if summary.get("best_epoch"):
        console.print(f"best {summary['monitor']} {_fmt(summary['best'])} at epoch "
                      f"{summary['best_epoch']} (checkpoints/best.npz)", markup=False)
    losses = [row.get("loss") for row in summary.get("history", [])]
    if len(losses) > 1:
        from dlcli.use.runs import sparkline
        console.print(f"loss per epoch {sparkline(losses, width=40)}  "
                      f"{_fmt(losses[0])} -> {_fmt(losses[-1])}", markup=False)
    console.print(f"run written to {summary['run_dir']}", markup=False, soft_wrap=True)
    console.print(f"evaluate it with: dlcli eval {summary['run_dir']}", markup=False,
                  soft_wrap=True)


def print_eval(console, result: dict) -> None:
    from rich.table import Table

    import pathlib
    checkpoint = pathlib.Path(result["checkpoint"]).name
    scored = (f"{result.get('data')}, all of it" if result["split"] == "all"
              else f"{result['split']} split")
    console.print(f"{scored}: {result['samples']} samples ({result['task']}), "
                  f"checkpoint {checkpoint}", markup=False, soft_wrap=True)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if isinstance(value, (int, float)) and key != "samples":
            table.add_row(key, _fmt(value))
    print_table(console, table)
    if "positive_class" in result:
        console.print(f"precision, recall and f1 above are those of the positive class "
                      f"{result['positive_class']!r}", markup=False, soft_wrap=True)
    if "pca" in result:
        pca, neck = result["pca"], result.get("bottleneck", {})
        ratio = (f"; ratio {result['mse'] / pca['mse']:.3f}" if pca["mse"] > 1e-12 else
                 " (k reaches the data's rank: PCA reconstructs them exactly)")
        console.print(
            f"bottleneck {neck.get('layer')} {tuple(neck.get('shape', ()))}: autoencoder mse "
            f"{_fmt(result['mse'])} vs PCA with k={pca['k']} (fitted on the training split, "
            f"{pca['explained_variance_ratio']:.1%} of the variance) mse {_fmt(pca['mse'])}"
            f"{ratio}", markup=False, soft_wrap=True)
    if "images" in result:
        console.print(f"wrote inputs and reconstructions to {result['images']}", markup=False)
    if "confusion_matrix" in result:
        names = (result.get("class_names")
                 or [str(i) for i in range(len(result["confusion_matrix"]))])
        scores = result.get("per_class") or {}
        if scores:
            per_class = Table(title="per class")
            per_class.add_column("class")
            for column in ("precision", "recall", "f1", "support"):
                per_class.add_column(column, justify="right")
            for i, name in enumerate(names):
                per_class.add_row(name, *(f"{scores[c][i]:.3f}" for c in
                                          ("precision", "recall", "f1")),
                                  str(scores["support"][i]))
            print_table(console, per_class)
        cm = Table(title="confusion matrix (rows: true class, columns: predicted)")
        cm.add_column("")
        for name in names:
            cm.add_column(name, justify="right")
        for name, row in zip(names, result["confusion_matrix"]):
            cm.add_row(name, *[str(v) for v in row])
        print_table(console, cm)


STATUS_STYLE = {"finished": "green", "running": "cyan", "interrupted": "yellow",
                "diverged": "red", "failed": "red"}


def _duration(seconds) -> str:
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def print_runs(console, runs) -> None:
    """One row per run (``dlcli runs``): newest first, as given.

    The config column is left out when every run directory is named after its config
    (``<name>-<time>``), the started column on a console narrower than 100 columns when the
    names hold the start time, and the monitor's and curve's names move into the headers (title) when all
    runs share them, so the table fits 80 columns.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from dlcli.use.runs import STAMP, sparkline

    monitors = {r.monitor for r in runs if r.best is not None}
    curves = {r.curve()[0] for r in runs if r.history}
    one_monitor = len(monitors) == 1
    one_curve = len(curves) <= 1
    show_config = any(not r.name.startswith(f"{r.config_name}-") for r in runs)
    # A run directory's name already holds its start time; on a narrow console that
    # column is the one to drop.
    show_started = console.width >= 100 or any(not STAMP.search(r.name) for r in runs)
    title = f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
    if curves and one_curve:
        title += f"; curve: {next(iter(curves))} per epoch"
    table = Table(title=title,
                  box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False,
                  show_edge=False, collapse_padding=True)
    longest = max((len(r.name) for r in runs), default=3)
    table.add_column("run", overflow="fold", min_width=min(longest, 32))
    if show_config:
        table.add_column("config", overflow="fold")
    if show_started:
        table.add_column("started", min_width=10)
    table.add_column("status", min_width=8)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column(f"best {next(iter(monitors))}" if one_monitor else "best",
                     justify="right", min_width=9)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("curve", no_wrap=True)
    for run in runs:
        key, values = run.curve()
        if run.best is None:
            best = "-"
        else:
            best = (f"{_fmt(run.best)} @{run.best_epoch}" if one_monitor
                    else f"{run.monitor} {_fmt(run.best)} @{run.best_epoch}")
        curve = sparkline(values, width=10) if values else "-"
        if values and not one_curve:
            curve += f" {key}"
        cells = [Text(run.name)]
        if show_config:
            cells.append(Text(run.config_name or "-"))
        if show_started:
            cells.append(run.started.strftime("%Y-%m-%d %H:%M") if run.started else "-")
        cells += [Text(run.status, style=STATUS_STYLE.get(run.status, "")),
                  str(run.epochs_done), Text(best), _duration(run.wall_time_s), Text(curve)]
        table.add_row(*cells)
    print_table(console, table)


def _cell(value) -> str:
    from dlcli.use.runs import MISSING

    if value is MISSING:
        return "(absent)"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def print_compare(console, runs, diff: dict, finals: dict) -> None:
    """One table: the config keys that differ, then each run's final metrics side by side."""
    from rich.table import Table
    from rich.text import Text

    from dlcli.train.metrics import HIGHER_IS_BETTER

    table = Table(title=f"comparing {len(runs)} runs")
    table.add_column("", no_wrap=True)
    for run in runs:
        table.add_column(Text(run.name), justify="right", overflow="fold")
    if diff:
        for key, values in diff.items():
            table.add_row(Text(key), *[Text(_cell(v)) for v in values])
    else:
        table.add_row(Text("(configs identical)", style="dim"), *["" for _ in runs])
    table.add_section()
    table.add_row("status", *[Text(r.status, style=STATUS_STYLE.get(r.status, ""))
                              for r in runs])
    table.add_row("epochs", *[str(r.epochs_done) for r in runs])
    monitors = {r.monitor for r in runs if r.best is not None}
    if len(monitors) == 1:
        table.add_row(f"best {next(iter(monitors))}",
                      *[Text("-" if r.best is None else f"{_cell(r.best)} @{r.best_epoch}")
                        for r in runs])
    else:
        table.add_row("best", *[Text("-" if r.best is None else f"{r.monitor} "
                                     f"{_cell(r.best)} @{r.best_epoch}") for r in runs])
    table.add_section()
    for key, values in finals.items():
        finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        best = None
        if len(finite) > 1 and len(set(finite)) > 1 and key != "lr":
            best = max(finite) if key in HIGHER_IS_BETTER else min(finite)
        table.add_row(Text(key), *[Text(_cell(v), style="bold" if v == best else "")
                                   for v in values])
    print_table(console, table)

"""Rendering results for people (rich tables) and files (predictions)."""

import csv
import math

import numpy as np

from dlcli.inspect.shapes import human_bytes


def _fmt(value) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"
    return str(value)


def print_table(console, table) -> None:
    """Print ``table`` when the console is wide enough for it without cutting a value;
    otherwise print its title, then each row as one line of ``header value`` pairs, which
    wraps between values instead of truncating them ("1,234…")."""
    import io

    from rich.console import Console
    from rich.text import Text

    def plain(value) -> str:
        return (value.plain if isinstance(value, Text) else str(value)).strip()

    # Rendered at this width, does every header and value still appear whole, on one line?
    # Rich may shorten a cell ("…"), fold a long token or wrap a header over two lines.
    probe = Console(file=io.StringIO(), width=console.width, color_system=None,
                    legacy_windows=False, safe_box=console.safe_box)
    probe.print(table)
    shown = probe.file.getvalue()
    cells = {plain(c) for column in table.columns for c in (column.header, *column.cells)}
    if all(c in shown for c in cells):
        console.print(table)
        return

    from dlcli.terminal import fold_fields
    if table.title:
        console.print(plain(table.title), markup=False, soft_wrap=True)
    headers = [plain(column.header) for column in table.columns]
    for cells in zip(*(list(column.cells) for column in table.columns)):
        values = [plain(cell) for cell in cells]
        fields = [f"{h} {v}".strip() + "," for h, v in zip(headers[1:], values[1:]) if v]
        if fields:
            fields[-1] = fields[-1][:-1]
        if values[0]:
            fields.insert(0, f"{values[0]}:")
        # Broken only between "header value" fields, each whole on its line.
        console.print("\n".join(fold_fields(fields, console.width, sep=" ")), markup=False,
                      soft_wrap=True)


def print_warnings(console, warnings) -> None:
    for text in warnings:
        console.print(f"warning: {text}", markup=False, soft_wrap=True)


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


def print_shapes(console, report: dict) -> None:
    from rich.table import Table

    title = (f"{report['task']} model, loss {report['loss']}" if report["loss"] else
             "model (no loss given)")
    table = Table(title=title)
    for col, justify in (("#", "right"), ("layer", "left"), ("type", "left"),
                         ("output shape (h, w, c)", "left"), ("size", "right"),
                         ("params", "right"), ("mult-adds", "right")):
        table.add_column(col, justify=justify)
    for i, row in enumerate(report["layers"], 1):
        kind = row["type"] + (f" ({row['activation']})" if row["activation"]
                              and row["type"] != "activation" else "")
        if row["type"] == "activation":
            kind = f"activation ({row['activation']})"
        table.add_row(str(i), row["name"], kind, str(tuple(row["output_shape"])),
                      f"{row['size']:,}", f"{row['params']:,}", f"{row['mult_adds']:,}")
    table.add_section()
    table.add_row("", "total", "", "", "", f"{report['total_params']:,}",
                  f"{report['total_mult_adds']:,}")
    print_table(console, table)
    mem = report["memory_bytes"]
    console.print(
        f"memory for one training step (batch {report['batch_size']}, {report['dtype']}): "
        f"{human_bytes(mem['total'])}\n  params {human_bytes(mem['parameters'])}, grads "
        f"{human_bytes(mem['gradients'])}, optimizer {human_bytes(mem['optimizer_state'])}, "
        f"activations {human_bytes(mem['activations'])}"
        + (f", layer workspaces {human_bytes(mem['workspaces'])}" if mem.get("workspaces") else ""),
        markup=False)
    rank = report.get("per_rank")
    if rank:
        mem = rank["memory_bytes"]
        console.print(
            f"per rank with {rank['ranks']} rank(s) x {rank['shards_per_rank']} shard(s) of "
            f"{rank['rows_per_shard']} rows ({rank['shards']} shards, reduce "
            f"{rank['reduce']}): {human_bytes(mem['total'])}\n  activations "
            f"{human_bytes(mem['activations'])}, reduction buffers "
            f"{human_bytes(mem['reduction'])}", markup=False)
    print_warnings(console, report.get("warnings", []))


def print_gradcheck(console, result: dict) -> None:
    from rich.table import Table

    if not result.get("applicable", True):
        console.print(f"not applicable: {result['reason']}", markup=False, soft_wrap=True)
        return
    table = Table(title=f"gradient check: {result['samples']} samples, loss {result['loss']}, "
                        f"tolerance {result['tolerance']:g}")
    table.add_column("parameter", no_wrap=True)
    table.add_column("shape", overflow="fold", min_width=10)
    for col in ("checked", "max |error|", "rel. error", "ok"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in result["params"]:
        table.add_row(row["param"], str(tuple(row["shape"])), str(row["checked"]),
                      f"{row['max_abs_error']:.2e}", f"{row['relative_error']:.2e}",
                      "yes" if row["passed"] else "NO")
    print_table(console, table)
    console.print("passed" if result["passed"] else "FAILED: backpropagation disagrees with "
                  "finite differences", markup=False)


def check_prediction_target(path, force: bool = False):
    """Refuse, before any work, an existing file (unless ``force``) or a format predict
    cannot write."""
    import pathlib

    from dlcli.errors import DataError

    path = pathlib.Path(path)
    if path.exists() and not (force and path.is_file()):
        raise DataError("already exists; dlcli does not overwrite files (choose -o, or "
                        "--force to replace it)", where=str(path))
    if path.suffix not in (".csv", ".npz"):
        raise DataError("expected an output path ending in .csv or .npz", where=str(path))
    return path


def write_predictions(path, outputs: np.ndarray, names, run, layer: str | None = None,
                      force: bool = False) -> None:
    """Write outputs (and predicted class names) to .csv or .npz; never overwrites.

    ``layer``: the outputs are that layer's activations (CSV columns ``<layer>_<i>``)."""

    from dlcli.errors import DataError
    from dlcli.train.io import atomic_writer

    path = check_prediction_target(path, force)
    flat = outputs.reshape(len(outputs), -1)
    if layer is not None:
        columns = [f"{layer}_{i}" for i in range(flat.shape[1])]
    elif run.task == "classification" and run.class_names:
        columns = [f"p_{c}" for c in run.class_names]
    else:
        columns = [f"output_{i}" for i in range(flat.shape[1])]
    try:
        if path.suffix == ".npz":
            arrays = {"outputs": outputs}
            if names is not None:
                arrays["predicted"] = np.array(names, dtype=str)
            with atomic_writer(path, exclusive=not force) as handle:
                np.savez(handle, **arrays)
            return
        with atomic_writer(path, "w", exclusive=not force) as handle:
            writer = csv.writer(handle)
            writer.writerow((["predicted"] if names is not None else []) + columns)
            for i, row in enumerate(flat):
                writer.writerow(([names[i]] if names is not None else [])
                                + [f"{v:.6g}" for v in row])
    except FileExistsError:
        raise DataError("already exists; dlcli does not overwrite files (choose -o)",
                        where=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot write predictions: {exc.strerror}", where=str(path)) from None


# ---- runs and comparisons -----------------------------------------------------------------
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


def print_timing(console, result: dict) -> None:
    """The ``dlcli time`` table."""
    from rich.table import Table

    table = Table(title=f"{result['config']}: {result['batches']} training steps of batch "
                        f"{result['batch_size']} ({result['dtype']}), after "
                        f"{result['warmup']} warm-up steps")
    table.add_column("op", no_wrap=True)
    table.add_column("type")
    for col in ("fwd ms", "bwd ms", "total ms", "share", "GFLOP/s"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in result["rows"]:
        name = row["name"] if row["kind"] != "activation" or "of" not in row \
            else f"  {row['name']}"
        gflops = row.get("gflops")
        kind = row["type"] + (" (in loss)" if row.get("fused_into_loss") else "")
        if row.get("runs_after"):
            kind += f" (after {row['runs_after']})"
        if row.get("fused_with"):
            kind += f" (fused with {row['fused_with']})"
        table.add_row(name, kind,
                      f"{row['forward_ms']:.3f}", f"{row['backward_ms']:.3f}" if
                      row["backward_ms"] else "", f"{row['total_ms']:.3f}",
                      f"{row['share']:.1%}", f"{gflops:.1f}" if gflops else "")
    table.add_row("step", "", f"{result['forward_ms']:.3f}", f"{result['backward_ms']:.3f}",
                  f"{result['step_ms']:.3f}", "100.0%",
                  f"{result['gflops']:.1f}" if result["gflops"] else "", style="bold")
    print_table(console, table)
    blas = result["blas"]
    threads = f", {blas['threads']} threads" if blas.get("threads") else ""
    kernel = f" ({blas['kernel']})" if blas.get("kernel") else ""
    console.print(
        f"{result['samples_per_s']:.0f} samples/s; {result['gflops']:.2f} GFLOP/s over the "
        f"whole step ({result['gflop_per_step']:.4f} GFLOP per step, estimated as "
        f"{result['flop_estimate']}); BLAS {blas['library']}{kernel}{threads}",
        markup=False, soft_wrap=True)

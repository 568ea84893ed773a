"""The commands on finished runs: ``dlcli runs``, ``compare`` and ``plot`` (registered by
:mod:`dlcli.cli`). Thin like every command: parse, call :mod:`dlcli.use`, print."""

import click

from dlcli.console import make_console

# runs.STATUSES, spelled out so that --help need not import dlcli.use.runs (a test holds them equal)
RUN_STATUSES = ("running", "finished", "interrupted", "failed", "diverged")


@click.command()
@click.argument("root", required=False, default="runs", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.option("--config", "config_name", metavar="NAME", help="Only runs of this config name.")
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs with this status.")
def runs(root, as_json, config_name, status):
    """List the runs in ROOT (default: runs/), newest first, with a loss sparkline."""
    from dlcli.errors import DataError
    from dlcli.use.report import print_runs, print_warnings
    from dlcli.use.runs import find_runs, select

    try:
        found = select(find_runs(root), config_name, status)
    except FileNotFoundError as exc:
        raise DataError(str(exc)) from None
    print_warnings(make_console(stderr=True), [w for r in found for w in r.warnings])
    if as_json:
        import json
        click.echo(json.dumps([r.to_dict() for r in found]))
    else:
        print_runs(make_console(), found)


@click.command()
@click.argument("run_dirs", metavar="RUN RUN [RUN...]", nargs=-1, required=True,
                type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def compare(run_dirs, as_json):
    """Show the config keys that differ between runs and their final metrics side by side."""
    from dlcli.errors import DataError
    from dlcli.use.report import print_compare, print_warnings
    from dlcli.use.runs import compare as compare_runs, config_differences, final_metrics, load

    if len(run_dirs) < 2:
        raise click.UsageError("give at least two runs to compare")
    try:
        loaded = [load(path) for path in run_dirs]
    except FileNotFoundError as exc:
        raise DataError(str(exc)) from None
    print_warnings(make_console(stderr=True), [w for r in loaded for w in r.warnings])
    if as_json:
        import json
        click.echo(json.dumps(compare_runs(loaded)))
    else:
        print_compare(make_console(), loaded, config_differences(loaded), final_metrics(loaded))


@click.command()
@click.argument("run_dirs", metavar="RUN [RUN...]", nargs=-1, required=True,
                type=click.Path())
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="Plot this metric (repeatable): loss draws loss and val_loss; val_loss "
                   "only the validation curve; lr the learning rate. Default: all, loss first.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Figure file (.png, .pdf, .svg; default <run>-<kind>.png; never "
                   "overwrites without --force).")
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@click.option("--confusion", is_flag=True, help="Confusion matrix of a classifier (binary too) "
              "(evaluates the best checkpoint on --split).")
@click.option("--filters", is_flag=True, help="The first layer's weights of an image model "
              "as a grid of filters.")
@click.option("--diagnostics", is_flag=True, help="Per-layer gradient, update and "
              "activation diagnostics (diagnostics.jsonl).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test",
              show_default=True, help="Split for --confusion.")
def plot(run_dirs, metrics, output, confusion, filters, diagnostics, split, force):
    """Draw learning curves of one or more runs (or another figure of one run); of a sweep
    directory, the metric against each parameter and the best trials' curves.

    Needs matplotlib: pip install 'dlcli[plot]'.
    """
    import pathlib

    from dlcli.errors import DataError
    from dlcli.use import plots as plotting

    kinds = [k for k, on in (("confusion", confusion), ("filters", filters),
                             ("diagnostics", diagnostics)) if on]
    if len(kinds) > 1:
        raise click.UsageError(f"choose one of --{', --'.join(kinds)}")
    kind = kinds[0] if kinds else "curves"
    if kind != "curves" and len(run_dirs) != 1:
        raise click.UsageError(f"--{kind} draws one run; got {len(run_dirs)}")
    if kind != "curves" and metrics:
        raise click.UsageError(f"--metric applies to learning curves, not --{kind}")
    first = pathlib.Path(run_dirs[0])
    from dlcli.sweep.plot import is_sweep_dir
    if kind == "curves" and len(run_dirs) == 1 and not metrics and is_sweep_dir(first):
        kind = "sweep"  # a sweep directory: metric against each parameter, best curves
    target = pathlib.Path(output or f"{first.resolve().name}-{kind}.png")
    plotting.check_output(target, force)
    plotting.require_matplotlib()
    if kind == "sweep":
        from dlcli.sweep.plot import sweep_figure
        fig = sweep_figure(first)
    elif kind == "curves":
        from dlcli.use.report import print_warnings
        from dlcli.use.runs import load
        try:
            loaded = [load(path) for path in run_dirs]
        except FileNotFoundError as exc:
            raise DataError(str(exc)) from None
        print_warnings(make_console(stderr=True), [w for r in loaded for w in r.warnings])
        fig = plotting.curves_figure(loaded, list(metrics) or None)
    elif kind == "confusion":
        fig = plotting.confusion_figure(plotting.run_confusion(first, split), first.name)
    elif kind == "filters":
        fig = plotting.filters_figure(plotting.first_layer_filters(first), first.name)
    else:
        from dlcli.use.report import print_warnings
        rows, warnings = plotting.read_diagnostics(first)
        print_warnings(make_console(stderr=True), warnings)
        fig = plotting.diagnostics_figure(rows, first.name)
    plotting.save(fig, target, force)
    make_console(stderr=True).print(f"wrote {target}", markup=False)

"""The ``dlcli`` command line. Thin: parse arguments, call one function, map errors to exit codes.

Imports of NumPy, rich and the engine happen inside commands so ``dlcli --help`` is fast.
"""

import sys

import click

from dlcli import __version__

SET_HELP = "Override a config key, e.g. --set training.optimizer.lr=0.01 (repeatable)."


def _console(quiet=False, stderr=False):
    import os

    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # The reader went away (`dlcli train ... | head`): stop printing, keep training;
            # the run directory still gets every metric and checkpoint.
            self.quiet = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, (sys.stderr if stderr else sys.stdout).fileno())

    return _Console(stderr=stderr, quiet=quiet, highlight=False)


class DlcliGroup(click.Group):
    """Maps user errors to one line on stderr and exit 2 (1 for training failures)."""

    def main(self, args=None, prog_name=None, **extra):
        from dlcli.terminal import install_ascii_fallback

        install_ascii_fallback()  # a cp1252 stdout gets ASCII stand-ins, not a crash
        args = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in args
        if debug:
            args.remove("--debug")
        try:
            return super().main(args=args, prog_name=prog_name or "dlcli",
                                standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("dlcli: aborted", err=True)
            sys.exit(130)
        except click.UsageError as exc:
            if debug:
                raise
            ctx = exc.ctx
            cmd = ctx.command_path if ctx else "dlcli"
            from dlcli.config.hints import set_form_hint
            hint = set_form_hint(args, exc)
            if hint:
                click.echo(f"{cmd}: {hint}", err=True)
            else:
                click.echo(f"{cmd}: {exc.format_message()} (see {cmd} --help)", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            if debug:
                raise
            click.echo(f"dlcli: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("dlcli: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - every error becomes one line
            from dlcli.errors import DlcliError
            if debug:
                raise
            if isinstance(exc, DlcliError):
                from dlcli.errors import RunInterrupted
                prefix = "" if isinstance(exc, RunInterrupted) else "error: "
                for line in str(exc).split("\n"):  # one line per error
                    click.echo(f"{prefix}{line}", err=True)
                sys.exit(exc.exit_code)
            if isinstance(exc, MemoryError):
                click.echo("error: out of memory; lower training.batch_size", err=True)
                sys.exit(1)
            click.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for "
                       "the traceback and please report it)", err=True)
            sys.exit(1)


@click.group(cls=DlcliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dlcli")
@click.option("--threads", default="auto", metavar="N|auto", show_default=True,
              help="Threads for NumPy's matrix products. auto: train measures a few steps "
                   "of the model with 1, 2, ... threads and keeps the fastest (other "
                   "commands use the BLAS library's default); N forces N.")
@click.pass_context
def cli(ctx, threads):
    """dlcli: train, evaluate and inspect neural networks described in YAML.

    Data files: .npz (arrays x, y, optional x_test, y_test, class_names), .csv (a header
    row; data.target names the label column), and MNIST's IDX files (*-ubyte, .idx,
    optionally .gz; labels and t10k test files beside them are found).

    Add --debug anywhere to see a traceback instead of a one-line error.
    """
    if threads != "auto":
        try:
            threads = int(threads)
            if threads < 1:
                raise ValueError
        except ValueError:
            raise click.BadParameter(f"expected a positive integer or auto, got {threads!r}",
                                     param_hint="'--threads'") from None
    ctx.ensure_object(dict)["threads"] = threads
    if threads != "auto":
        import os
        if "numpy" in sys.modules:  # pragma: no cover - only when embedded after an import
            raise click.UsageError("--threads must be given before NumPy is imported")
        # Read by the BLAS library when NumPy loads it, which happens after this point.
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--run-dir", type=click.Path(file_okay=False), help="Write the run here "
              "(must not exist) instead of runs/<name>-<time>/.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Continue the run in this directory from its last checkpoint.")
@click.option("--allow-config-change", is_flag=True,
              help="With --resume: continue even if CONFIG/--set differ from the run's config.")
@click.option("--seed", type=click.IntRange(min=0), help="Override the config's seed.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the final summary.")
@click.option("--tensorboard", is_flag=True, help="Also write TensorBoard event files "
              "(shorthand for --set training.tensorboard=true).")
def train(config, overrides, run_dir, resume_dir, allow_config_change, seed, quiet, tensorboard):
    """Train the model described by CONFIG and write a run directory.

    With --resume RUN_DIR (CONFIG optional), continue an interrupted run exactly where its
    last checkpoint left it.
    """
    from dlcli.config import load_config
    from dlcli.use.report import print_train_summary, print_warnings
    from dlcli.train.session import open_resume, train as run_training

    err = _console(stderr=True)
    if tensorboard:
        overrides = (*overrides, "training.tensorboard=true")
    if resume_dir is not None:
        if run_dir is not None:
            raise click.UsageError("--run-dir and --resume cannot be used together")
        if seed is not None:  # a new seed redraws splits and order: a change like any other
            overrides = (*overrides, f"seed={seed}")
            seed = None
        cfg = load_config(config, overrides) if config else None
        cfg, differences = open_resume(resume_dir, cfg, overrides if not config else (),
                                       allow_config_change)
        print_warnings(err, [f"resuming with a changed config: {d}" for d in differences])
        run_dir = resume_dir
    elif config is None:
        raise click.UsageError("missing argument CONFIG (or --resume RUN_DIR)")
    else:
        cfg = load_config(config, overrides)
    console = _console()
    summary = run_training(cfg, run_dir=run_dir, seed=seed, console=console,
                           warn=lambda warnings: print_warnings(err, warnings),
                           threads=click.get_current_context().obj["threads"],
                           interactive=console.is_terminal and sys.stdout.isatty(), quiet=quiet,
                           resume=resume_dir is not None,
                           changes=differences if resume_dir is not None else ())
    print_warnings(err, summary.get("warnings", []))
    print_train_summary(console, summary)
    if summary.get("threads"):
        from dlcli.train.threads import describe
        console.print(describe(summary["threads"]), markup=False, highlight=False)


@cli.command("eval")
@click.argument("run", type=click.Path())
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best",
              show_default=True)
@click.option("--data", "data_source", type=click.Path(), help="Score another data file "
              "(.npz, .csv or IDX), all of it, as predict reads it.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default=None,
              help="Score this split, drawn as in training [default: test; with --data: "
                   "the whole file].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--images", type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Reconstruction runs of images: write the split's first inputs beside "
                   "their reconstructions (needs matplotlib: pip install 'dlcli[plot]'; "
                   "never overwrites without --force).")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N",
              help="Samples per forward pass (default: the run's training batch size, "
                   "at least 64; 1024 for a full-batch run).")
@click.option("--force", is_flag=True, help="Overwrite the --images file if it exists.")
def eval_(run, checkpoint, data_source, split, as_json, images, batch_size, force):
    """Score a run (a run directory or a checkpoint file) on a data split.

    Reconstruction runs are compared with PCA at the bottleneck's width.
    """
    from dlcli.use.evaluate import evaluate_run, load_run, record_scores
    from dlcli.use.report import print_eval, print_warnings

    loaded = load_run(run, checkpoint)
    result = evaluate_run(loaded, split, data_source, images=images, batch_size=batch_size,
                          force=force)
    print_warnings(_console(stderr=True), result.pop("warnings", []))
    if data_source is None:
        record_scores(loaded, result)  # compare shows them
    if as_json:
        import json
        click.echo(json.dumps(result))
    else:
        print_eval(_console(), result)


@cli.command()
@click.argument("run", type=click.Path())
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output .csv or .npz (default: <INPUT stem>.predictions.csv; never "
                   "overwrites without --force).")
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best",
              show_default=True)
@click.option("--layer", metavar="NAME", help="Write this layer's activations (after its "
              "activation function, e.g. an autoencoder's codes) instead of the outputs.")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N",
              help="Samples per forward pass (default: the run's training batch size, "
                   "at least 64; 1024 for a full-batch run).")
def predict(run, input_path, output, checkpoint, layer, batch_size, force):
    """Apply a trained run to the inputs in INPUT (.npz with x, .csv, or an IDX file).

    A reconstruction run writes its reconstructions, in the units of the inputs.
    """
    import pathlib

    from dlcli.use.evaluate import load_run, predict_file
    from dlcli.use.report import check_prediction_target, write_predictions

    target = pathlib.Path(output or pathlib.Path(input_path).stem + ".predictions.csv")
    check_prediction_target(target, force)
    loaded = load_run(run, checkpoint)
    out, names = predict_file(loaded, input_path, layer=layer, batch_size=batch_size)
    write_predictions(target, out, names, loaded, layer=layer, force=force)
    what = f"activations of layer {layer} {tuple(out.shape[1:])}" if layer else "predictions"
    _console(stderr=True).print(f"wrote {len(out)} {what} to {target}", markup=False)


@cli.command()
@click.argument("run", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["onnx", "safetensors"]), required=True,
              help="onnx: the whole inference path (needs pip install 'dlcli[onnx]'); "
                   "safetensors: the weights.")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The file to write (default: RUN/export/model.onnx|.safetensors); a "
                   "MODEL.md card goes beside it.")
@click.option("--force", is_flag=True, help="Overwrite an existing file and model card.")
def export(run, fmt, checkpoint, output, force):
    """Export a trained run as ONNX or safetensors, with a model card (MODEL.md) beside it."""
    from dlcli.use.export import export_run

    result = export_run(run, fmt=fmt, checkpoint=checkpoint, output=output, force=force)
    _console(stderr=True).print(f"wrote {result['path']} and {result['card']}", markup=False)


@cli.command()
@click.argument("data", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="CONFIG.yaml",
              help="Where to write the config (default: <DATA stem>.yaml here).")
@click.option("--target", metavar="COLUMN", help="The CSV column to predict (default: one "
              "named target/label/class/y/..., else the last column).")
@click.option("--force", is_flag=True, help="Overwrite an existing CONFIG.yaml.")
def init(data, output, target, force):
    """Write a commented starter config for DATA (.csv, .npz or IDX): task, target,
    input shape, classes, output layer and loss inferred from the file."""
    from dlcli.inspect.starter import write_starter

    path, decided = write_starter(data, output, target=target, force=force)
    err = _console(stderr=True)
    what = {"binary": "binary classification", "classification": "classification",
            "regression": "regression"}[decided["task"]]
    of = f" of column {decided['target']!r}" if decided.get("target") else ""
    classes = f" ({len(decided['classes'])} classes)" if decided["classes"] else ""
    err.print(f"wrote {path}: {what}{of}{classes} from inputs of shape "
              f"{tuple(decided['input_shape'])}", markup=False, soft_wrap=True)
    for note in decided.get("notes", []):
        err.print(f"  left out {note}", markup=False, soft_wrap=True)
    err.print(f"train it with: dlcli train {path}", markup=False, soft_wrap=True)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--ranks", type=click.IntRange(min=1), metavar="N",
              help="Also the memory of one of N MPI ranks (training.parallel; default "
                   "shards: N).")
def shapes(config, overrides, as_json, ranks):
    """Print each layer's output shape, size, parameters and multiply-adds (no training)."""
    from dlcli.config import load_config
    from dlcli.use.report import print_shapes
    from dlcli.inspect.shapes import shapes_report

    cfg = load_config(config, overrides, partial=True)  # neither data nor loss needed
    report = shapes_report(cfg, ranks=ranks)
    if as_json:
        import json
        click.echo(json.dumps(report))
    else:
        print_shapes(_console(), report)


@cli.command("config")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def config_(config, overrides):
    """Print the fully resolved CONFIG, every default filled in."""
    import yaml

    from dlcli.config import load_config

    from dlcli.config.keypaths import portable

    cfg = load_config(config, overrides)
    # Paths made absolute: `dlcli config X > mine.yaml` trains from any directory.
    click.echo(yaml.safe_dump(portable(cfg), sort_keys=False), nl=False)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--samples", default=4, show_default=True, type=click.IntRange(min=1),
              help="Training samples to check on.")
@click.option("--entries", default=20, show_default=True, type=click.IntRange(min=1),
              help="Coordinates checked per parameter tensor.")
@click.option("--tolerance", default=1e-5, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Largest relative error that passes.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def gradcheck(config, overrides, samples, entries, tolerance, as_json):
    """Compare backpropagation with central finite differences in float64 (exit 1 on failure)."""
    from dlcli.config import load_config
    from dlcli.inspect.gradcheck import run_gradcheck
    from dlcli.use.report import print_gradcheck

    cfg = load_config(config, overrides)
    result = run_gradcheck(cfg, samples, entries, tolerance)
    if as_json:
        import json
        click.echo(json.dumps(result))
    else:
        print_gradcheck(_console(), result)
    if not result["passed"]:
        sys.exit(1)


@cli.command("time")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--batches", default=20, show_default=True, type=click.IntRange(min=1),
              help="Training steps to time (after the warm-up steps).")
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(min=0),
              help="Untimed steps first (buffers and optimizer state are allocated).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def time_(config, overrides, batches, warmup, as_json):
    """Time training steps of CONFIG's model: per layer forward/backward ms, loss,
    optimizer, data gathering, samples/s and GFLOP/s (nothing is written)."""
    from dlcli.config import load_config
    from dlcli.use.report import print_timing
    from dlcli.inspect.timing import time_config

    cfg = load_config(config, overrides)
    result = time_config(cfg, batches=batches, warmup=warmup)
    if as_json:
        import json
        click.echo(json.dumps(result))
    else:
        print_timing(_console(), result)


# runs.STATUSES, spelled out so that --help need not import dlcli.use.runs (a test holds them equal)
RUN_STATUSES = ("running", "finished", "interrupted", "failed", "diverged")


@cli.command()
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
    print_warnings(_console(stderr=True), [w for r in found for w in r.warnings])
    if as_json:
        import json
        click.echo(json.dumps([r.to_dict() for r in found]))
    else:
        print_runs(_console(), found)


@cli.command()
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
    print_warnings(_console(stderr=True), [w for r in loaded for w in r.warnings])
    if as_json:
        import json
        click.echo(json.dumps(compare_runs(loaded)))
    else:
        print_compare(_console(), loaded, config_differences(loaded), final_metrics(loaded))


@cli.command()
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
        print_warnings(_console(stderr=True), [w for r in loaded for w in r.warnings])
        fig = plotting.curves_figure(loaded, list(metrics) or None)
    elif kind == "confusion":
        fig = plotting.confusion_figure(plotting.run_confusion(first, split), first.name)
    elif kind == "filters":
        fig = plotting.filters_figure(plotting.first_layer_filters(first), first.name)
    else:
        from dlcli.use.report import print_warnings
        rows, warnings = plotting.read_diagnostics(first)
        print_warnings(_console(stderr=True), warnings)
        fig = plotting.diagnostics_figure(rows, first.name)
    plotting.save(fig, target, force)
    _console(stderr=True).print(f"wrote {target}", markup=False)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False), required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a key of the base config for every trial (repeatable).")
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="Write the sweep here (must not exist) instead of sweeps/<name>-<time>/.")
@click.option("--parallel", type=click.IntRange(min=1), metavar="N",
              help="Trials at once (default: the spec's executor.parallel).")
@click.option("--dry-run", is_flag=True, help="Validate every trial and print the trial "
              "table; run nothing.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Continue the sweep in DIR: finished trials are kept, interrupted ones "
                   "resume from their checkpoints.")
@click.option("--show", "show_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Print the trials of the sweep in DIR, best first.")
@click.option("--json", "as_json", is_flag=True, help="With --show: one JSON object.")
def sweep(spec, overrides, directory, parallel, dry_run, resume_dir, show_dir, as_json):
    """Run the trials of the sweep SPEC (a YAML file), each an ordinary run directory.

    See docs/sweeps.md for the spec; dlcli plot DIR draws a finished sweep.
    """
    from dlcli.sweep import commands

    given = [n for n, v in (("SPEC", spec), ("--resume", resume_dir), ("--show", show_dir))
             if v]
    if len(given) != 1:
        raise click.UsageError("give one of SPEC, --resume DIR or --show DIR")
    if (resume_dir or show_dir) and (overrides or directory or dry_run):
        raise click.UsageError("--set, --dir and --dry-run go with a SPEC, not with "
                               f"{given[0]}")
    if as_json and not show_dir:
        raise click.UsageError("--json goes with --show")
    if show_dir:
        commands.show_sweep(commands.require_sweep_dir(show_dir), as_json, _console())
        return
    console = _console()
    interactive = console.is_terminal and sys.stdout.isatty()
    if resume_dir:
        result = commands.resume_sweep(commands.require_sweep_dir(resume_dir), parallel,
                                       console=console, interactive=interactive)
    else:
        result = commands.new_sweep(spec, overrides, directory, parallel, dry_run,
                                    console=console, interactive=interactive)
    if result is not None:
        from dlcli.use.report import print_warnings
        print_warnings(_console(stderr=True), result["warnings"])
        for line in commands.summary_lines(result):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        if not result["counts"].get("finished"):
            sys.exit(1)


def main():
    cli()

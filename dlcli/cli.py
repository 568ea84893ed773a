"""The ``dlcli`` command line. Thin: parse arguments, call one function, map errors to exit codes.

Imports of NumPy, rich and the engine happen inside commands so ``dlcli --help`` is fast.
"""

import sys

import click

from dlcli import __version__
from dlcli.console import make_console as _console
# The commands on finished runs live beside what they use; RUN_STATUSES is re-exported.
from dlcli.sweep.cli import sweep
from dlcli.use.commands import RUN_STATUSES, compare, plot, runs  # noqa: F401

SET_HELP = "Override a config key, e.g. --set training.optimizer.lr=0.01 (repeatable)."


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
    """Apply a trained run to the inputs in INPUT (.npz with x, .npy, .csv, or an IDX file).

    A reconstruction run writes its reconstructions, in the units of the inputs.
    """
    import pathlib

    from dlcli.use.evaluate import load_run, predict_batches
    from dlcli.use.predictions import check_prediction_target, write_prediction_batches

    target = pathlib.Path(output or pathlib.Path(input_path).stem + ".predictions.csv")
    check_prediction_target(target, force)
    loaded = load_run(run, checkpoint)
    n, vocabulary, batches = predict_batches(loaded, input_path, layer=layer,
                                             batch_size=batch_size)
    shape = []

    def seen(batches):  # each batch is written as it comes: remember the output's shape
        for out, picks in batches:
            shape[:] = out.shape[1:]
            yield out, picks

    write_prediction_batches(target, n, vocabulary, seen(batches), loaded, layer=layer,
                             force=force)
    what = f"activations of layer {layer} {tuple(shape)}" if layer else "predictions"
    _console(stderr=True).print(f"wrote {n} {what} to {target}", markup=False)


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
    from dlcli.inspect.report import print_shapes
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
    from dlcli.inspect.report import print_gradcheck

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
    from dlcli.inspect.report import print_timing
    from dlcli.inspect.timing import time_config

    cfg = load_config(config, overrides)
    result = time_config(cfg, batches=batches, warmup=warmup)
    if as_json:
        import json
        click.echo(json.dumps(result))
    else:
        print_timing(_console(), result)


for command in (runs, compare, plot):
    cli.add_command(command)


cli.add_command(sweep)


def main():
    cli()

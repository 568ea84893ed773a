"""``dlcli sweep``, registered by :mod:`dlcli.cli`: parse arguments, call
:mod:`dlcli.sweep.commands`, print (click only at start-up, so ``dlcli --help`` stays fast)."""

import sys

import click

from dlcli.console import make_console


@click.command()
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
        commands.show_sweep(commands.require_sweep_dir(show_dir), as_json, make_console())
        return
    console = make_console()
    interactive = console.is_terminal and sys.stdout.isatty()
    if resume_dir:
        result = commands.resume_sweep(commands.require_sweep_dir(resume_dir), parallel,
                                       console=console, interactive=interactive)
    else:
        result = commands.new_sweep(spec, overrides, directory, parallel, dry_run,
                                    console=console, interactive=interactive)
    if result is not None:
        from dlcli.use.report import print_warnings
        print_warnings(make_console(stderr=True), result["warnings"])
        for line in commands.summary_lines(result):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        if not result["counts"].get("finished"):
            sys.exit(1)

"""``dlcli plot SWEEP_DIR``: the metric against each parameter (one panel each, a log axis
for log-scaled parameters, categories side by side) and the learning curves of the best few
trials. matplotlib through ``dlcli.use.plots`` (the optional ``plot`` extra)."""

import json
import math

from dlcli.sweep import record
from dlcli.sweep.attempt import trial_paths
from dlcli.train.io import read_jsonl

BEST_CURVES = 4


def is_sweep_dir(path) -> bool:
    from dlcli.sweep.driver import SPEC_FILE
    return (path / SPEC_FILE).is_file() and (path / record.TRIALS).is_file()


def _is_log(dist: dict) -> bool:
    return "loguniform" in dist or bool(dist.get("int") and dist.get("log"))


def sweep_figure(sweep_dir):
    """The figure of a sweep; trials without a metric (failed, unfinished) are left out."""
    from dlcli.sweep.driver import open_sweep
    from dlcli.use.plots import _panel_grid, require_matplotlib

    Figure = require_matplotlib()
    from matplotlib.ticker import MaxNLocator, NullFormatter
    spec = open_sweep(sweep_dir)
    metric, goal = spec["metric"]["name"], spec["metric"]["goal"]
    latest, _ = record.read(sweep_dir)
    done = [row for row in record.ranked(latest, goal) if row.get("metric") is not None]
    params = spec.parameters
    fig, axes = _panel_grid(Figure, len(params) + 1, 3.4)
    best = done[0]["trial"] if done else None
    for ax, (key, dist) in zip(axes, params.items()):
        ys = [row["metric"] for row in done]
        values = [row["params"].get(key) for row in done]
        if "values" in dist and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                        for v in dist["values"]):
            labels = [json.dumps(v) if not isinstance(v, str) else v for v in dist["values"]]
            xs = [dist["values"].index(v) if v in dist["values"] else math.nan for v in values]
            ax.set_xticks(range(len(labels)), labels)
        else:
            xs = values
            if _is_log(dist):
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap
            if "values" in dist:
                ax.set_xticks(sorted(dist["values"]))
        ax.scatter(xs, ys, s=22, alpha=0.8)
        for x, y, row in zip(xs, ys, done):
            if row["trial"] == best:
                ax.scatter([x], [y], s=90, facecolors="none", edgecolors="red", label="best")
                ax.legend(loc="best", fontsize="small")
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    ax = axes[len(params)]
    for row in done[:BEST_CURVES]:
        rows, _ = read_jsonl(trial_paths(sweep_dir, row["trial"])["run_dir"] / "metrics.jsonl")
        epochs = [r.get("epoch") for r in rows if isinstance(r.get(metric), (int, float))]
        values = [r[metric] for r in rows if isinstance(r.get(metric), (int, float))]
        ax.plot(epochs, values, label=f"trial {record.trial_name(row['trial'])} "
                                      f"({row['metric']:.4g})")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.set_title(f"the best {min(BEST_CURVES, len(done))} trials", fontsize="medium")
    if done:
        ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)
    fig.suptitle(f"sweep {spec['name']}: {metric} ({goal}), {len(done)} trials with a result")
    return fig

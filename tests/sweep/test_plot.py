"""dlcli plot on a sweep directory: one panel per parameter (log axis for log-scaled ones)
with each finished trial's metric, and the best trials' learning curves."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from dlcli.sweep.plot import sweep_figure  # noqa: E402
from tests.helpers.sweep import dlcli, latest, metrics_rows, write_sweep  # noqa: E402

SPEC = {"name": "p", "method": "random", "trials": 3, "seed": 2,
        "metric": {"name": "val_accuracy"}, "set": {"training.epochs": 2},
        "parameters": {"training.optimizer.lr": {"loguniform": [1.0e-3, 1.0e-1]},
                       "training.optimizer.type": {"values": ["adam", "sgd"]}},
        "executor": {"type": "local", "parallel": 2}}


def test_the_sweep_figure(tmp_path):
    dlcli("sweep", write_sweep(tmp_path, SPEC), "--dir", "out", cwd=tmp_path, check=0)
    sweep = tmp_path / "out"
    rows = latest(sweep)
    fig = sweep_figure(sweep)
    lr_ax, type_ax, curves_ax = [ax for ax in fig.axes if ax.get_visible()]
    assert lr_ax.get_xscale() == "log" and type_ax.get_xscale() == "linear"
    assert lr_ax.get_xlabel() == "training.optimizer.lr"
    points = lr_ax.collections[0].get_offsets()
    expected = sorted((rows[n]["params"]["training.optimizer.lr"], rows[n]["metric"])
                      for n in rows)
    assert np.allclose(sorted(map(tuple, np.asarray(points))), expected)
    assert [t.get_text() for t in type_ax.get_xticklabels()] == ["adam", "sgd"]
    best = max(rows, key=lambda n: (rows[n]["metric"], -n))
    first_line = curves_ax.get_lines()[0]
    assert list(first_line.get_ydata()) == [r["val_accuracy"] for r in
                                            metrics_rows(sweep / "trials" / f"{best:04d}")]

    out = dlcli("plot", sweep, "-o", tmp_path / "sweep.png", cwd=tmp_path, check=0)
    assert (tmp_path / "sweep.png").stat().st_size > 0 and "wrote" in out.stderr

"""``dlcli plot``: figures rendered to PNG files and read back, on runs made by training the
shipped mlp_digits config (and a tiny convolution net) for a couple of epochs."""

import json
import math
import pathlib
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from dlcli.cli import cli
from dlcli.use.plots import first_layer_filters, mosaic

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "mlp_digits.yaml")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def train(run_dir, config=CONFIG, *sets, epochs=2):
    args = ["train", config, "--run-dir", run_dir, "-q", "--set", f"training.epochs={epochs}"]
    for s in sets:
        args += ["--set", s]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return pathlib.Path(run_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot")
    a = train(root / "a")
    b = train(root / "b", CONFIG, "training.optimizer.lr=0.01", epochs=3)
    with open(b / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 4, "lo')  # a torn last line
    (b / "summary.json").unlink()
    return a, b


def read_png(path):
    """Check the PNG signature and size; return the image as an array (needs matplotlib)."""
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 2000
    import matplotlib.image
    return matplotlib.image.imread(path)


def test_learning_curves_of_two_runs(runs, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    result = invoke("plot", *runs, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stderr
    assert "last line is incomplete" in result.stderr
    image = read_png(out)
    # three panels (loss, accuracy, macro_f1 of the validation split) of 6 x 3.8 inches at
    # 110 dpi, two per row
    assert image.shape == (2 * 418, 1320, 4)
    assert image[..., :3].std() > 0.05  # not blank


def test_chosen_metrics_and_unknown_metric(runs, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "lr.png"
    result = invoke("plot", runs[0], "--metric", "val_loss", "--metric", "lr", "-o", out)
    assert result.exit_code == 0, result.output
    assert read_png(out).shape[:2] == (418, 1320)
    result = invoke("plot", runs[0], "--metric", "bogus", "-o", tmp_path / "x.png")
    assert result.exit_code == 2
    assert "no run has the metric 'bogus'" in result.stderr
    assert not (tmp_path / "x.png").exists()
    result = invoke("plot", runs[0], "--metric", "val_acuracy", "-o", tmp_path / "x.png")
    assert result.exit_code == 2
    assert "(did you mean 'val_accuracy'?)" in result.stderr


def test_never_overwrites(runs, tmp_path):
    out = tmp_path / "taken.png"
    out.write_bytes(b"keep me")
    for extra in ([], ["--confusion"], ["--filters"]):
        result = invoke("plot", runs[0], *extra, "-o", out)
        assert result.exit_code == 2
        assert "already exists" in result.stderr
    assert out.read_bytes() == b"keep me"
    result = invoke("plot", runs[0], "-o", tmp_path / "figure.gif")
    assert result.exit_code == 2 and ".png" in result.stderr


def test_default_output_name(runs, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    result = invoke("plot", runs[0])
    assert result.exit_code == 0, result.output
    read_png(tmp_path / "a-curves.png")


def test_confusion_matrix(runs, tmp_path):
    pytest.importorskip("matplotlib")
    from dlcli.use.plots import run_confusion

    result = run_confusion(runs[0])
    cm = np.array(result["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == result["samples"]
    out = tmp_path / "cm.png"
    cli_result = invoke("plot", runs[0], "--confusion", "-o", out)
    assert cli_result.exit_code == 0, cli_result.output
    image = read_png(out)
    assert image.shape[2] == 4 and image.shape[0] > 300


def test_filters_of_a_dense_first_layer(runs, tmp_path):
    info = first_layer_filters(runs[0])
    with np.load(runs[0] / "checkpoints" / "best.npz") as ckpt:
        weight = ckpt["dense1.weight"]  # (units, 64): rows are flattened (1, 8, 8) images
    units = len(weight)
    assert info["layer"] == "dense1" and info["total"] == units
    shown = min(units, 64)
    assert info["tiles"].shape == (shown, 8, 8) and info["columns"] == math.ceil(shown ** 0.5)
    np.testing.assert_allclose(info["tiles"][5], weight[5].reshape(8, 8))
    pytest.importorskip("matplotlib")
    out = tmp_path / "filters.png"
    result = invoke("plot", runs[0], "--filters", "-o", out)
    assert result.exit_code == 0, result.output
    assert read_png(out).shape[1] == 880  # 8 inches at 110 dpi


def test_filters_of_a_convolution(tmp_path):
    config = tmp_path / "conv.yaml"
    config.write_text(f"""
name: conv
data: {{source: {REPO / 'datasets' / 'digits.npz'}, validation_split: 0.1, test_split: 0.1}}
model:
  layers:
    - {{type: conv2d, filters: 6, kernel_size: 3, activation: relu}}
    - {{type: flatten}}
    - {{type: dense, units: 10, activation: softmax}}
  loss: categorical_crossentropy
training: {{epochs: 1, batch_size: 64}}
""")
    run = train(tmp_path / "run", str(config), epochs=1)
    info = first_layer_filters(run)
    with np.load(run / "checkpoints" / "best.npz") as ckpt:
        weight = ckpt["conv2d1.weight"]
    assert weight.shape == (6, 1, 3, 3)
    assert info["tiles"].shape == (6, 3, 3) and info["columns"] == 3
    np.testing.assert_allclose(info["tiles"], weight[:, 0])
    pytest.importorskip("matplotlib")
    out = tmp_path / "filters.png"
    result = invoke("plot", run, "--filters", "-o", out)
    assert result.exit_code == 0, result.output
    read_png(out)


def test_filters_need_an_image_model(tmp_path):
    config = tmp_path / "tab.yaml"
    config.write_text(f"""
name: tab
data: {{source: {REPO / 'datasets' / 'iris.csv'}, target: species}}
model:
  layers: [{{type: dense, units: 3, activation: softmax}}]
  loss: categorical_crossentropy
training: {{epochs: 1}}
""")
    run = train(tmp_path / "run", str(config), epochs=1)
    result = invoke("plot", run, "--filters", "-o", tmp_path / "f.png")
    assert result.exit_code == 2
    assert "image models" in result.stderr or "matplotlib" in result.stderr


def test_mosaic_scales_each_tile():
    tiles = np.array([[[1.0, -2.0]], [[0.5, 0.25]]])  # two 1x2 tiles
    grid = mosaic(tiles, columns=2)
    assert grid.shape == (1, 5)
    np.testing.assert_allclose(grid[0, :2], [0.5, -1.0])
    assert np.isnan(grid[0, 2])
    np.testing.assert_allclose(grid[0, 3:], [1.0, 0.5])


def test_usage_errors(runs, tmp_path):
    result = invoke("plot", *runs, "--confusion", "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "one run" in result.stderr
    result = invoke("plot", runs[0], "--confusion", "--filters", "-o", tmp_path / "x.png")
    assert result.exit_code == 2


def test_missing_matplotlib_is_one_line_and_exit_2(runs, tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = invoke("plot", runs[0], "-o", tmp_path / "x.png")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'dlcli[plot]'" in lines[0]
    assert not (tmp_path / "x.png").exists()


def test_diagnostics_figure(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"epoch": e, "layers": {
        "dense1": {"type": "dense", "activation": "relu", "grad_norm": 1.0 / e,
                   "weight_norm": 3.0 + e, "update_ratio": 1e-3 * e, "dead_fraction": 0.1},
        "dense2": {"type": "dense", "activation": "tanh", "grad_norm": 0.5, "weight_norm": 2.0,
                   "update_ratio": None, "saturated_fraction": 0.6}}} for e in (1, 2, 3)]
    run = tmp_path / "run"
    run.mkdir()
    (run / "diagnostics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "d.png"
    result = invoke("plot", run, "--diagnostics", "-o", out)
    assert result.exit_code == 0, result.output
    image = read_png(out)
    assert image.shape[:2] == (int(3.6 * 3 * 110), 1320)  # 5 panels in 3 rows of 2
    result = invoke("plot", tmp_path, "--diagnostics", "-o", tmp_path / "e.png")
    assert result.exit_code == 2 and "diagnostics.jsonl" in result.stderr

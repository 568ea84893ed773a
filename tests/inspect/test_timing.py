"""``dlcli time``: the structure of the report (never its figures: tests do not assert on time)."""

import io
import json
import pathlib

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from dlcli.cli import cli
from dlcli.config import load_config
from dlcli.use.report import print_timing
from dlcli.inspect.timing import layer_flops, step_flops, time_config
from dlcli.nn.model import Model
from tests.helpers.configs import moons_mlp, with_changes, write_config

REPO = pathlib.Path(__file__).resolve().parents[2]
ROW_KEYS = {"name", "kind", "type", "forward_ms", "backward_ms", "total_ms", "share"}
TOP_KEYS = {"config", "batch_size", "batches", "warmup", "step_ms", "samples_per_s",
            "gflops", "gflop_per_step", "mult_adds_per_sample", "flop_estimate", "blas",
            "rows", "forward_ms", "backward_ms", "dtype"}


def _small_cnn() -> dict:
    return with_changes(moons_mlp(), data={
        "source": "synthetic:images",
        "params": {"n_samples": 40, "n_classes": 3, "height": 8, "width": 8, "channels": 2}},
        model={"layers": [
            {"type": "conv2d", "name": "conv", "filters": 4, "kernel_size": 3,
             "activation": "relu"},
            {"type": "maxpool2d", "name": "pool", "pool_size": 2},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "name": "out", "units": 3, "activation": "softmax",
             "flatten_input": True}],
            "loss": "categorical_crossentropy"})


@pytest.fixture
def cnn_config(tmp_path):
    return write_config(tmp_path / "cnn.yaml", _small_cnn())


def test_rows_for_every_layer_activation_and_phase(cnn_config):
    result = time_config(load_config(cnn_config), batches=3, warmup=1)
    assert TOP_KEYS <= result.keys()
    assert result["batches"] == 3 and result["warmup"] == 1
    rows = result["rows"]
    for row in rows:
        assert ROW_KEYS <= row.keys()
        assert row["total_ms"] == pytest.approx(row["forward_ms"] + row["backward_ms"])
        assert row["total_ms"] >= 0 and 0 <= row["share"]
    names = [r["name"] for r in rows]
    assert [r["name"] for r in rows if r["kind"] == "layer"] == ["conv", "pool", "dropout1", "out"]
    assert "conv.relu" in names and "out.softmax" in names
    fused = rows[names.index("out.softmax")]
    assert fused["fused_into_loss"] and fused["total_ms"] == 0
    # conv's ReLU runs on the pooled values (max pooling commutes with it); the row says so
    assert rows[names.index("conv.relu")]["runs_after"] == "pool"
    assert "runs_after" not in rows[names.index("out.softmax")]
    # the pooling read conv's output where its product left it (ConvThenPool)
    assert rows[names.index("pool")]["fused_with"] == "conv"
    assert "fused_with" not in rows[names.index("conv")]
    for phase in ("data", "loss", "gradient_check", "optimizer", "metrics", "other"):
        assert phase in names
    conv = rows[names.index("conv")]
    assert conv["mult_adds"] == 6 * 6 * 4 * 2 * 9 and conv["output_shape"] == [6, 6, 4]
    assert result["mult_adds_per_sample"] == sum(r.get("mult_adds", 0) for r in rows)
    # The rows account for the whole step ("other" takes the rest).
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=1e-6)
    assert "not the first layer" in result["flop_estimate"]


def test_flops_count_only_the_work_done_mlp(tmp_path):
    # moons_mlp: dense 2->8 (the first layer: no input gradient), dense 8->2, batch 16.
    # dense1: 2*8 = 16 mult-adds per sample; forward 2*16*16 = 512 FLOPs, weight gradient
    # 512, input gradient never computed -> 1024. dense2: 8*2 = 16 mult-adds; forward,
    # weight and input gradients 3*512 = 1536. The step: 2560 (not 6*32*16 = 3072).
    result = time_config(load_config(write_config(tmp_path / "m.yaml", moons_mlp())),
                         batches=1, warmup=0)
    assert result["batch_size"] == 16
    assert result["flop_per_step"] == 2560
    assert result["gflop_per_step"] == pytest.approx(2560e-9)
    model = Model.from_config(moons_mlp()["model"]["layers"], (2,)).build(
        np.random.default_rng(0))
    assert [layer_flops(layer, shape, 16) for layer, shape, _ in model.shapes()] == [1024, 1536]
    assert step_flops(model, 16) == 2560


def test_flops_count_only_the_work_done_conv(cnn_config):
    # conv 3x3, 2 -> 4 channels on 8x8: 6*6 outputs * 4 filters * 2*3*3 = 2592 mult-adds per
    # sample, forward + weight gradient only (first layer): 2*2592*2 = 10368 FLOPs per sample.
    # pool 2 -> (4, 3, 3), dropout, dense 36 -> 3: 108 mult-adds, all three passes:
    # 2*108*3 = 648. Per sample 11016.
    result = time_config(load_config(cnn_config), batches=1, warmup=0)
    assert result["flop_per_step"] == 11016 * result["batch_size"]
    rows = {r["name"]: r for r in result["rows"]}
    assert rows["pool"]["gflops"] is None and rows["conv"]["mult_adds"] == 2592


def test_clipping_row_only_when_configured(tmp_path):
    path = write_config(tmp_path / "c.yaml", moons_mlp(clip_norm=1.0))
    names = [r["name"] for r in time_config(load_config(path), batches=2)["rows"]]
    assert "clipping" in names
    path = write_config(tmp_path / "d.yaml", moons_mlp())
    names = [r["name"] for r in time_config(load_config(path), batches=2)["rows"]]
    assert "clipping" not in names


def test_cli_json_parses(cnn_config):
    out = CliRunner().invoke(cli, ["time", str(cnn_config), "--batches", "2", "--json",
                                   "--set", "training.batch_size=8"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["batch_size"] == 8 and result["batches"] == 2
    assert {r["name"] for r in result["rows"]} >= {"conv", "pool", "out", "optimizer"}


def test_cli_table(cnn_config):
    out = CliRunner().invoke(cli, ["time", str(cnn_config), "--batches", "1"])
    assert out.exit_code == 0, out.output
    for word in ("conv", "pool", "optimizer", "samples/s", "GFLOP/s"):
        assert word in out.output


def test_print_timing_to_injected_console(cnn_config):
    buffer = io.StringIO()
    print_timing(Console(file=buffer, width=120), time_config(load_config(cnn_config), batches=1))
    assert "conv.relu" in buffer.getvalue()


def test_bad_batches_is_a_usage_error(cnn_config):
    out = CliRunner().invoke(cli, ["time", str(cnn_config), "--batches", "0"])
    assert out.exit_code == 2


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_shipped_config(name):
    result = time_config(load_config(REPO / "configs" / name), batches=1, warmup=1)
    layers = [r for r in result["rows"] if r["kind"] == "layer"]
    assert len(layers) == len(load_config(REPO / "configs" / name)["model"]["layers"])

"""``dlcli export`` on the command line, and the model card it writes: exit codes, one-line
refusals, never overwriting without --force, the card's contents."""

import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dlcli.cli import cli
from tests.helpers.export_runs import REPO, fake_run


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})


def assert_refused(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("export-cli") / "run"
    result = invoke("train", REPO / "configs" / "xor_mlp.yaml", "--run-dir", run, "-q",
                    "--set", "training.epochs=2")
    assert result.exit_code == 0, result.output
    return run


def test_export_writes_the_file_and_the_card(run_dir):
    result = invoke("export", run_dir, "--format", "safetensors")
    assert result.exit_code == 0, result.output
    card = (run_dir / "export" / "MODEL.md").read_text()
    assert (run_dir / "export" / "model.safetensors").is_file()
    result = invoke("export", run_dir, "--format", "onnx")
    assert result.exit_code == 0, result.output
    card = (run_dir / "export" / "MODEL.md").read_text()
    # one card for the folder, listing both exports of the same run
    assert "`model.safetensors`" in card and "`model.onnx`" in card
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    for expected in ("## Architecture", "| dense1 | dense (tanh) |", "## Metrics", "accuracy",
                     "test split", f"dlcli train {run_dir.resolve() / 'config.yaml'}",
                     "train 288, validation 32, test 80 samples",
                     f"source: `{config['data']['source']}`"):
        assert expected in card, expected
    from dlcli import __version__
    assert f"dlcli {__version__}" in card


def test_card_metrics_are_those_of_dlcli_eval(run_dir):
    import json
    result = invoke("eval", run_dir, "--json")
    scores = json.loads(result.stdout)
    if not (run_dir / "export" / "MODEL.md").exists():
        assert invoke("export", run_dir, "--format", "safetensors").exit_code == 0
    card = (run_dir / "export" / "MODEL.md").read_text()
    assert f"| loss | {scores['loss']:.6g} |" in card
    assert f"| accuracy | {scores['accuracy']:.6g} |" in card


def test_existing_files_are_refused_without_force(run_dir, tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"mine")
    assert_refused(invoke("export", run_dir, "--format", "onnx", "-o", target),
                   str(target), "already exists", "--force")
    assert target.read_bytes() == b"mine"
    assert not (tmp_path / "MODEL.md").exists()
    card = tmp_path / "other" / "MODEL.md"
    card.parent.mkdir()
    card.write_text("my own notes\n")
    assert_refused(invoke("export", run_dir, "--format", "onnx", "-o", card.parent / "m.onnx"),
                   str(card), "not this run's model card")
    assert card.read_text() == "my own notes\n" and not (card.parent / "m.onnx").exists()
    assert invoke("export", run_dir, "--format", "onnx", "-o", target, "--force").exit_code == 0
    assert target.read_bytes()[:4] != b"mine"


def test_unexportable_layers_are_refused_in_one_line(tmp_path, monkeypatch):
    from dlcli.use.export import onnx as onnx_export
    run = fake_run(tmp_path / "run", [{"type": "avgpool2d", "pool_size": 2}, {"type": "flatten"},
                                      {"type": "dense", "units": 2}], (4, 4, 1))
    monkeypatch.delitem(onnx_export.LAYERS, "avgpool2d")  # as a layer the exporter lacks
    assert_refused(invoke("export", run, "--format", "onnx"),
                   "avgpool2d1 (avgpool2d)", "no ONNX counterpart", "safetensors")
    assert not (run / "export").exists()


def test_unpooling_overlapping_windows_is_refused(tmp_path):
    # ONNX Runtime's MaxUnpool differs from dlcli's (which sums colliding values) by up to
    # 2.6 on such a stack; the exporter refuses it rather than export a different model.
    run = fake_run(tmp_path / "run", [{"type": "maxpool2d", "name": "p", "pool_size": 3,
                                       "stride": 1},
                                      {"type": "maxunpool2d", "pool": "p"}, {"type": "flatten"},
                                      {"type": "dense", "units": 2}], (6, 6, 1))
    assert_refused(invoke("export", run, "--format", "onnx"), "maxunpool2d1 (maxunpool2d)",
                   "overlap")
    assert invoke("export", run, "--format", "safetensors").exit_code == 0


def test_a_missing_onnx_package_is_one_line(tmp_path, monkeypatch):
    run = fake_run(tmp_path / "run", [{"type": "dense", "units": 2}], (3,))
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    assert_refused(invoke("export", run, "--format", "onnx"), "pip install 'dlcli[onnx]'")
    assert not (run / "export").exists()


def test_not_a_run_is_one_line(tmp_path):
    assert_refused(invoke("export", tmp_path, "--format", "onnx"), "not a dlcli run directory")

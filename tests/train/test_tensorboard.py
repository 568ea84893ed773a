"""TensorBoard event files written without TensorBoard, read back by TensorBoard's own
reader: exactly the scalars of metrics.jsonl (as float32, TensorBoard's scalar type) and of
diagnostics.jsonl, one point per epoch and tag, also for a run interrupted and resumed."""

import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from dlcli.config import load_config
from dlcli.train import session
from dlcli.train import tensorboard as tb
from tests.helpers.configs import moons_mlp, write_config
from tests.helpers.interrupt import train_until_interrupted

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_scalars(directory) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard reads from ``directory``: tag -> [(step, value)]."""
    acc = event_accumulator.EventAccumulator(str(directory), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def expected_scalars(run_dir):
    """What metrics.jsonl and diagnostics.jsonl say, in TensorBoard's tags, as float32."""
    train, validation = {}, {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        for key, value in row.items():
            if key in ("epoch", "best") or isinstance(value, bool):
                continue
            side, tag = (validation, f"epoch_{key[4:]}") if key.startswith("val_") else \
                (train, "epoch_learning_rate" if key == "lr" else f"epoch_{key}")
            side.setdefault(tag, []).append((row["epoch"], float(np.float32(value))))
    diagnostics = run_dir / "diagnostics.jsonl"
    if diagnostics.exists():
        for line in diagnostics.read_text().splitlines():
            row = json.loads(line)
            for layer, stats in row["layers"].items():
                for key, value in stats.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        train.setdefault(f"diagnostics/{layer}/{key}", []).append(
                            (row["epoch"], float(np.float32(value))))
    return train, validation


def assert_tensorboard_matches(run_dir):
    train, validation = expected_scalars(run_dir)
    assert read_scalars(run_dir / "tensorboard" / "train") == train
    assert read_scalars(run_dir / "tensorboard" / "validation") == validation
    assert "epoch_loss" in train and "epoch_loss" in validation  # one chart, two runs
    return train, validation


def config_file(tmp_path, **training):
    return write_config(tmp_path / "moons.yaml",
                        moons_mlp(tensorboard=True, diagnostics=True, epochs=4, **training))


def test_crc32c_and_masking_follow_the_tfrecord_definition():
    assert tb.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert tb.crc32c(b"") == 0
    crc = tb.crc32c(b"abc")
    assert tb.masked_crc(b"abc") == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) \
        % (1 << 32)
    record = tb.frame(b"hello")
    assert struct.unpack("<Q", record[:8])[0] == 5 and record[12:17] == b"hello"
    assert tb.read_records(record + record[:10]) == [b"hello"]  # a cut tail is dropped


def test_events_decode_with_tensorboards_protobufs():
    from tensorboard.compat.proto.event_pb2 import Event
    data = tb.event(1234.5, 7, scalars={"epoch_loss": 0.25, "a/b": -3.0})
    parsed = Event.FromString(data)
    assert parsed.wall_time == 1234.5 and parsed.step == 7
    assert [(v.tag, v.simple_value) for v in parsed.summary.value] == [("epoch_loss", 0.25),
                                                                         ("a/b", -3.0)]
    assert tb.event_step(data) == 7
    assert Event.FromString(tb.event(1.0, file_version="brain.Event:2")).file_version == \
        "brain.Event:2"


def test_a_run_writes_exactly_its_metrics(tmp_path):
    run_dir = tmp_path / "run"
    session.train(load_config(config_file(tmp_path)), run_dir=run_dir)
    train, _ = assert_tensorboard_matches(run_dir)
    assert [step for step, _ in train["epoch_loss"]] == [1, 2, 3, 4]
    assert "diagnostics/dense1/grad_norm" in train and "epoch_learning_rate" in train


@pytest.mark.slow
def test_an_interrupted_and_resumed_run_has_no_duplicate_points(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    config = load_config(config_file(tmp_path))
    # 120 moons: 86 training samples, 6 batches of 16 per epoch; stop inside epoch 3
    train_until_interrupted(monkeypatch, config, run_dir, step=15)
    partial, _ = expected_scalars(run_dir)
    assert [s for s, _ in partial["epoch_loss"]] == [1, 2]
    resumed, _ = session.open_resume(run_dir, None, (), False)
    session.train(resumed, run_dir=run_dir, resume=True)
    train, _ = assert_tensorboard_matches(run_dir)
    assert [step for step, _ in train["epoch_loss"]] == [1, 2, 3, 4]


@pytest.mark.slow
def test_points_past_the_checkpoint_are_dropped_on_resume(tmp_path):
    """A crash after the event files got an epoch but before its checkpoint (simulated by
    writing an epoch 3 and a half record after a 2-epoch run) leaves no point twice."""
    run_dir = tmp_path / "run"
    two = write_config(tmp_path / "two.yaml", moons_mlp(tensorboard=True, epochs=2))
    session.train(load_config(two), run_dir=run_dir)
    (path,) = (run_dir / "tensorboard" / "train").glob("events.out.tfevents.*")
    with open(path, "ab") as handle:
        handle.write(tb.frame(tb.event(0.0, 3, scalars={"epoch_loss": 99.0})))
        handle.write(tb.frame(tb.event(0.0, 4, scalars={"epoch_loss": 98.0}))[:9])
    config, _ = session.open_resume(run_dir, None, ["training.epochs=4"], True)
    session.train(config, run_dir=run_dir, resume=True)
    train, _ = assert_tensorboard_matches(run_dir)
    assert [step for step, _ in train["epoch_loss"]] == [1, 2, 3, 4]
    assert 99.0 not in [value for _, value in train["epoch_loss"]]


def test_train_flag_is_a_shorthand_for_the_config_key(tmp_path):
    from dlcli.cli import cli
    run_dir = tmp_path / "run"
    path = write_config(tmp_path / "moons.yaml", moons_mlp(epochs=2))
    result = CliRunner().invoke(cli, ["train", str(path), "--run-dir", str(run_dir), "-q",
                                      "--tensorboard"])
    assert result.exit_code == 0, result.output
    assert "tensorboard: true" in (run_dir / "config.yaml").read_text()
    assert_tensorboard_matches(run_dir)
    plain = tmp_path / "plain"
    assert CliRunner().invoke(cli, ["train", str(path), "--run-dir", str(plain), "-q"]).exit_code == 0
    assert not (plain / "tensorboard").exists()


def test_tensorboard_logdir_shows_runs_side_by_side(tmp_path):
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    path = write_config(tmp_path / "moons.yaml", moons_mlp(tensorboard=True, epochs=2))
    for name in ("a", "b"):
        session.train(load_config(path), run_dir=tmp_path / "runs" / name)
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path / "runs"))
    multiplexer.Reload()
    assert sorted(multiplexer.Runs()) == ["a/tensorboard/train", "a/tensorboard/validation",
                                          "b/tensorboard/train", "b/tensorboard/validation"]


@pytest.mark.slow
def test_tensorboard_turned_on_at_resume_holds_the_earlier_epochs_too(tmp_path, monkeypatch):
    """``dlcli train --resume RUN --tensorboard`` on a run that wrote no event files: the
    epochs before the checkpoint come from metrics.jsonl and diagnostics.jsonl, so the files
    still equal them, one point per epoch; no --allow-config-change is needed for it."""
    from dlcli.cli import cli
    run_dir = tmp_path / "run"
    path = write_config(tmp_path / "moons.yaml", moons_mlp(
        diagnostics=True, epochs=4, schedule={"type": "step", "step_size": 1, "gamma": 0.5}))
    train_until_interrupted(monkeypatch, load_config(path), run_dir, step=15)  # in epoch 3
    assert not (run_dir / "tensorboard").exists()
    result = CliRunner().invoke(cli, ["train", "--resume", str(run_dir), "--tensorboard", "-q"])
    assert result.exit_code == 0, result.output
    assert "tensorboard: true" in (run_dir / "config.yaml").read_text()
    train, validation = assert_tensorboard_matches(run_dir)
    assert [step for step, _ in train["epoch_loss"]] == [1, 2, 3, 4]
    assert [step for step, _ in validation["epoch_loss"]] == [1, 2, 3, 4]
    # the learning rate of each epoch (halved every epoch) and the per-layer statistics
    np.testing.assert_allclose([v for _, v in train["epoch_learning_rate"]],
                               [0.01, 0.005, 0.0025, 0.00125], rtol=1e-7)  # float32 of each
    assert [s for s, _ in train["diagnostics/dense1/grad_norm"]] == [1, 2, 3, 4]


def test_backfill_keeps_steps_in_order_and_adds_only_missing_ones(tmp_path):
    """Epochs 1 and 3 in the file, 1-4 known: 2 and 4 are added between and after, 1 and 3
    keep their own values; TensorBoard then reads all four in order."""
    directory = tmp_path / "train"
    writer = tb.EventWriter(directory)
    writer.scalars(1, {"epoch_loss": 1.0})
    writer.scalars(3, {"epoch_loss": 3.0})
    added = tb.backfill(directory, {s: {"epoch_loss": 10.0 * s} for s in (1, 2, 3, 4)})
    assert added == 2
    assert read_scalars(directory) == {"epoch_loss": [(1, 1.0), (2, 20.0), (3, 3.0), (4, 40.0)]}
    assert tb.backfill(directory, {2: {"epoch_loss": 5.0}}) == 0  # nothing twice


@pytest.mark.slow
def test_tensorboard_logdir_shows_sweep_trials_beside_runs(tmp_path):
    """``tensorboard --logdir runs/`` with a run and a sweep (its trials nested in
    ``runs/<sweep>/trials/NNNN``) inside: every run and every trial is a TensorBoard run."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tests.helpers.sweep import dlcli, write_sweep
    spec = {"name": "lr2", "method": "grid", "seed": 0, "metric": {"name": "val_loss"},
            "set": {"training.epochs": 2, "training.tensorboard": True},
            "parameters": {"training.optimizer.lr": {"values": [0.01, 0.1]}},
            "executor": {"type": "local", "parallel": 1}}
    dlcli("sweep", write_sweep(tmp_path, spec), "--dir", "runs/lr2", cwd=tmp_path, check=0)
    path = write_config(tmp_path / "moons.yaml", moons_mlp(tensorboard=True, epochs=2))
    session.train(load_config(path), run_dir=tmp_path / "runs" / "a")
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path / "runs"))
    multiplexer.Reload()
    assert sorted(multiplexer.Runs()) == [
        f"{run}/tensorboard/{side}" for run in ("a", "lr2/trials/0000", "lr2/trials/0001")
        for side in ("train", "validation")]
    for trial in ("0000", "0001"):
        assert_tensorboard_matches(tmp_path / "runs" / "lr2" / "trials" / trial)

"""Exact resume: a run interrupted at any step and resumed ends bit-identical to the same run
left uninterrupted (weights, optimizer state, metrics rows)."""

import json
import signal

import numpy as np
import pytest
import yaml

from dlcli.config import load_config
from dlcli.train import checkpoint as ckpt
from dlcli.train import recovery
from dlcli.train import session
from tests.helpers.interrupt import interrupt_at

CONFIG = {
    "name": "resume",
    "seed": 3,
    "data": {"source": "synthetic:moons", "params": {"n_samples": 120, "noise": 0.2},
             "validation_split": 0.2, "test_split": 0.1},
    "model": {"layers": [{"type": "dense", "units": 12, "activation": "tanh"},
                         {"type": "dropout", "rate": 0.3},
                         {"type": "dense", "units": 1, "activation": "sigmoid"}],
              "loss": "binary_crossentropy"},
    "training": {"epochs": 4, "batch_size": 16, "optimizer": {"type": "adam", "lr": 0.01},
                 "early_stopping": {"patience": 10}},
}
STEPS_PER_EPOCH = 6  # 120 samples: 12 test, 22 validation, 86 train -> ceil(86 / 16)


def write_config(tmp_path, **training):
    data = json.loads(json.dumps(CONFIG))
    data["training"].update(training)
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def final_state(run_dir):
    parts = ckpt.load(run_dir / "checkpoints" / "last.npz")
    return parts["model"], parts["optimizer"]


def metrics_rows(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    run_dir = tmp / "run"
    session.train(load_config(write_config(tmp)), run_dir=run_dir)
    return run_dir


def assert_same_run(run_dir, reference):
    model, optimizer = final_state(run_dir)
    ref_model, ref_optimizer = final_state(reference)
    assert model.keys() == ref_model.keys() and optimizer.keys() == ref_optimizer.keys()
    for key in ref_model:
        assert np.array_equal(model[key], ref_model[key]), key  # bit-identical
    for key in ref_optimizer:
        assert np.array_equal(optimizer[key], ref_optimizer[key]), key
    assert metrics_rows(run_dir) == metrics_rows(reference)


STEPS = sorted(np.random.default_rng(7).choice(np.arange(1, 4 * STEPS_PER_EPOCH), 10,
                                               replace=False).tolist())


@pytest.mark.parametrize("step", STEPS)
def test_sigint_at_any_step_then_resume_is_bit_identical(tmp_path, monkeypatch, reference, step):
    from dlcli.errors import RunInterrupted

    run_dir = tmp_path / "run"
    config_path = write_config(tmp_path)
    with monkeypatch.context() as patch:
        interrupt_at(patch, step)
        with pytest.raises(RunInterrupted) as info:
            session.train(load_config(config_path), run_dir=run_dir)
    assert info.value.exit_code == 130
    assert f"dlcli train --resume {run_dir}" in str(info.value)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == step
    config, _ = session.open_resume(run_dir, None, (), False)
    session.train(config, run_dir=run_dir, resume=True)
    assert_same_run(run_dir, reference)


def test_sigterm_exits_143_and_resumes(tmp_path, monkeypatch, reference):
    from dlcli.errors import RunInterrupted

    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        interrupt_at(patch, 9, signal.SIGTERM)
        with pytest.raises(RunInterrupted) as info:
            session.train(load_config(write_config(tmp_path)), run_dir=run_dir)
    assert info.value.exit_code == 143
    config, _ = session.open_resume(run_dir, None, (), False)
    session.train(config, run_dir=run_dir, resume=True)
    assert_same_run(run_dir, reference)


def test_resume_from_an_epoch_checkpoint_after_a_crash(tmp_path, reference):
    """kill -9 between checkpoints loses only the steps after the last checkpoint: resuming
    from it equals the uninterrupted run (simulated by rolling the run back to epoch 2)."""
    run_dir = tmp_path / "run"
    session.train(load_config(write_config(tmp_path, epochs=2)), run_dir=run_dir)
    # The crash: metrics of a third epoch half-written, a temporary file left behind.
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 3, "loss": 0.')
    (run_dir / "checkpoints" / ".tmp-last.npz.999").write_bytes(b"partial")
    config, diffs = session.open_resume(run_dir, load_config(write_config(tmp_path)), (), True)
    assert diffs == ["training.epochs: 2 -> 4"]
    summary = session.train(config, run_dir=run_dir, resume=True)
    assert any("last line is incomplete" in w for w in summary["warnings"])
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))
    assert_same_run(run_dir, reference)


def test_resume_refuses_a_changed_config_listing_the_keys(tmp_path):
    from dlcli.errors import ConfigError

    run_dir = tmp_path / "run"
    session.train(load_config(write_config(tmp_path, epochs=1)), run_dir=run_dir)
    changed = load_config(write_config(tmp_path, epochs=1), ["training.optimizer.lr=0.5",
                                                              "training.batch_size=8"])
    with pytest.raises(ConfigError) as info:
        session.open_resume(run_dir, changed, (), False)
    message = str(info.value)
    assert "training.optimizer.lr: 0.01 -> 0.5" in message
    assert "training.batch_size: 16 -> 8" in message
    assert "--allow-config-change" in message


def test_resume_falls_back_to_the_previous_checkpoint_when_last_is_damaged(tmp_path):
    run_dir = tmp_path / "run"
    session.train(load_config(write_config(tmp_path, epochs=2, checkpoint_every=1)),
                  run_dir=run_dir)
    last = run_dir / "checkpoints" / "last.npz"
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0x01
    last.write_bytes(bytes(data))
    path, parts, warnings = recovery.load_latest(run_dir / "checkpoints")
    assert path.name == "previous.npz" and int(parts["trainer"]["epoch"]) == 1
    assert "SHA-256 differs" in warnings[0]


def test_resume_refuses_data_that_changed_since_the_run_started(tmp_path):
    from dlcli.errors import DataError

    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.normal(size=(60, 2)), y=rng.integers(0, 2, 60))
    config = json.loads(json.dumps(CONFIG))
    config["data"] = {"source": str(data)}
    config["training"]["epochs"] = 1
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    session.train(load_config(path), run_dir=run_dir)
    np.savez(data, x=rng.normal(size=(60, 2)) * 3, y=rng.integers(0, 2, 60))
    resumed, _ = session.open_resume(run_dir, None, ["training.epochs=2"], True)
    with pytest.raises(DataError, match="data file changed"):
        session.train(resumed, run_dir=run_dir, resume=True)


def test_init_from_starts_from_a_checkpoints_weights(tmp_path):
    """model.init_from: a warm start takes the weights, not the optimizer or counters."""
    first = tmp_path / "first"
    session.train(load_config(write_config(tmp_path, epochs=1)), run_dir=first)
    weights = final_state(first)[0]
    config = load_config(write_config(tmp_path, epochs=1, optimizer={"type": "sgd", "lr": 0.0}),
                         [f"model.init_from={first / 'checkpoints' / 'last.npz'}"])
    second = tmp_path / "second"
    session.train(config, run_dir=second)
    after = final_state(second)[0]
    for key in weights:  # lr 0: the warm-started weights come through unchanged
        assert np.array_equal(after[key], weights[key]), key
    assert int(ckpt.load(second / "checkpoints" / "last.npz")["trainer"]["epoch"]) == 1

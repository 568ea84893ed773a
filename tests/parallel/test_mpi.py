"""``mpiexec -n N dlcli train`` against the single-process run with the same shards: the
same bits for N = 1, 2, 4; signals agreed by every rank; a killed rank; a refused N.

Each test starts its own MPI job on this machine (``mpiexec -iface lo``: loopback and
shared memory), tiny models, BLAS on one thread in every process."""

import signal

import numpy as np
import pytest
import yaml

from tests.helpers.mpi import dlcli_single, exit_codes, mpiexec_dlcli, require_mpi

pytestmark = pytest.mark.slow


def mlp(dtype):
    return {
        "name": "mlp", "seed": 4, "dtype": dtype,
        "data": {"source": "synthetic:moons", "params": {"n_samples": 130}},
        "model": {"layers": [
            {"type": "dense", "units": 12, "activation": "relu"},
            {"type": "dropout", "rate": 0.3},
            {"type": "dense", "units": 2, "activation": "softmax"}],
            "loss": "categorical_crossentropy"},
        "training": {"epochs": 3, "batch_size": 16, "optimizer": {"type": "adam", "lr": 0.01},
                     "parallel": {"shards": 4}},
    }


def cnn(dtype):
    return {
        "name": "cnn", "seed": 2, "dtype": dtype,
        "data": {"source": "synthetic:images",
                 "params": {"n_samples": 70, "n_classes": 3, "height": 8, "width": 8,
                            "channels": 1}},
        "model": {"layers": [
            {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same",
             "activation": "relu"},
            {"type": "maxpool2d", "pool_size": 2},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 3, "activation": "softmax", "flatten_input": True}],
            "loss": "categorical_crossentropy"},
        "training": {"epochs": 2, "batch_size": 12, "optimizer": {"type": "sgd", "lr": 0.05,
                                                                  "momentum": 0.9},
                     "parallel": {"shards": 4}},
    }


def write(tmp_path, config):
    path = tmp_path / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def final_state(run_dir):
    """Every array of the last checkpoint (model, optimizer, trainer state) and the
    metrics rows without their wall-clock times."""
    from dlcli.train.recovery import load_latest
    import json
    _, parts, _ = load_latest(run_dir / "checkpoints")
    metrics = run_dir / "metrics.jsonl"  # none before the first epoch ends
    rows = [json.loads(line) for line in metrics.read_text().splitlines()] \
        if metrics.exists() else []
    for row in rows:
        row.pop("time", None)
    return parts, rows


def assert_same_run(a, b):
    parts_a, rows_a = a
    parts_b, rows_b = b
    for section in ("model", "optimizer"):
        assert parts_a[section].keys() == parts_b[section].keys()
        for key in parts_a[section]:
            assert np.array_equal(parts_a[section][key], parts_b[section][key]), key
    for key in ("step", "epoch"):
        assert int(parts_a["trainer"][key]) == int(parts_b["trainer"][key])
    assert rows_a == rows_b


def ok(result):
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", [mlp, cnn], ids=["mlp_dropout", "cnn_pool"])
def test_mpiexec_1_2_4_equal_the_single_process_run_bit_for_bit(tmp_path, make, dtype):
    require_mpi()
    config = write(tmp_path, make(dtype))
    ok(dlcli_single(["train", config, "--run-dir", tmp_path / "single", "-q"]))
    reference = final_state(tmp_path / "single")
    for n in (1, 2, 4):
        ok(mpiexec_dlcli(n, ["train", config, "--run-dir", tmp_path / f"n{n}", "-q"]))
        assert_same_run(final_state(tmp_path / f"n{n}"), reference)
    assert not any((tmp_path / "n4").glob("checkpoints/*.tmp*"))


def test_allreduce_runs_and_rank_count_not_dividing_shards_is_refused(tmp_path):
    require_mpi()
    config = mlp("float64")
    config["training"]["parallel"]["reduce"] = "allreduce"
    config["training"]["epochs"] = 1
    path = write(tmp_path, config)
    ok(mpiexec_dlcli(2, ["train", path, "--run-dir", tmp_path / "allreduce", "-q"]))
    codes = tmp_path / "codes"
    codes.mkdir()
    result = mpiexec_dlcli(3, ["train", path, "--run-dir", tmp_path / "three", "-q"],
                           codes_dir=codes)
    assert result.returncode == 2
    assert "training.parallel.shards: 4 shards cannot be shared evenly by 3 MPI ranks" \
        in result.stderr
    assert result.stderr.count("cannot be shared evenly") == 1  # rank 0 alone reports it
    assert exit_codes(codes) == {0: 2, 1: 2, 2: 2}
    assert not (tmp_path / "three").exists()  # refused before anything was made


def test_sigint_to_one_rank_stops_all_with_130_and_resume_on_other_ranks_is_exact(tmp_path):
    """SIGINT reaches rank 1 alone after step 2 (of 6 per epoch); every rank agrees at
    step 3, rank 0 checkpoints, all exit 130; 4 ranks then finish the run, which ends
    where the uninterrupted single-process run ends."""
    require_mpi()
    path = write(tmp_path, mlp("float64"))
    ok(dlcli_single(["train", path, "--run-dir", tmp_path / "single", "-q"]))
    codes = tmp_path / "codes"
    codes.mkdir()
    run = tmp_path / "run"
    result = mpiexec_dlcli(2, ["train", path, "--run-dir", run, "-q"], codes_dir=codes,
                           signal_at=(1, 2, int(signal.SIGINT)))
    assert result.returncode == 130, result.stderr[-2000:]
    assert exit_codes(codes) == {0: 130, 1: 130}
    assert "SIGINT received: stopped after epoch 1 step 3" in result.stderr
    parts, _ = final_state(run)
    assert int(parts["trainer"]["step"]) == 3
    ok(mpiexec_dlcli(4, ["train", "--resume", run, "-q"]))
    assert_same_run(final_state(run), final_state(tmp_path / "single"))


def test_a_killed_rank_ends_the_job_and_leaves_a_checkpoint_to_resume(tmp_path):
    """Rank 1 dies (SIGKILL) in epoch 2: mpiexec ends every rank; the last checkpoint
    loads (checksums verified) and one process resumes it to the reference's end."""
    require_mpi()
    config = mlp("float32")
    config["training"]["checkpoint_every"] = 1  # auto: none before ~2 s of training
    path = write(tmp_path, config)
    ok(dlcli_single(["train", path, "--run-dir", tmp_path / "single", "-q"]))
    run = tmp_path / "run"
    result = mpiexec_dlcli(2, ["train", path, "--run-dir", run, "-q"],
                           signal_at=(1, 8, int(signal.SIGKILL)))
    assert result.returncode != 0
    parts, _ = final_state(run)  # load_latest verifies the checkpoint's checksums
    assert 6 <= int(parts["trainer"]["step"]) < 18
    ok(dlcli_single(["train", "--resume", run, "-q"]))
    assert_same_run(final_state(run), final_state(tmp_path / "single"))


def test_sigterm_to_rank_0_stops_every_rank_with_143(tmp_path):
    require_mpi()
    path = write(tmp_path, mlp("float32"))
    codes = tmp_path / "codes"
    codes.mkdir()
    result = mpiexec_dlcli(4, ["train", path, "--run-dir", tmp_path / "run", "-q"],
                           codes_dir=codes, signal_at=(0, 7, int(signal.SIGTERM)))
    assert result.returncode == 143, result.stderr[-2000:]
    assert exit_codes(codes) == {0: 143, 1: 143, 2: 143, 3: 143}
    parts, _ = final_state(tmp_path / "run")
    assert int(parts["trainer"]["step"]) == 8  # agreed in the reduction of the next step


def test_an_error_on_rank_0_alone_ends_every_rank_with_its_code(tmp_path):
    """The run directory exists: rank 0 refuses it while the other ranks have started;
    the job must end (MPI_Abort with exit 2), not wait forever for rank 0's messages."""
    require_mpi()
    path = write(tmp_path, mlp("float32"))
    (tmp_path / "run").mkdir()
    result = mpiexec_dlcli(2, ["train", path, "--run-dir", tmp_path / "run", "-q"],
                           timeout=120)
    assert result.returncode == 2
    assert "(rank 0 of 2): error:" in result.stderr and "already exists" in result.stderr
    assert list((tmp_path / "run").iterdir()) == []


def test_without_the_key_each_rank_takes_one_shard_as_written_in_the_run(tmp_path):
    require_mpi()
    config = mlp("float64")
    del config["training"]["parallel"]
    config["training"]["epochs"] = 1
    path = write(tmp_path, config)
    result = ok(mpiexec_dlcli(2, ["train", path, "--run-dir", tmp_path / "mpi", "-q"]))
    assert "training.parallel.shards=2" in result.stderr  # the single-process equivalent
    stored = yaml.safe_load((tmp_path / "mpi" / "config.yaml").read_text())
    assert stored["training"]["parallel"] == {"shards": 2, "reduce": "tree"}
    ok(dlcli_single(["train", path, "--set", "training.parallel.shards=2", "--run-dir",
                     tmp_path / "single", "-q"]))
    assert_same_run(final_state(tmp_path / "mpi"), final_state(tmp_path / "single"))

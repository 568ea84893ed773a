"""Input errors found by the fault campaign: exit 2 and one line naming the file and key path
(synthetic parameters, YAML merge keys and nesting, lock contents, a full disk at start)."""

import os
import pathlib
import resource
import subprocess
import sys

import pytest
import yaml

from dlcli.config import load_config, loader
from dlcli.errors import ConfigError
from dlcli.train import session
from dlcli.train.io import process_start_time

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = {
    "name": "inputs", "seed": 1,
    "data": {"source": "synthetic:moons", "params": {"n_samples": 40}},
    "model": {"layers": [{"type": "dense", "units": 4, "activation": "tanh"},
                         {"type": "dense", "units": 2, "activation": "softmax"}],
              "loss": "categorical_crossentropy"},
    "training": {"epochs": 1, "batch_size": 8, "optimizer": {"type": "adam", "lr": 0.01}},
}


def dlcli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "dlcli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, **kwargs)


def config_file(tmp_path, text=None):
    path = tmp_path / "c.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(CONFIG))
    return path


@pytest.mark.parametrize("override, expected", [
    ("data.params.noise=[0.1]", "data.params.noise: expected a number ≥ 0, got [0.1]"),
    ("data.params.noise=-1", "data.params.noise: expected a number ≥ 0, got -1"),
    ("data.params.noise=.nan", "data.params.noise: expected a number ≥ 0, got nan"),
    ("data.params.noise=.inf", "data.params.noise: expected a number ≥ 0, got inf"),
    ("data.params.nois=0.1", "data.params.nois: unknown key; did you mean 'noise'?"),
])
def test_synthetic_parameters_are_checked_against_the_generator(tmp_path, override, expected):
    proc = dlcli("config", config_file(tmp_path), "--set", override)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr
    assert str(tmp_path / "c.yaml") in proc.stderr


def test_a_whole_number_parameter_refuses_a_fraction(tmp_path):
    path = config_file(tmp_path)
    with pytest.raises(ConfigError, match=r"data\.params\.channels: expected a whole number ≥ 1, got 2\.5"):
        load_config(path, ["data.source=synthetic:images", "data.params.channels=2.5"])
    config = load_config(path, ["data.params.n_samples=1e2"])
    assert config["data"]["params"]["n_samples"] == 100 and \
        isinstance(config["data"]["params"]["n_samples"], int)


def test_yaml_merge_keys_are_accepted_and_duplicates_still_refused():
    data = loader.loads("a: &base {x: 1, z: 5}\nc: {<<: *base, x: 2}\n")
    assert data["c"] == {"x": 2, "z": 5}  # an explicit key overrides the merged one
    with pytest.raises(ConfigError, match="duplicate key 'y'"):
        loader.loads("a: &base {x: 1}\nc: {<<: *base, y: 1, y: 3}\n")
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(6))
    with pytest.raises(ConfigError, match="through aliases"):
        loader.loads(bomb)


def test_deep_nesting_is_refused_in_one_line(tmp_path):
    proc = dlcli("config", config_file(tmp_path, "a: " + "[" * 3000 + "]" * 3000 + "\n"))
    assert proc.returncode == 2 and "nested too deeply" in proc.stderr
    assert proc.stderr.count("\n") == 1


def _trained(tmp_path):
    run_dir = tmp_path / "run"
    session.train(load_config(config_file(tmp_path)), run_dir=run_dir)
    return run_dir


def test_a_lock_holding_a_20_digit_number_is_refused(tmp_path):
    run_dir = _trained(tmp_path)
    (run_dir / "lock").write_text("12345678901234567890\n")
    proc = dlcli("train", "--resume", run_dir, "--set", "training.epochs=2",
                 "--allow-config-change", "-q")
    assert proc.returncode == 2, proc.stderr
    assert "not a dlcli lock" in proc.stderr and str(run_dir / "lock") in proc.stderr
    assert "internal error" not in proc.stderr


def test_a_lock_whose_pid_was_reused_is_taken_over(tmp_path):
    """The pid is alive (this test's parent) but started at another time than the lock
    says: another process has the pid now; the lock is stale."""
    run_dir = _trained(tmp_path)
    start = process_start_time(os.getppid())
    if start is None:
        pytest.skip("no /proc/PID/stat here")
    (run_dir / "lock").write_text(f"{os.getppid()} {start + 1}\n")
    proc = dlcli("train", "--resume", run_dir, "--set", "training.epochs=2",
                 "--allow-config-change", "-q")
    assert proc.returncode == 0, proc.stderr
    assert f"took over the stale lock of process {os.getppid()}" in proc.stderr
    (run_dir / "lock").write_text(f"{os.getppid()} {start}\n")  # the same process: refused
    proc = dlcli("train", "--resume", run_dir, "--set", "training.epochs=3",
                 "--allow-config-change", "-q")
    assert proc.returncode == 2 and "being written by another dlcli process" in proc.stderr


def test_a_full_disk_at_start_names_the_path_and_leaves_no_temporary(tmp_path):
    run_dir = _trained(tmp_path)

    def no_room():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4, 4))
    proc = dlcli("train", "--resume", run_dir, "--set", "training.epochs=2",
                 "--allow-config-change", "-q", preexec_fn=no_room)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if not l.startswith("warning:")]
    assert len(lines) == 1 and "internal error" not in lines[0]
    assert str(run_dir / ".tmp-lock.") in lines[0]
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".tmp-")] == []


def test_string_y_test_beside_integer_y_is_refused(tmp_path):
    import numpy as np
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.normal(size=(30, 2)), y=rng.integers(0, 2, 30),
             x_test=rng.normal(size=(10, 2)), y_test=np.array(["a"] * 10))
    proc = dlcli("train", config_file(tmp_path), "--set", f"data.source={data}", "-q")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"{data}: y_test holds strings but y holds numbers" in proc.stderr


def test_predict_on_an_input_with_0_samples_is_refused(tmp_path):
    import numpy as np
    run_dir = _trained(tmp_path)
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 2)))
    proc = dlcli("predict", run_dir, empty, "-o", tmp_path / "out.csv")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"{empty}: holds 0 samples" in proc.stderr

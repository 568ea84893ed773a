"""The memory check before training allocates: a run that needs more memory than the process
can have is refused with exit 2 and one line naming the figure and the key to lower, before
any weight, synthetic sample or class name exists.

The CLI cases run under an address-space limit (RLIMIT_AS, 3 GiB): the check counts it as
the memory available, so the refusals do not depend on the machine, and a regression fails
with a MemoryError instead of eating the machine's memory."""

import os
import pathlib
import re
import resource
import subprocess
import sys

import numpy as np
import pytest
import yaml

from dlcli.config import load_config
from dlcli.data import footprint, synthetic
from dlcli.data.prepare import prepare as prepare_data
from dlcli.errors import ConfigError, human_bytes
from dlcli.registry import DATASETS
from dlcli.train import budget
from dlcli.train.build import prepare

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIMIT = 3 * 2**30
CONFIG = {
    "name": "big", "seed": 0,
    "data": {"source": "synthetic:blobs",
             "params": {"n_samples": 100, "n_features": 784, "n_classes": 10}},
    "model": {"layers": [{"type": "dense", "units": 64, "activation": "relu"},
                         {"type": "dense", "units": 10, "activation": "softmax"}],
              "loss": "categorical_crossentropy"},
    "training": {"epochs": 1, "batch_size": 32, "optimizer": {"type": "adam", "lr": 0.01}},
}
IMAGES = {"source": "synthetic:images",
          "params": {"n_samples": 100, "n_classes": 10, "height": 32, "width": 32, "channels": 3}}
if not pathlib.Path("/proc/meminfo").exists():
    pytest.skip("the memory check reads /proc/meminfo (Linux)", allow_module_level=True)


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def dlcli(tmp_path, config, *args):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "dlcli", "train", str(path), "-q",
                           "--run-dir", str(tmp_path / "run"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=limited)
    return proc, path


def with_layer(first: dict, data=None) -> dict:
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["model"]["layers"][0] = first
    if first["type"] == "conv2d":
        config["model"]["layers"][1]["flatten_input"] = True
    if data is not None:
        config["data"] = data
    return config


@pytest.mark.parametrize("config, key", [
    # 784 x 20,000,000 weights with Adam: about 300 GiB
    (with_layer({"type": "dense", "units": 20_000_000, "activation": "relu"}),
     "model.layers[0].units"),
    # a step's 28 x 28 x 1,000,000 activations of a batch of 32
    (with_layer({"type": "conv2d", "filters": 1_000_000, "kernel_size": 5}, IMAGES),
     "model.layers[0].filters"),
    # far larger: exit 1 with a misleading hint, or an OverflowError, before
    (with_layer({"type": "dense", "units": 10**15, "activation": "relu"}), "model.layers[0].units"),
    (with_layer({"type": "dense", "units": 10**20, "activation": "relu"}), "model.layers[0].units"),
    # 10**9 samples of 784 features: the data alone, refused before they are generated
    (yaml.safe_load(yaml.safe_dump(CONFIG)) | {"data": {
        "source": "synthetic:blobs", "params": {"n_samples": 10**9, "n_features": 784}}},
     "data.params.n_samples"),
], ids=["units", "filters", "units-1e15", "units-1e20", "n_samples"])
def test_a_run_larger_than_memory_is_refused_in_one_line(tmp_path, config, key):
    proc, path = dlcli(tmp_path, config)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {path}: {key}: ")
    assert re.search(r"needs about [\d.,]+ [KMGTPE]iB", lines[0])
    assert re.search(r", [\d.]+ [KMG]iB is available; lower " + re.escape(key), lines[0])
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


def test_a_float_too_large_for_units_is_refused(tmp_path):
    proc, path = dlcli(tmp_path, with_layer({"type": "dense", "units": 1e20}))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{path}: model.layers[0].units: expected a positive integer" in proc.stderr


def test_a_label_of_a_billion_is_refused_before_its_classes_are_made(tmp_path):
    """Integer labels are class indices: 10**9 would make 10**9 + 1 class names (and a
    one-hot of that width); the row and the value are named instead."""
    rng = np.random.default_rng(0)
    data = tmp_path / "d.csv"
    labels = rng.integers(0, 3, 40)
    labels[12] = 10**9
    data.write_text("a,b,label\n" + "".join(f"{rng.normal():.3f},{rng.normal():.3f},{v}\n"
                                            for v in labels))
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["data"] = {"source": str(data)}
    config["model"]["layers"][-1]["units"] = 3
    proc, _ = dlcli(tmp_path, config)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    # row 14: the header is row 1, the 13th sample (index 12) row 14
    assert f"error: {data}: row 14: label 1000000000 makes 1000000001 classes" in proc.stderr
    assert "is available; fix the label" in proc.stderr


def test_a_run_that_fits_trains_under_the_same_limit(tmp_path):
    proc, _ = dlcli(tmp_path, CONFIG)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "summary.json").is_file()


def test_no_memory_check_skips_the_check(tmp_path):
    """The estimate can be wrong (swap, a model smaller than it looks): the flag trains
    anyway, and here meets the address-space limit as the check said it would."""
    proc, _ = dlcli(tmp_path, with_layer({"type": "dense", "units": 20_000_000}),
                    "--no-memory-check")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("error: out of memory")
    assert "training.batch_size" not in proc.stderr  # the hint that misled


@pytest.mark.parametrize("name", DATASETS.names())
def test_synthetic_sample_shapes_match_the_generators(name):
    params = {"n_samples": 7}
    if name == "images":
        params.update(height=5, width=6, channels=2)
    if name in ("blobs", "regression", "multilabel"):
        params["n_features"] = 3
    n, x_shape, y_shape, y_itemsize = synthetic.sample_shapes(name, params)
    x, y = DATASETS.get(name)(np.random.default_rng(0), **params)
    assert (n, *x_shape) == x.shape and (n, *y_shape) == y.shape
    assert y_itemsize == y.itemsize and x.dtype == np.float64


def test_synthetic_bytes_are_what_generating_and_splitting_hold():
    spec = {"source": "synthetic:images", "validation_split": 0.2, "test_split": 0.1,
            "params": {"n_samples": 50, "height": 6, "width": 5, "channels": 2}}
    x, y = DATASETS.get("images")(np.random.default_rng(0), n_samples=50, height=6, width=5,
                                  channels=2)
    splits = prepare_data(spec, ROOT, 0, dtype=np.float32)
    # prepared: 50 samples of 6*5*2 float32 values and an int64 label, however split
    assert footprint.prepared_bytes(splits) == 50 * 60 * 4 + 50 * 8
    assert footprint.synthetic_bytes("images", spec["params"], np.float32) == \
        x.nbytes + y.nbytes + 50 * 60 * 4 + 50 * 8


def test_memory_mapped_arrays_hold_no_anonymous_memory(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(1000, dtype=np.float64))
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert footprint.held_bytes([mapped, mapped[10:20], None]) == 0
    assert footprint.held_bytes([np.array(mapped), mapped]) == 8000


def test_a_streamed_set_holds_its_row_numbers_only(tmp_path, monkeypatch):
    """A split streamed from a memory-mapped .npy (dlcli.data.lazy) holds the int64 row
    numbers of its rows and the labels; its one-hot rows are made per batch."""
    from dlcli.data import lazy
    monkeypatch.setattr(lazy, "STREAM_BYTES", 0)
    np.save(tmp_path / "x.npy", np.ones((100, 12), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.arange(100) % 3)
    spec = {"source": str(tmp_path), "validation_split": 0.2}
    splits = prepare_data(spec, ROOT, 0, dtype=np.float32)
    assert lazy.is_lazy(splits.x_train)
    # 100 row numbers (80 + 20, none for test) and 100 labels, each int64
    assert footprint.prepared_bytes(splits) == 100 * 8 + 100 * 8
    assert footprint.one_hot_bytes(splits, np.float32) == 0
    monkeypatch.setattr(lazy, "STREAM_BYTES", 2**62)
    splits = prepare_data(spec, ROOT, 0, dtype=np.float32)
    assert footprint.prepared_bytes(splits) == 100 * 12 * 4 + 100 * 8
    assert footprint.one_hot_bytes(splits, np.float32) == 100 * 3 * 4


def test_available_memory_is_the_smallest_limit():
    meminfo = pathlib.Path("/proc/meminfo").read_text()
    mem_available = int(re.search(r"MemAvailable:\s+(\d+)", meminfo).group(1)) * 1024
    assert 0 < budget.available_bytes() <= mem_available
    code = ("import resource; from dlcli.train.budget import available_bytes; "
            f"resource.setrlimit(resource.RLIMIT_AS, ({LIMIT}, {LIMIT})); "
            "size = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024; "
            f"print(available_bytes(), {LIMIT} - size)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    # the address space left under the limit (this process's own figure, a moment apart)
    assert abs(int(out[0]) - int(out[1])) < 2**20


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_a_cgroup_limit_lowers_the_memory_available(tmp_path, monkeypatch, version):
    """The process's cgroup allows 1 MB more than it uses, its parent no limit."""
    root = tmp_path / "cgroup"
    if version == "v2":
        own, line = root / "jobs" / "one", "0::/jobs/one\n"
        names = ("memory.max", "memory.current", "max")
    else:
        own, line = root / "memory" / "jobs" / "one", "4:memory:/jobs/one\n0::/\n"
        names = ("memory.limit_in_bytes", "memory.usage_in_bytes", "9223372036854771712")
    own.mkdir(parents=True)
    (own / names[0]).write_text(f"{5 * 2**20}\n")
    (own / names[1]).write_text(f"{4 * 2**20}\n")
    (own.parent / names[0]).write_text(names[2] + "\n")
    (own.parent / names[1]).write_text(f"{4 * 2**20}\n")
    real_read = budget._read
    monkeypatch.setattr(budget, "CGROUP_ROOT", root)
    monkeypatch.setattr(budget, "_read", lambda path: line if str(path) == "/proc/self/cgroup"
                        else real_read(path))
    assert budget.available_bytes() == 2**20


def config_file(tmp_path, config) -> pathlib.Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_figures_are_the_step_of_dlcli_shapes_and_the_data(tmp_path):
    """2 -> 4 -> 3 classes, Adam, batch 5, float32: parameters (2*4 + 4) + (4*3 + 3) = 27,
    each with a gradient and Adam's two moments and work array (5 arrays of 27 float32); the
    kept activations of ``dlcli shapes``; 40 samples of 2 float32 inputs and int64 labels."""
    from dlcli.inspect.shapes import shapes_report
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["data"] = {"source": "synthetic:blobs", "params": {"n_samples": 40, "n_classes": 3}}
    config["model"]["layers"] = [{"type": "dense", "units": 4, "activation": "tanh"},
                                 {"type": "dense", "units": 3, "activation": "softmax"}]
    config["training"]["batch_size"] = 5
    config = load_config(config_file(tmp_path, config))
    prep = prepare(config)
    need = budget.step_need(config, prep.model, prep.splits, prep.task, prep.loss)
    shapes = shapes_report(config)["memory_bytes"]
    assert need["weights"] == 5 * 27 * 4
    assert need["activations"] == shapes["activations"] + shapes["workspaces"]
    assert need["data"] == 40 * 2 * 4 + 40 * 8 and need["one_hot"] == 0
    total = need["weights"] + need["activations"] + need["data"]
    args = (config, prep.model, prep.splits, prep.task, prep.loss)
    with pytest.raises(ConfigError) as caught:
        budget.MemoryBudget(total - 1).check_step(*args)
    assert f"needs about {human_bytes(total)} for a step of batch 5" in str(caught.value)
    budget.MemoryBudget(total).check_step(*args)  # exactly enough: accepted
    # an MSE on the 3 classes takes one-hot rows: 40 x 3 float32 more
    config.data["model"]["loss"] = "mse"
    config.data["task"] = "classification"
    prep = prepare(config)
    assert budget.step_need(config, prep.model, prep.splits, prep.task,
                            prep.loss)["one_hot"] == 40 * 3 * 4


@pytest.mark.parametrize("layers, key", [
    # the dense layer holds the weights, but its 6*6*500 inputs come from the convolution
    ([{"type": "conv2d", "filters": 500, "kernel_size": 3},
      {"type": "dense", "units": 10, "activation": "softmax", "flatten_input": True}],
     "model.layers[0].filters: "),
    # the weights of a wide hidden layer
    ([{"type": "dense", "units": 5000, "flatten_input": True},
      {"type": "dense", "units": 10, "activation": "softmax"}],
     "model.layers[0].units: "),
])
def test_the_key_named_is_the_one_that_makes_the_run_large(tmp_path, layers, key):
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["data"] = {"source": "synthetic:images", "params": {
        "n_samples": 20, "height": 8, "width": 8, "channels": 1, "n_classes": 10}}
    config["model"]["layers"] = layers
    config["training"]["batch_size"] = 1
    config = load_config(config_file(tmp_path, config))
    with pytest.raises(ConfigError) as caught:
        prepare(config, budget=budget.MemoryBudget(100_000))
    assert str(caught.value).startswith(f"{config.source}: {key}")
    assert str(caught.value).endswith(f"lower {key.rstrip(': ')}")


def test_sizes_are_python_integers():
    """A shape's size past 2**63 is exact (NumPy's int64 product wraps around)."""
    from dlcli.nn.layers.base import size_of
    assert size_of((10**20, 3)) == 3 * 10**20
    assert size_of((2**40, 2**40)) == 2**80

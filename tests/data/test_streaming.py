"""Data larger than memory: memory-mapped files stream a batch at a time.

References: the splits ``prepare`` materializes for the same file (read into memory), NumPy's
``one_hot``, a training run on the in-memory data (the streamed run must match it bit for
bit), and for memory the RssAnon of a child process sampled from /proc, against a bound
computed from a run on a tiny data set plus the fixed-size buffers (not the sample count).
"""

import json

import numpy as np
import pytest

from dlcli.data import lazy
from dlcli.data.encoding import one_hot
from dlcli.data.prepare import prepare
from dlcli.errors import DataError
from tests.data.test_prepare import spec
from tests.helpers.configs import write_config
from tests.helpers.memory import run_measured


@pytest.fixture
def stream_all(monkeypatch):
    """Stream every memory-mapped file, however small."""
    monkeypatch.setattr(lazy, "STREAM_BYTES", 0)


def _images(tmp_path, n=300):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (n, 6, 5, 3), dtype=np.uint8)  # NHWC
    y = rng.integers(0, 4, n)
    np.savez(tmp_path / "images.npz", x=x, y=y)  # stored: its members are mapped
    return tmp_path / "images.npz"


@pytest.mark.parametrize("kind, dtype", [(k, d) for k in ("standard", "minmax", "none")
                                         for d in (np.float64, np.float32)] + [("none", None)])
def test_streamed_splits_hold_the_materialized_values(tmp_path, monkeypatch, kind, dtype):
    source = spec(str(_images(tmp_path)), normalize=kind, validation_split=0.2, test_split=0.1)
    kept = prepare(source, tmp_path, 0, dtype=dtype)
    monkeypatch.setattr(lazy, "STREAM_BYTES", 0)
    streamed = prepare(source, tmp_path, 0, dtype=dtype)
    np.testing.assert_array_equal(streamed.normalizer.shift, kept.normalizer.shift)
    np.testing.assert_array_equal(streamed.normalizer.scale, kept.normalizer.scale)
    for name in ("x_train", "x_val", "x_test"):
        a, b = getattr(streamed, name), getattr(kept, name)
        assert isinstance(a, lazy.Rows) and isinstance(b, np.ndarray)
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), b)
        rows = np.array([4, 0, len(b) - 1, 4])  # any order, repeats: as a shuffled batch
        np.testing.assert_array_equal(a.take(rows), b[rows])
        np.testing.assert_array_equal(a[1:7], b[1:7])
    for name in ("y_train", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(kept, name))


def test_a_folder_of_npy_files_is_mapped(tmp_path, stream_all):
    folder = tmp_path / "set"
    folder.mkdir()
    x = np.lib.format.open_memmap(folder / "x.npy", "w+", np.float32, (50, 4))
    x[:] = np.arange(200, dtype=np.float32).reshape(50, 4)
    x.flush()
    np.save(folder / "y.npy", np.arange(50) % 3)
    s = prepare(spec(str(folder), normalize="none"), tmp_path, 0, dtype=np.float32)
    assert isinstance(s.x_train, lazy.Rows) and lazy.is_mapped(s.x_train.source)
    np.testing.assert_array_equal(np.asarray(s.x_train), np.asarray(x))
    assert s.class_names == ["0", "1", "2"]


def test_one_hot_rows_are_one_hot_per_batch():
    labels = np.array([2, 0, 1, 1, 3])
    rows = lazy.OneHotRows(labels, 4, np.float32)
    index = np.array([3, 0, 4])
    np.testing.assert_array_equal(rows.take(index), one_hot(labels, 4, dtype=np.float32)[index])
    np.testing.assert_array_equal(np.asarray(rows), one_hot(labels, 4, dtype=np.float32))
    with pytest.raises(DataError, match="label 3 is outside the 3"):
        lazy.OneHotRows(labels, 3)


def _mlp(source, loss="categorical_crossentropy", epochs=2, units=3, batch=32):
    return {"name": "stream", "seed": 4, "task": "classification",
            "data": {"source": str(source), "validation_split": 0.2, "normalize": "standard"},
            "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"},
                                 {"type": "dense", "units": units, "activation": "softmax"}],
                      "loss": loss},
            "training": {"epochs": epochs, "batch_size": batch,
                         "optimizer": {"type": "adam", "lr": 0.01}}}


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "mse"])
def test_streamed_training_is_the_in_memory_training(tmp_path, monkeypatch, loss):
    from dlcli.config.resolve import resolve
    from dlcli.train.session import train

    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(int) + (x[:, 1] > 0))
    config = _mlp(tmp_path / "d.npz", loss)
    kept = train(resolve(config), run_dir=tmp_path / "kept", threads=1)
    monkeypatch.setattr(lazy, "STREAM_BYTES", 0)
    streamed = train(resolve(config), run_dir=tmp_path / "streamed", threads=1)
    for a, b in zip(kept["history"], streamed["history"]):
        assert {k: v for k, v in a.items() if k != "time"} == \
            {k: v for k, v in b.items() if k != "time"}
    with np.load(tmp_path / "kept/checkpoints/last.npz") as a, \
            np.load(tmp_path / "streamed/checkpoints/last.npz") as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def _npy_set(folder, n, features, seed=0):
    """x (n, features) float32 and y (n,) labels written to .npy files a block at a time."""
    folder.mkdir()
    x = np.lib.format.open_memmap(folder / "x.npy", "w+", np.float32, (n, features))
    y = np.lib.format.open_memmap(folder / "y.npy", "w+", np.int64, (n,))
    rng = np.random.default_rng(seed)
    for start in range(0, n, 20_000):
        block = rng.normal(size=(min(20_000, n - start), features)).astype(np.float32)
        x[start:start + len(block)] = block
        y[start:start + len(block)] = (block[:, 0] > 0).astype(int) + (block[:, 1] > 0)
    x.flush()
    y.flush()
    del x, y
    return folder


@pytest.mark.slow
def test_training_memory_is_bounded_by_model_and_batch_not_samples(tmp_path):
    features, batch = 256, 256
    tiny = _npy_set(tmp_path / "tiny", 2_000, features)  # read into memory (below the bar)
    small = _npy_set(tmp_path / "small", 80_000, features, 1)  # 82 MB: streamed
    large = _npy_set(tmp_path / "large", 320_000, features, 2)  # 328 MB: streamed
    peaks = {}
    for name, folder in (("tiny", tiny), ("small", small), ("large", large)):
        config = write_config(tmp_path / f"{name}.yaml", _mlp(folder, epochs=1, batch=batch))
        code, peaks[name], out = run_measured(
            ["train", config, "--run-dir", tmp_path / f"run-{name}", "-q"], tmp_path)
        assert code == 0, out
    history = [json.loads(line) for line in (tmp_path / "run-large/metrics.jsonl").open()]
    assert [row["epoch"] for row in history] == [1] and np.isfinite(history[0]["val_loss"])
    # Fixed-size buffers of a streamed run beyond what the tiny run held: the float64 blocks
    # the statistics are computed over, a batch read, converted and normalized, and the
    # finiteness check's block; then per-sample integers (row numbers of the splits, the
    # epoch's order, the labels: at most 10 int64 per sample).
    buffers = lazy.BLOCK_ROWS * features * 8 * 2 + batch * features * 8 * 4 + (1 << 22) * 5
    per_sample = 80
    slack = 16 * 2**20
    assert peaks["large"] < peaks["tiny"] + buffers + per_sample * 320_000 + slack, peaks
    # a quarter of the samples: the same peak but for the per-sample integers
    assert peaks["large"] - peaks["small"] < per_sample * 240_000 + slack, peaks
    # the data itself would not fit in the bound: a float32 copy of the training split alone
    assert 0.8 * 320_000 * features * 4 > buffers + per_sample * 320_000 + slack

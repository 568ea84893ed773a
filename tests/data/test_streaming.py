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


def _uint8_images(path, n, seed=0):
    """(n, 28, 28) uint8 images written to an .npy a block at a time."""
    x = np.lib.format.open_memmap(path, "w+", np.uint8, (n, 28, 28))
    rng = np.random.default_rng(seed)
    for start in range(0, n, 50_000):
        x[start:start + 50_000] = rng.integers(0, 256, (min(50_000, n - start), 28, 28))
    x.flush()
    del x
    return path


def _trained_digits_run(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    _uint8_images(folder / "x.npy", 600)
    np.save(folder / "y.npy", np.arange(600) % 4)
    config = write_config(tmp_path / "train.yaml", {
        "name": "u8", "seed": 1, "task": "classification",
        "data": {"source": str(folder), "normalize": "standard"},
        "model": {"layers": [{"type": "flatten"},
                             {"type": "dense", "units": 16, "activation": "relu"},
                             {"type": "dense", "units": 4, "activation": "softmax"}],
                  "loss": "categorical_crossentropy"},
        "training": {"epochs": 1, "batch_size": 64, "optimizer": {"type": "sgd", "lr": 0.01}}})
    code, _, out = run_measured(["train", config, "--run-dir", tmp_path / "run", "-q"],
                                tmp_path)
    assert code == 0, out
    return tmp_path / "run"


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_predict_in_batches_writes_what_the_whole_arrays_give(tmp_path, suffix):
    from click.testing import CliRunner

    from dlcli.cli import cli
    from dlcli.train.metrics import predict
    from dlcli.use.evaluate import load_run, predict_file
    from dlcli.use.predictions import write_predictions

    run = _trained_digits_run(tmp_path)
    x = _uint8_images(tmp_path / "in.npy", 1000, seed=7)
    # in this process: the reference's products then run on as many BLAS threads (the
    # thread count changes the last bits of a float32 product)
    result = CliRunner().invoke(cli, ["predict", str(run), str(x), "-o",
                                      str(tmp_path / f"streamed{suffix}"), "--batch-size", "96"])
    assert result.exit_code == 0, result.output
    loaded = load_run(run)
    # the reference: the whole input normalized at once (float64, then cast), the forward
    # passes on the same batches of 96, one write of the whole arrays
    xs = loaded.normalizer.apply(np.load(x).reshape(1000, 1, 28, 28)).astype(np.float32)
    whole = predict(loaded.model, loaded.loss, xs, batch_size=96)
    names = [loaded.class_names[i] for i in np.argmax(whole, axis=1)]
    write_predictions(tmp_path / f"whole{suffix}", whole, names, loaded)
    if suffix == ".csv":
        assert (tmp_path / "streamed.csv").read_text() == (tmp_path / "whole.csv").read_text()
    else:
        with np.load(tmp_path / "streamed.npz") as a, np.load(tmp_path / "whole.npz") as b:
            assert a.files == b.files == ["outputs", "predicted"]
            np.testing.assert_array_equal(a["outputs"], b["outputs"])
            assert a["predicted"].dtype == b["predicted"].dtype
            np.testing.assert_array_equal(a["predicted"], b["predicted"])
    ours, ours_names = predict_file(loaded, x, batch_size=96)
    np.testing.assert_array_equal(ours, whole)
    assert ours_names == names


@pytest.mark.slow
def test_predict_on_a_large_uint8_file_stays_within_its_input_size(tmp_path):
    run = _trained_digits_run(tmp_path)
    small = _uint8_images(tmp_path / "small.npy", 2_000, seed=3)
    large = _uint8_images(tmp_path / "large.npy", 300_000, seed=4)  # 235 MB
    peaks = {}
    for name, x in (("small", small), ("large", large)):
        code, peaks[name], out = run_measured(
            ["predict", run, x, "-o", tmp_path / f"{name}.npz"], tmp_path)
        assert code == 0, out
    size = large.stat().st_size
    # the float64 copy this used to make was 8x the input; now: a batch at a time, and the
    # predicted labels (one int64 per sample) until the .npz's name array is written
    assert peaks["large"] < peaks["small"] + 0.5 * size, (peaks, size)
    assert peaks["large"] < peaks["small"] + 8 * 300_000 + 24 * 2**20, (peaks, size)
    with np.load(tmp_path / "large.npz") as out:
        assert out["outputs"].shape == (300_000, 4) and out["predicted"].shape == (300_000,)


def test_resident_bytes_count_only_what_the_process_holds(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((100, 7), np.float32))
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert lazy.resident_bytes(mapped) == 0 and lazy.resident_bytes(mapped[:, None]) == 0
    assert lazy.resident_bytes(np.zeros((100, 7), np.float32)) == 100 * 7 * 4
    index = np.arange(0, 100, 3)
    assert lazy.resident_bytes(lazy.Rows(mapped, index, None, np.float64)) == len(index) * 8
    assert lazy.resident_bytes(lazy.Rows(mapped, None, None, np.float64)) == 0
    assert lazy.resident_bytes(lazy.OneHotRows(np.arange(50) % 3, 3)) == 50 * 8


@pytest.mark.parametrize("task", ["classification", "reconstruction"])
def test_eval_of_streamed_data_is_eval_in_memory(tmp_path, monkeypatch, task):
    from dlcli.config.resolve import resolve
    from dlcli.train.session import train
    from dlcli.use.evaluate import evaluate_run, load_run

    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 6))
    label = lambda x: (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)  # noqa: E731
    np.savez(tmp_path / "d.npz", x=x, y=label(x))
    x_test = rng.normal(size=(50, 6))  # scored with all of the file by eval --data
    np.savez(tmp_path / "other.npz", x=x, y=label(x), x_test=x_test, y_test=label(x_test))
    config = _mlp(tmp_path / "d.npz", "mse", epochs=1)
    config["data"]["test_split"] = 0.2
    if task == "reconstruction":
        config["task"] = "reconstruction"
        config["model"]["layers"] = [{"type": "dense", "units": 3, "activation": "tanh"},
                                     {"type": "dense", "units": 6}]
    train(resolve(config), run_dir=tmp_path / "run", threads=1)
    run = load_run(tmp_path / "run")
    for data in (None, tmp_path / "other.npz"):
        monkeypatch.setattr(lazy, "STREAM_BYTES", 2**40)
        kept = evaluate_run(run, None, data_source=data, batch_size=16)
        monkeypatch.setattr(lazy, "STREAM_BYTES", 0)
        streamed = evaluate_run(run, None, data_source=data, batch_size=16)
        assert kept["samples"] == (60 if data is None else 350)
        if task == "reconstruction":  # PCA's SVD would need the split in memory
            assert "pca" in kept and "pca" not in streamed
            assert streamed["warnings"] == ["no PCA baseline: the data are streamed from disk "
                                            "(larger than lazy.STREAM_BYTES)"]
        assert streamed.keys() == kept.keys() - {"pca"}
        for key, value in kept.items():
            if task == "reconstruction" and key in ("mse", "mae"):
                # summed batch by batch instead of np.mean over the whole split
                assert streamed[key] == pytest.approx(value, rel=1e-12)
            elif key not in ("pca", "warnings"):
                assert streamed[key] == value, key


def test_data_parallel_training_streams_the_same_batches(tmp_path, monkeypatch):
    from dlcli.config.resolve import resolve
    from dlcli.parallel import Plan
    from dlcli.parallel.comm import Local
    from dlcli.train import session

    rng = np.random.default_rng(9)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(int) + (x[:, 1] > 0))
    weights = []
    for bar in (2**40, 0):
        monkeypatch.setattr(lazy, "STREAM_BYTES", bar)
        cfg = resolve(_mlp(tmp_path / "d.npz"))
        prep = session.prepare(cfg, 1)
        optimizer, rng_train = session.initialize(cfg, prep.model, 1)
        trainer = Plan(Local(), 4, "tree").make_trainer(
            prep.model, prep.loss, optimizer, task=prep.task, batch_size=16, epochs=2,
            rng=rng_train, seed=1)
        y = session.targets(prep.splits, prep.task, np.float32, prep.loss)[0]
        trainer.fit(prep.splits.x_train.astype(np.float32), y)
        weights.append([p.copy() for _, p, _ in prep.model.parameters()])
    assert isinstance(prep.splits.x_train, lazy.Rows)
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_init_reads_a_folder_of_npy_files(tmp_path):
    from dlcli.inspect.starter import plan

    folder = tmp_path / "set"
    folder.mkdir()
    np.save(folder / "x.npy", np.zeros((30, 4, 5, 3), np.uint8))  # NHWC images
    np.save(folder / "y.npy", np.arange(30) % 3)
    decided = plan(folder)
    assert decided["input_shape"] == [4, 5, 3]
    assert (decided["task"], decided["classes"]) == ("classification", ["0", "1", "2"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="must hold x.npy and y.npy"):
        plan(tmp_path / "empty")

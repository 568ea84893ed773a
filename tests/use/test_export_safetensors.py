"""safetensors export (best and last checkpoints, float32 and float64 runs): the file written
without a dependency is read by the ``safetensors`` library with the checkpoint's names,
shapes, dtypes and values, the normalizer and class names in its metadata; where torch is
installed it loads into the equivalent PyTorch module with ``strict=True`` and gives
``dlcli predict``'s outputs."""

import json

import numpy as np
import pytest

from dlcli.use.evaluate import load_run, predict_file
from dlcli.train import checkpoint as ckpt
from dlcli.use.export import export_run
from dlcli.use.export.safetensors import decode, encode
from tests.helpers.export_runs import fake_run, raw_inputs, write_inputs
from tests.helpers.random_stacks import random_stack

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def check_against_checkpoint(run_dir, which="best", path=None):
    path = path or run_dir / "export" / "model.safetensors"
    tensors = safetensors_numpy.load_file(str(path))
    stored = ckpt.load(run_dir / "checkpoints" / f"{which}.npz")
    assert tensors.keys() == stored["model"].keys()
    for key, value in stored["model"].items():
        assert tensors[key].dtype == value.dtype and tensors[key].shape == value.shape
        np.testing.assert_array_equal(tensors[key], value)
    from safetensors import safe_open
    with safe_open(str(path), "np") as handle:
        meta = handle.metadata()
    normalizer = json.loads(meta["normalizer"])
    np.testing.assert_array_equal(normalizer["shift"], stored["normalizer"]["shift"])
    np.testing.assert_array_equal(normalizer["scale"], stored["normalizer"]["scale"])
    assert normalizer["kind"] == str(stored["normalizer"]["kind"])
    return tensors, meta


def torch_outputs(run, x_internal):
    """The equivalent PyTorch module, loaded strictly from the export, on the normalized
    inputs; the normalization undone for reconstructions, as dlcli predict does."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    from tests.helpers.torch_module import Equivalent

    module = Equivalent(run.model)
    module.load_state_dict(load_file(str(run.run_dir / "export" / "model.safetensors")),
                           strict=True)
    x = run.normalizer.transform(x_internal, None, np.float32)
    with torch.no_grad():
        out = module(torch.from_numpy(x)).numpy()
    if run.task == "reconstruction":
        out = run.normalizer.invert(out)
        out = out.transpose(0, 2, 3, 1) if out.ndim == 4 else out
    return out


def assert_close(ours, theirs):
    # numpy.allclose's criterion with rtol = atol = 1e-5
    error = np.abs(np.asarray(ours, np.float64) - theirs) / (1.0 + np.abs(theirs))
    assert error.max() <= 1e-5, f"largest difference {error.max():.3g} (scaled)"
    if theirs.ndim == 2 and theirs.shape[1] > 1:
        np.testing.assert_array_equal(np.argmax(ours, 1), np.argmax(theirs, 1))


def test_encoding_round_trips_and_matches_the_library():
    tensors = {"a.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
               "b": np.array([1.5, -2.0], np.float64), "scalar": np.float32(3.0).reshape(())}
    data = encode(tensors, {"k": "v"})
    assert int.from_bytes(data[:8], "little") + 8 <= len(data)
    assert (8 + int.from_bytes(data[:8], "little")) % 8 == 0  # tensors 8-byte aligned
    back, meta = decode(data)
    assert meta == {"k": "v"}
    loaded = safetensors_numpy.load(data)
    for key, value in tensors.items():
        np.testing.assert_array_equal(back[key], value)
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == value.dtype


@pytest.mark.slow
def test_every_shipped_config_loads_into_safetensors_and_torch(shipped_run, tmp_path):
    export_run(shipped_run, fmt="safetensors", force=True)
    tensors, meta = check_against_checkpoint(shipped_run)
    run = load_run(shipped_run)
    if run.class_names:
        assert json.loads(meta["class_names"]) == run.class_names
    x = raw_inputs(run)
    ours, _ = predict_file(run, write_inputs(run, x, tmp_path / "inputs.npz"))
    assert_close(torch_outputs(run, x), ours)


@pytest.mark.parametrize("seed", range(100, 108))
def test_random_stacks_load_into_torch(seed, tmp_path):
    rng = np.random.default_rng(seed)
    layers, input_shape, task, loss = random_stack(rng)
    run_dir = fake_run(tmp_path / "run", layers, input_shape, task=task, loss=loss, seed=seed)
    export_run(run_dir, fmt="safetensors")
    check_against_checkpoint(run_dir)
    run = load_run(run_dir)
    x = rng.normal(0, 3, (23, input_shape[2], input_shape[0], input_shape[1]))
    ours, _ = predict_file(run, write_inputs(run, x, tmp_path / "inputs.npz"))
    assert_close(torch_outputs(run, x), ours)


def test_the_last_checkpoint_exports_its_own_weights(tmp_path):
    layers = [{"type": "dense", "units": 5, "activation": "relu"},
              {"type": "dense", "units": 3, "activation": "softmax"}]
    run_dir = fake_run(tmp_path / "run", layers, (4,), task="classification",
                       loss="categorical_crossentropy", last=True)
    files = {}
    for which in ("best", "last"):
        files[which] = export_run(run_dir, fmt="safetensors", checkpoint=which,
                                  output=tmp_path / which / "model.safetensors")["path"]
        _, meta = check_against_checkpoint(run_dir, which, files[which])
        assert meta["checkpoint"] == f"{which}.npz"
    best, last = (safetensors_numpy.load_file(files[w]) for w in ("best", "last"))
    assert not np.array_equal(best["dense1.weight"], last["dense1.weight"])


def test_a_float64_run_exports_float64_tensors(tmp_path):
    """A ``dtype: float64`` run's file holds float64 tensors (F64), the checkpoint's values
    exactly; loaded into the (float32) PyTorch module it agrees with its float64 predict."""
    from tests.helpers.export_runs import REPO, train_shipped

    run_dir = train_shipped(REPO / "configs" / "lenet.yaml", tmp_path / "run",
                            extra=["dtype=float64"])
    export_run(run_dir, fmt="safetensors")
    tensors, _ = check_against_checkpoint(run_dir)
    assert {t.dtype for t in tensors.values()} == {np.dtype(np.float64)}
    run = load_run(run_dir)
    x = raw_inputs(run)
    ours, _ = predict_file(run, write_inputs(run, x, tmp_path / "inputs.npz"))
    assert_close(torch_outputs(run, x), ours)

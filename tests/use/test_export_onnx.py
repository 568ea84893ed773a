"""ONNX export against ONNX Runtime: the exported graph of every shipped config's trained
run, and of random stacks of every layer type, gives ``dlcli predict``'s outputs within
1e-5 (float32) and the same class for every sample; ``onnx.checker`` passes; the graph has a
named input and output, a dynamic batch axis and the class names in its metadata."""

import json

import numpy as np
import pytest

from dlcli.use.evaluate import load_run, predict_file
from dlcli.use.export import export_run
from tests.helpers.export_runs import fake_run, raw_inputs, to_nhwc, write_inputs
from tests.helpers.random_stacks import random_stack

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-5


def onnx_outputs(path, x_internal: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": to_nhwc(x_internal).astype(np.float32)})[0]


def dlcli_outputs(run, x_internal, tmp_path) -> np.ndarray:
    out, _ = predict_file(run, write_inputs(run, x_internal, tmp_path / "inputs.npz"))
    return np.asarray(out)


def assert_agrees(ours, theirs, task):
    """|ours - theirs| <= 1e-5 + 1e-5 |theirs| per value (the 1e-5 is relative for large
    values, such as a reconstruction in the raw units of 0-16 pixels); the same class per
    sample."""
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    # numpy.allclose's criterion with rtol = atol = 1e-5
    error = np.abs(ours.astype(np.float64) - theirs) / (1.0 + np.abs(theirs))
    assert error.max() <= TOLERANCE, f"largest difference {error.max():.3g} (scaled)"
    if task in ("classification", "regression") and ours.ndim == 2 and ours.shape[1] > 1:
        np.testing.assert_array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))
    if task in ("binary", "multilabel"):
        np.testing.assert_array_equal(ours >= 0.5, theirs >= 0.5)
    return float(error.max())


@pytest.mark.slow
def test_every_shipped_config_agrees_with_onnx_runtime(shipped_run, tmp_path):
    run_dir = shipped_run
    export_run(run_dir, fmt="onnx", force=True)
    run = load_run(run_dir)
    x = raw_inputs(run)
    ours = onnx_outputs(run_dir / "export" / "model.onnx", x)
    assert_agrees(ours, dlcli_outputs(run, x, tmp_path), run.task)
    proto = onnx.load(str(run_dir / "export" / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["task"] == run.task
    if run.class_names:
        assert json.loads(meta["class_names"]) == run.class_names


@pytest.mark.parametrize("seed", range(16))
def test_random_stacks_agree_with_onnx_runtime(seed, tmp_path):
    rng = np.random.default_rng(seed)
    layers, input_shape, task, loss = random_stack(rng)
    run_dir = fake_run(tmp_path / "run", layers, input_shape, task=task, loss=loss, seed=seed)
    export_run(run_dir, fmt="onnx")
    run = load_run(run_dir)
    x = rng.normal(0, 3, (37, input_shape[2], input_shape[0], input_shape[1]))
    ours = onnx_outputs(run_dir / "export" / "model.onnx", x)
    assert_agrees(ours, dlcli_outputs(run, x, tmp_path), task)


def test_graph_has_named_io_and_a_dynamic_batch(tmp_path):
    layers = [{"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"},
              {"type": "flatten"}, {"type": "dense", "units": 3, "activation": "softmax"}]
    run_dir = fake_run(tmp_path / "run", layers, (5, 6, 2), task="classification",
                       loss="categorical_crossentropy", class_names=["a", "b", "c"])
    export_run(run_dir, fmt="onnx")
    proto = onnx.load(str(run_dir / "export" / "model.onnx"))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "input" and out.name == "output"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 5, 6, 2]  # height, width, channels
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 3]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["class_names"]) == ["a", "b", "c"]
    run = load_run(run_dir)
    for n in (1, 5):  # any batch size
        x = np.random.default_rng(n).normal(size=(n, 2, 5, 6))
        assert onnx_outputs(run_dir / "export" / "model.onnx", x).shape == (n, 3)
        assert_agrees(onnx_outputs(run_dir / "export" / "model.onnx", x),
                      dlcli_outputs(run, x, tmp_path), "classification")

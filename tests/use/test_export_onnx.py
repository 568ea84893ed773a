"""ONNX export against ONNX Runtime: the exported graph of every shipped config's trained
run, and of random stacks of every layer type (checked to cover dlcli's registries), gives
``dlcli predict``'s outputs within 1e-5 + 1e-5·|value| (float32; why relative for large
values: docs/export.md) and the same class for every sample, for the best and the last
checkpoint and for float64 runs; ``onnx.checker`` passes; the graph has a named input and
output, a dynamic batch axis and the class names in its metadata."""

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


STACK_SEEDS = range(16)


def _activations_of(layer: dict) -> set[str]:
    spec = layer.get("activation")
    if isinstance(spec, dict):
        return {spec["type"]}
    return {spec} if spec is not None else set()


def test_the_random_stacks_use_every_registered_layer_type_and_activation():
    """A layer type or activation added to dlcli's registries without a place in the random
    stacks (and so without an exporter tested against ONNX Runtime) fails here."""
    from dlcli.nn.model import load_layer_modules
    from dlcli.registry import ACTIVATIONS, LAYERS
    from dlcli.use.export.onnx import LAYERS as EXPORTERS

    load_layer_modules()
    types, activations = set(), set()
    for seed in STACK_SEEDS:  # the stacks of test_random_stacks_agree_with_onnx_runtime
        layers, *_ = random_stack(np.random.default_rng(seed))
        for layer in layers:
            types.add(layer["type"])
            activations |= _activations_of(layer)
    assert types == set(LAYERS.names()), "random stacks miss " + str(
        set(LAYERS.names()) - types)
    assert activations == set(ACTIVATIONS.names()), "random stacks miss " + str(
        set(ACTIVATIONS.names()) - activations)
    assert set(LAYERS.names()) - {"activation"} <= set(EXPORTERS)


@pytest.mark.parametrize("seed", STACK_SEEDS)
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


def test_the_last_checkpoint_exports_its_own_weights(tmp_path):
    """``dlcli export --checkpoint last`` gives ``dlcli predict --checkpoint last``'s outputs,
    not best's (the two checkpoints hold different weights)."""
    from click.testing import CliRunner

    from dlcli.cli import cli

    layers = [{"type": "conv2d", "filters": 3, "kernel_size": 3, "activation": "tanh"},
              {"type": "maxpool2d", "pool_size": 2},
              {"type": "dense", "units": 4, "activation": "softmax", "flatten_input": True}]
    run_dir = fake_run(tmp_path / "run", layers, (6, 6, 2), task="classification",
                       loss="categorical_crossentropy", last=True)
    outputs = {}
    for which in ("best", "last"):
        path = tmp_path / which / "model.onnx"
        result = CliRunner().invoke(cli, ["export", str(run_dir), "--format", "onnx",
                                          "--checkpoint", which, "-o", str(path)])
        assert result.exit_code == 0, result.output
        x = np.random.default_rng(1).normal(0, 3, (29, 2, 6, 6))
        run = load_run(run_dir, which)
        outputs[which] = onnx_outputs(path, x)
        assert_agrees(outputs[which], dlcli_outputs(run, x, tmp_path), "classification")
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert meta["checkpoint"] == f"{which}.npz"
    assert np.abs(outputs["best"] - outputs["last"]).max() > 0.01


@pytest.mark.parametrize("name", ["lenet", "conv_autoencoder"])
def test_a_float64_run_exports_as_float32_and_agrees(name, tmp_path):
    """A ``dtype: float64`` run (weights and arithmetic in float64) exports as the float32
    graph (its weights cast) and agrees with its float64 ``dlcli predict`` as a float32 run
    does."""
    from tests.helpers.export_runs import REPO, train_shipped

    config = next((REPO / "configs").rglob(f"{name}.yaml"))
    run_dir = train_shipped(config, tmp_path / "run", extra=["dtype=float64"])
    run = load_run(run_dir)
    assert run.model.dtype == np.float64
    export_run(run_dir, fmt="onnx")
    proto = onnx.load(str(run_dir / "export" / "model.onnx"))
    assert {i.data_type for i in proto.graph.initializer if i.name.endswith("weight")} == \
        {onnx.TensorProto.FLOAT}
    x = raw_inputs(run)
    theirs = dlcli_outputs(run, x, tmp_path)
    ours = onnx_outputs(run_dir / "export" / "model.onnx", x)
    assert_agrees(ours, theirs, run.task)

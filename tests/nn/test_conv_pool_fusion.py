"""A conv2d followed by a tiled max pooling (``dlcli.nn.fusion.ConvThenPool``).

In training the pooling reads the convolution's output where its product wrote it and
writes its gradient where the convolution's backward reads it (``WideOutput``). The
reference is the definition: the same layers run one after another, each on ordinary
(N, C, H, W) arrays. Outputs, argmax, input gradients and parameter gradients must be the
same bit for bit, over several steps (the buffers are reused) and on inputs full of ties.
"""

import numpy as np
import pytest

from dlcli.nn import fusion
from dlcli.nn.functional import conv as F
from dlcli.nn.functional.conv_stride1 import WideGradient, WideOutput
from dlcli.nn.fusion import ConvThenPool
from dlcli.nn.model import Model
from tests.helpers.ops import built_model, planned, written_order


def _state(model):
    pools = [layer for layer in model.layers if layer.type_name == "maxpool2d"]
    return ([p.argmax.copy() for p in pools],
            {key: grad.copy() for key, _, grad in model.parameters()})


def _run(run, model, x, dy):
    model.zero_grad()
    out, dx = run(model, x, dy)
    return (out.copy(), dx.copy(), *_state(model))


def _check_same(layers, input_shape, dtype=np.float64, batches=(5, 5, 3), seed=0):
    """The planned ops on one model, the ops one by one on a twin with the same weights
    (each keeps its own buffers), over the same batches (the smaller last batch changes
    buffer shapes). Returns whether the pooling read the convolution's output in its
    product layout and handed a WideGradient back in every step."""
    rng = np.random.default_rng(seed)
    model = built_model(layers, input_shape, dtype, seed)
    twin = built_model(layers, input_shape, dtype, seed)
    step = model.plan(False)[0]
    handed_back = []
    backward = fusion.conv2d_backward

    def spy(dy, *args, **kwargs):
        handed_back.append(isinstance(dy, WideGradient))
        return backward(dy, *args, **kwargs)

    used = []
    fusion.conv2d_backward = spy
    try:
        for n in batches:
            # small integers: ties inside windows, windows without a positive value
            x = rng.integers(-3, 3, size=(n, *input_shape)).astype(dtype)
            dy = rng.standard_normal((n, *model.output_shape)).astype(dtype)
            ref = _run(written_order, twin, x, dy)
            got = _run(planned, model, x, dy)
            used.append(step.handed_over)
            assert used[-1] == handed_back[-1]  # both directions in place, or neither
            _check_equal(got, ref)
    finally:
        fusion.conv2d_backward = backward
    assert isinstance(step, ConvThenPool)
    assert len(set(used)) == 1
    # what dlcli shapes assumes from the shapes alone (no activation counted for the conv)
    assert ConvThenPool.hands_over(model.layers[0], input_shape, model.layers[1:3]) == used[-1]
    return used[-1]


def _check_equal(got, ref):
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    for a, b in zip(got[2], ref[2]):
        np.testing.assert_array_equal(a, b)
    for key in ref[3]:
        np.testing.assert_array_equal(got[3][key], ref[3][key], err_msg=key)


def _layers(filters, kernel, pool=2, padding=0, activation="relu", **conv):
    conv_layer = {"type": "conv2d", "filters": filters, "kernel_size": kernel,
                  "padding": padding, **conv}
    if activation:
        conv_layer["activation"] = activation
    return [conv_layer, {"type": "maxpool2d", "pool_size": pool},
            {"type": "dense", "units": 3, "flatten_input": True}]


def _rows(filters, kernel, input_shape, padding=0):
    """The row block R the stride-1 path picks for this convolution."""
    x = np.zeros((2, *input_shape))
    w = np.zeros((filters, input_shape[0], kernel, kernel))
    return F.conv2d_forward(x, w, None, 1, padding)[1]["s1"].r


# (filters, kernel, input (C, H, W), padding, pool): R and the pooled layout they give
FUSED = [
    (8, 5, (3, 32, 32), 0, 2),    # LeNet conv1: R = 4, 28 rows = 7 blocks of 4
    (16, 5, (8, 14, 14), 0, 2),   # LeNet conv2: R = 2
    (32, 3, (2, 8, 8), 1, 2),     # R = 1
    (4, 3, (1, 18, 18), 0, 2),    # R = 2 with 4 filters
    (2, 7, (1, 22, 22), 0, 2),    # R = 8: 16 rows = 2 blocks of 8
    (32, 3, (1, 9, 9), 1, 3),     # R = 1 with 3x3 windows
    (8, 5, (3, 32, 32), 0, 4),    # R = 4 = the window height
]


@pytest.mark.parametrize("filters, kernel, shape, padding, pool", FUSED)
@pytest.mark.parametrize("activation", ["relu", None])
def test_fused_steps_equal_the_written_order(filters, kernel, shape, padding, pool, activation):
    rows = _rows(filters, kernel, shape, padding)
    out_h = shape[1] + 2 * padding - kernel + 1
    assert rows == 1 or (rows % pool == 0 and out_h % rows == 0)  # the cases are what they say
    if (filters, kernel) == (2, 7):
        assert rows == 8
    used = _check_same(_layers(filters, kernel, pool, padding, activation), shape)
    assert used


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lenet_conv1_geometry_in_both_dtypes(dtype):
    assert _check_same(_layers(8, 5), (3, 32, 32), dtype)


def test_a_standalone_relu_layer_between_fuses_too():
    layers = [{"type": "conv2d", "filters": 16, "kernel_size": 5},
              {"type": "activation", "activation": "relu"},
              {"type": "maxpool2d", "pool_size": 2},
              {"type": "dense", "units": 3, "flatten_input": True}]
    assert _check_same(layers, (8, 14, 14))


def test_flipped_kernels_and_no_bias():
    assert _check_same(_layers(16, 5, flip_kernel=True, use_bias=False), (8, 14, 14))


# Layouts the pooling cannot view in place: the ops then run one after the other.
UNFUSED = [
    (8, 5, (3, 30, 30), 0, 2),    # R = 4 and 26 rows: the last block holds garbage rows
    (8, 5, (3, 32, 32), 0, 3),    # R = 4 is not a multiple of the 3-row window
    (32, 3, (2, 9, 9), 0, 2),     # 7x7 output: 2x2 windows leave a row and a column out
]


@pytest.mark.parametrize("filters, kernel, shape, padding, pool", UNFUSED)
def test_layouts_that_do_not_fit_run_unfused_with_the_same_results(filters, kernel, shape,
                                                                   padding, pool):
    assert not _check_same(_layers(filters, kernel, pool, padding), shape)


def test_a_strided_convolution_is_paired_but_hands_over_plain_arrays():
    assert not _check_same(_layers(4, 3, stride=2), (1, 10, 10))


def test_overlapping_pools_and_other_activations_are_not_paired():
    overlapping = Model.from_config(
        [{"type": "conv2d", "filters": 4, "kernel_size": 3},
         {"type": "maxpool2d", "pool_size": 3, "stride": 2}], (1, 9, 9))
    assert not any(isinstance(op, ConvThenPool) for op in overlapping.plan(False))
    apart = Model.from_config(
        [{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "sigmoid"},
         {"type": "maxpool2d", "pool_size": 2}], (1, 10, 10))
    assert not any(isinstance(op, ConvThenPool) for op in apart.plan(False))


def test_evaluation_and_forward_to_get_plain_arrays():
    model = built_model(_layers(8, 5), (3, 32, 32), np.float32)
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    step = model.plan(False)[0]
    evaluated = model.forward(x)
    assert not step.handed_over
    trained = model.forward(x, training=True)
    assert step.handed_over
    np.testing.assert_array_equal(evaluated, trained)
    conv_out = model.forward_to(x, model.layers[0].name, training=True)
    assert isinstance(conv_out, np.ndarray) and conv_out.shape == (4, 8, 28, 28)


def test_a_gradient_from_an_earlier_forward_is_refused():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 3, 5, 5)).astype(np.float32)
    workspace = {}
    y, _ = F.conv2d_forward(rng.standard_normal((4, 3, 32, 32)).astype(np.float32), w,
                            workspace=workspace, wide_for=(2, 2))
    assert isinstance(y, WideOutput)
    y.grad_planes((2, 2))[...] = 1.0
    gradient = y.gradient()
    _, cache = F.conv2d_forward(rng.standard_normal((2, 3, 32, 32)).astype(np.float32), w,
                                workspace=workspace)
    with pytest.raises(ValueError, match="earlier forward"):
        F.conv2d_backward(gradient, cache, workspace=workspace)


def test_a_linked_unpool_reads_the_fused_pool():
    layers = [
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": 1, "activation": "relu"},
        {"type": "maxpool2d", "name": "p", "pool_size": 2},
        {"type": "conv2d", "filters": 8, "kernel_size": 1, "activation": "relu"},
        {"type": "maxunpool2d", "pool": "p"},
        {"type": "conv2d", "filters": 1, "kernel_size": 3, "padding": 1},
    ]
    assert _check_same(layers, (1, 8, 8))

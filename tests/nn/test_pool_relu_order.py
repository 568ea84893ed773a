"""A ReLU followed by max pooling runs as pool-then-ReLU (``dlcli.nn.fusion.PoolThenReLU``).

The reference is the definition: the same layers run one after another in the written
order (ReLU, then pooling), forward and backward. The reordered model must give the same
outputs, the same argmax (what a linked ``maxunpool2d`` reads), the same ReLU mask (what
the dead-unit diagnostics read) and the same gradients, on inputs full of ties and of
windows with no positive value.
"""

import numpy as np
import pytest

from dlcli.nn.activations import ReLU
from dlcli.nn.fusion import ConvThenPool, PoolThenReLU
from dlcli.nn.model import Model
from dlcli.train.diagnostics import dead_fraction
from tests.helpers.ops import built_model, planned, written_order


def _model(layers, input_shape, seed=0):
    return built_model(layers, input_shape, np.float64, seed)


def _tied_input(rng, shape):
    # Small integers: many equal values in a window, and many windows with no positive value.
    return rng.integers(-3, 2, size=shape).astype(np.float64)


def _state(model):
    pools = [l for l in model.layers if l.type_name == "maxpool2d"]
    relus = [op for op in model.ops if isinstance(op, ReLU)]
    return ([p.argmax.copy() for p in pools], [r._mask.copy() for r in relus],
            {k: g.copy() for k, _, g in model.parameters()})


def _compare(layers, input_shape, batch=5, seed=0):
    rng = np.random.default_rng(seed)
    x = _tied_input(rng, (batch, *input_shape))
    model = _model(layers, input_shape, seed)
    out_shape = model.output_shape
    dy = rng.standard_normal((batch, *out_shape))

    model.zero_grad()
    ref_out, ref_dx = written_order(model, x, dy)
    ref_argmax, ref_masks, ref_grads = _state(model)

    model.zero_grad()
    out, dx = planned(model, x, dy)
    plan = model.plan(False)
    argmax, masks, grads = _state(model)

    plan = [op.after if isinstance(op, ConvThenPool) else op for op in plan]
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(dx, ref_dx)
    for a, b in zip(argmax, ref_argmax):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(masks, ref_masks):  # the swapped ReLU's mask has the pooled shape
        assert dead_fraction(a) == dead_fraction(b)
        assert a.shape != b.shape or np.array_equal(a, b)
    for key in grads:
        np.testing.assert_array_equal(grads[key], ref_grads[key], err_msg=key)
    return plan


CONV_RELU_POOL = [
    {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": 1, "activation": "relu"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "dense", "units": 4, "flatten_input": True},
]


def test_conv_relu_then_2x2_pool_matches_the_written_order():
    plan = _compare(CONV_RELU_POOL, (2, 8, 8))
    pairs = [op for op in plan if isinstance(op, PoolThenReLU)]
    assert len(pairs) == 1 and pairs[0].swapped


def test_the_argmax_of_a_window_without_a_positive_value_is_its_first_offset():
    model = _model(CONV_RELU_POOL, (2, 8, 8))
    x = -np.abs(np.random.default_rng(1).standard_normal((3, 2, 8, 8))) - 1
    model.layers[0].params["bias"][...] = -5.0  # every pre-activation < 0
    model.forward(x, training=True)
    pool = model.layers[1]
    assert np.all(pool.argmax == 0)  # relu gives a window of zeros: the first one wins
    assert PoolThenReLU.applies(model.activation_of(model.layers[0]), pool)


def test_overlapping_windows_that_cover_the_input_are_swapped():
    layers = [{"type": "activation", "activation": "relu"},
              {"type": "maxpool2d", "pool_size": 3, "stride": 2},
              {"type": "dense", "units": 3, "flatten_input": True}]
    plan = _compare(layers, (2, 9, 9))  # (9 - 3) % 2 == 0: every pixel is in a window
    assert plan[0].swapped


@pytest.mark.parametrize("pool, shape", [
    ({"pool_size": 2}, (2, 7, 7)),                   # the last row and column are dropped
    ({"pool_size": 2, "padding": 1}, (2, 6, 6)),     # padded
    ({"pool_size": 2, "stride": 3}, (2, 8, 8)),      # gaps between windows
])
def test_pools_that_skip_pixels_or_pad_keep_the_written_order(pool, shape):
    layers = [{"type": "conv2d", "filters": 2, "kernel_size": 1, "activation": "relu"},
              {"type": "maxpool2d", **pool},
              {"type": "dense", "units": 3, "flatten_input": True}]
    plan = _compare(layers, shape)
    assert not any(isinstance(op, PoolThenReLU) and op.swapped for op in plan)


def test_a_linked_unpool_sees_the_same_positions():
    layers = [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": 1, "activation": "relu"},
        {"type": "maxpool2d", "name": "p", "pool_size": 2},
        {"type": "conv2d", "filters": 2, "kernel_size": 1, "activation": "relu"},
        {"type": "maxunpool2d", "pool": "p"},
        {"type": "conv2d", "filters": 1, "kernel_size": 3, "padding": 1},
    ]
    _compare(layers, (1, 6, 6))


def test_a_unit_alive_only_where_no_window_reads_still_counts_as_alive():
    # 7x7 under 2x2 pooling: row 6 and column 6 are in no window. Were the pair swapped, the
    # ReLU mask would only see pooled values and call this channel dead.
    layers = [{"type": "activation", "activation": "relu"},
              {"type": "maxpool2d", "pool_size": 2},
              {"type": "dense", "units": 2, "flatten_input": True}]
    model = _model(layers, (1, 7, 7))
    x = -np.ones((2, 1, 7, 7))
    x[:, :, 6, :] = 1.0
    model.forward(x, training=True)
    assert dead_fraction(model.layers[0]._mask) == 0.0


def test_other_activations_keep_their_place():
    sigmoid = {"type": "activation", "activation": "sigmoid"}
    assert not PoolThenReLU.applies(Model.from_config([sigmoid], (1, 4, 4)).layers[0],
                                    Model.from_config([{"type": "maxpool2d", "pool_size": 2}],
                                                      (1, 4, 4)).layers[0])

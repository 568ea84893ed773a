"""``dlcli shapes`` counts the scratch buffers layers keep between steps (``workspace_bytes``).

The reference is what a real training step leaves behind: the bytes of every array in each
layer's ``workspace`` after a forward and backward pass on a full batch.
"""

import numpy as np
import pytest

from dlcli.nn.model import Model
from dlcli.inspect.shapes import layer_table

LENET = [
    {"type": "conv2d", "filters": 8, "kernel_size": 5, "activation": "relu"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "conv2d", "filters": 16, "kernel_size": 5, "activation": "relu"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "dense", "units": 10, "flatten_input": True},
]

CASES = {
    "lenet": (LENET, (3, 32, 32)),
    "padded, strided, no bias": ([
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "stride": 2, "padding": 1,
         "use_bias": False},
        {"type": "conv2d", "filters": 6, "kernel_size": 3, "stride": [2, 1], "padding": "same"},
        {"type": "conv2d", "filters": 64, "kernel_size": 3, "padding": 1},  # wide: one row
        {"type": "maxpool2d", "pool_size": 3, "stride": 3},
        {"type": "maxpool2d", "pool_size": 2, "stride": 1},  # overlapping: no planes
    ], (2, 25, 23)),
    "pool first": ([
        {"type": "maxpool2d", "pool_size": 2},  # no input gradient: no backward mask
        {"type": "conv2d", "filters": 2, "kernel_size": 3},
        {"type": "maxpool2d", "pool_size": 2},
    ], (2, 12, 12)),
    "transposed": ([
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": 1, "activation": "relu"},
        {"type": "conv_transpose2d", "filters": 2, "kernel_size": 3, "stride": 2,
         "padding": 1, "output_padding": 1},
        {"type": "conv_transpose2d", "filters": 1, "kernel_size": 2, "stride": 2},
    ], (1, 6, 6)),
}


def _step(layers, input_shape, batch):
    model = Model.from_config(layers, input_shape, np.float32)
    model.build(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, *input_shape)).astype(np.float32)
    out = model.forward(x, training=True)
    model.backward(rng.standard_normal(out.shape).astype(np.float32))
    return model


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_layer_estimate_is_what_a_step_keeps(case):
    layers, input_shape = CASES[case]
    batch = 5
    model = _step(layers, input_shape, batch)
    for index, (layer, in_shape, _) in enumerate(model.shapes()):
        kept = sum(a.nbytes for a in getattr(layer, "workspace", {}).values())
        assert layer.workspace_bytes(in_shape, batch, 4, need_input_grad=index > 0) == kept, \
            layer.name


def test_an_evaluation_batch_leaves_the_training_buffers_as_they_were():
    batch = 5
    model = _step(LENET, (3, 32, 32), batch)
    before = {(layer.name, key): buf for layer in model.layers
              for key, buf in getattr(layer, "workspace", {}).items()}
    model.forward(np.zeros((40, 3, 32, 32), np.float32), training=False)
    after = {(layer.name, key): buf for layer in model.layers
             for key, buf in getattr(layer, "workspace", {}).items()}
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)  # the same arrays, not resized


def test_the_shapes_report_adds_them_to_the_step_memory():
    batch = 7
    model = _step(LENET, (3, 32, 32), batch)
    kept = sum(a.nbytes for layer in model.layers
               for a in getattr(layer, "workspace", {}).values())
    memory = layer_table(model, batch, {"type": "adam"})["memory_bytes"]
    assert memory["workspaces"] == kept > 0
    assert memory["total"] == sum(v for k, v in memory.items() if k != "total")


# SGD's update is two BLAS calls where dlcli.nn.blas finds NumPy's OpenBLAS and the model
# has at least blas.MIN_SIZE parameters (b = mu*b + g, theta += -lr*b), else NumPy passes
# through a work array for lr * b: ``(blas, numpy)``
_SGD_TMP = (0, 1)
# LeNet above: 608 + 3,216 + 4,010 = 7,834 parameters, under blas.MIN_SIZE (32,768); the
# LeNet of figure 3.5 (with FC3 and FC4): 62,958, past it
LENET_FIG_3_5 = LENET[:4] + [
    {"type": "dense", "units": 120, "activation": "relu", "flatten_input": True},
    {"type": "dense", "units": 84, "activation": "relu"},
    {"type": "dense", "units": 10},
]


@pytest.mark.parametrize("layers", [LENET, LENET_FIG_3_5], ids=["lenet", "lenet_fig_3_5"])
@pytest.mark.parametrize("config, arrays", [
    ({"type": "sgd"}, _SGD_TMP),                                # the work array for lr * g
    ({"type": "sgd", "momentum": 0.9}, (1, 2)),                 # + the momentum buffer
    ({"type": "sgd", "momentum": 0.9, "nesterov": True}, (2, 3)),  # + the Nesterov direction
    ({"type": "sgd", "weight_decay": 0.1}, (1, 2)),             # + g + weight_decay * theta
    ({"type": "momentum"}, (1, 2)),
    ({"type": "rmsprop"}, 2),
    ({"type": "rmsprop", "momentum": 0.5, "centered": True}, 4),
    ({"type": "adam"}, 3),                                      # m, v and a work array
    ({"type": "adam", "amsgrad": True}, 4),
    ({"type": "adamw"}, 3),
])
def test_optimizer_memory_counts_what_it_keeps_between_steps(config, arrays, layers):
    # the counts by hand from the update formulas (dlcli/nn/optim/optimizers.py), checked against a
    # real optimizer on a real model: the packed buffers it holds after a few steps
    import dlcli.nn.optim  # noqa: F401 - registers the optimizers
    from dlcli.nn import blas
    from dlcli.registry import OPTIMIZERS
    from dlcli.inspect.shapes import optimizer_slots

    options = dict(config)
    optimizer = OPTIMIZERS.get(options.pop("type"))(**options)
    model = _step(layers, (3, 32, 32), 2)
    total = model.flat_buffers().params.size
    assert total in (7834, 62958)
    if isinstance(arrays, tuple):
        arrays = arrays[0] if blas.available and total >= blas.MIN_SIZE else arrays[1]
    assert optimizer_slots(config, total) == arrays
    for _ in range(2):
        optimizer.step(model.parameters(), model.flat_buffers())
    assert optimizer._packed  # the whole-buffer path, whose work arrays live with its layout
    dicts = [*optimizer.state.values(), *optimizer._scratch.values(), optimizer._packed["scratch"]]
    kept = [a for entries in dicts for a in entries.values() if a.size > 1]
    bases = {id(a.base if a.base is not None else a): (a.base if a.base is not None else a)
             for a in kept}
    assert sum(b.size for b in bases.values()) == arrays * total


def test_kept_activations_count_a_relu_after_its_pool_at_the_pooled_size():
    # LeNet (3, 32, 32): conv1's output stays in its product buffer (a workspace) for pool1
    # to read (ConvThenPool), its ReLU runs on the pooled 8*14*14 = 1568; likewise conv2,
    # ReLU on 16*5*5 = 400; then the pools' outputs and the dense layer's 10
    model = Model.from_config(LENET, (3, 32, 32), np.float32)
    per_sample = 3 * 32 * 32 + 1568 + 1568 + 400 + 400 + 10
    assert layer_table(model, 3, {"type": "sgd"})["memory_bytes"]["activations"] == \
        per_sample * 3 * 4
    # A 30x30 input: conv1's 26 output rows are not whole blocks of its R = 4, so it hands
    # over a (8, 26, 26) array (counted) before its ReLU runs on the pooled 8*13*13
    model = Model.from_config(LENET[:2], (3, 30, 30), np.float32)
    assert layer_table(model, 1, {"type": "sgd"})["memory_bytes"]["activations"] == \
        (3 * 30 * 30 + 8 * 26 * 26 + 8 * 13 * 13 + 8 * 13 * 13) * 4
    # No activation between: the fused convolution keeps nothing of its own
    plain = [dict(LENET[0], activation=None), LENET[1]]
    model = Model.from_config(plain, (3, 32, 32), np.float32)
    assert layer_table(model, 1, {"type": "sgd"})["memory_bytes"]["activations"] == \
        (3 * 32 * 32 + 8 * 14 * 14) * 4
    # A standalone relu layer between: fused too (the ReLU runs on the pooled values)
    apart = [plain[0], {"type": "activation", "activation": "relu"}, LENET[1]]
    model = Model.from_config(apart, (3, 32, 32), np.float32)
    assert layer_table(model, 1, {"type": "sgd"})["memory_bytes"]["activations"] == \
        (3 * 32 * 32 + 8 * 14 * 14 + 8 * 14 * 14) * 4
    # a 7x7 map under 2x2 pooling is not covered: the ReLU keeps its place and its size
    uncovered = Model.from_config([{"type": "activation", "activation": "relu"},
                                   {"type": "maxpool2d", "pool_size": 2}], (1, 7, 7))
    assert layer_table(uncovered, 1, {"type": "sgd"})["memory_bytes"]["activations"] == \
        (49 + 49 + 9) * 4

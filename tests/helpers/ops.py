"""Running a model's ops one at a time: the reference the execution plan's fused ops
(``PoolThenReLU``, ``ConvThenPool`` in ``dlcli.nn.fusion``) are compared with."""

import numpy as np

from dlcli.nn.model import Model


def built_model(layers, input_shape, dtype=np.float64, seed=0) -> Model:
    """A built model whose first layer also computes its input gradient (to compare it)."""
    model = Model.from_config(layers, input_shape, dtype)
    model.build(np.random.default_rng(seed))
    model.layers[0].need_input_grad = True
    return model


def written_order(model, x, dy):
    """Forward and backward through ``model.ops`` one op at a time, unfused:
    ``(output, input gradient)``."""
    ops = list(model.ops)
    for op in ops:
        x = op.forward(x, True)
    out = x
    for op in reversed(ops):
        dy = op.backward(dy)
    return out, dy


def planned(model, x, dy):
    """``Model.forward`` and ``Model.backward``'s op loop, keeping the input gradient."""
    out = model.forward(x, training=True)
    for op in reversed(model.plan(False)):
        dy = op.backward(dy)
    return out, dy

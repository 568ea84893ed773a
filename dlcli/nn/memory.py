"""The rows of ``dlcli shapes`` and the memory of one training step, from the layers' shapes
alone: parameters, gradients, optimizer state, kept activations and layer workspaces."""

import numpy as np

from dlcli.nn import fusion
from dlcli.nn.layers.base import display_shape, size_of


def optimizer_slots(opt: dict, params: int = 1, dtype=np.float32) -> int:
    """Parameter-sized arrays the optimizer of config ``opt`` keeps between steps for a model
    of ``params`` values (:meth:`dlcli.nn.optim.Optimizer.parameter_slots`)."""
    import dlcli.nn.optim  # noqa: F401 - registers the optimizers
    from dlcli.registry import OPTIMIZERS
    config = dict(opt)
    return OPTIMIZERS.get(config.pop("type"))(**config).parameter_slots(params, dtype)


def layer_table(model, batch_size: int, optimizer: dict) -> dict:
    """The rows of ``dlcli shapes`` (the first row is the input) and the memory estimate.

    Memory for one training step, in bytes of the compute dtype: parameters, gradients,
    optimizer state and work arrays (Adam: two moments and one work array), the activations
    kept for backpropagation (the input and every layer's and activation's output, times the
    batch size), and the scratch buffers layers keep between steps (convolutions' column
    matrices, pooling planes; ``Layer.workspace_bytes``). Short-lived temporaries within a
    step are not counted.
    """
    itemsize = np.dtype(model.dtype).itemsize
    rows = [{"name": "input", "type": "input", "output_shape": list(display_shape(model.input_shape)),
             "size": size_of(model.input_shape), "params": 0, "mult_adds": 0, "activation": None}]
    kept = size_of(model.input_shape)
    workspaces = 0
    walk = model.shapes()
    ops = model.ops
    for index, (layer, in_shape, out_shape) in enumerate(walk):
        # training never needs the data's gradient: the first layer skips it
        workspaces += layer.workspace_bytes(in_shape, batch_size, itemsize,
                                            need_input_grad=index > 0)
        params = sum(size_of(s) for s in layer.param_shapes(in_shape).values())
        attached = model.activation_of(layer)
        act = attached.activation_name if attached is not None else None
        if layer.type_name == "activation":
            act = layer.activation_name
        rows.append({"name": layer.name, "type": layer.type_name,
                     "output_shape": list(display_shape(out_shape)), "size": size_of(out_shape),
                     "params": params, "mult_adds": int(layer.mult_adds(in_shape)),
                     "activation": act})
        position = ops.index(attached if attached is not None else layer) + 1
        following = [(op, model.layer_of(op)) for op in ops[position:position + 2]]
        after = ops[ops.index(layer) + 1:][:3]
        kept += _kept_outputs(layer, attached, in_shape, out_shape, following, after,
                              {row[0]: row[2] for row in walk})
    total = sum(r["params"] for r in rows)
    slots = optimizer_slots(optimizer, total, model.dtype)
    memory = {
        "parameters": total * itemsize,
        "gradients": total * itemsize,
        "optimizer_state": slots * total * itemsize,
        "activations": kept * batch_size * itemsize,
        "workspaces": workspaces,
    }
    memory["total"] = sum(memory.values())
    return {"layers": rows, "total_params": total,
            "total_mult_adds": sum(r["mult_adds"] for r in rows),
            "batch_size": batch_size, "dtype": np.dtype(model.dtype).name,
            "memory_bytes": memory}


def _kept_outputs(layer, attached, in_shape, out_shape, following, after, out_shapes) -> int:
    """Values per sample the layer and its ``attached`` activation output. ``following``:
    ``(op, its layer)`` for the next ops after both, up to two; ``after``: the ops after
    the layer itself; ``out_shapes``: each layer's output shape. A ReLU that runs after the
    max pooling it precedes outputs the pooled size, and a convolution that hands its output
    to that pooling in its product layout makes none (the product's buffer is one of its
    workspaces): :mod:`dlcli.nn.fusion` says which."""
    relu = attached if attached is not None else layer
    own = size_of(out_shape) if attached is not None else 0
    activation = size_of(out_shape)
    if following and fusion.relu_runs_pooled(relu, following[0][0], out_shape[1:]):
        activation = size_of(out_shapes[following[0][1]])
    if after and fusion.conv_hands_over(layer, in_shape, after):
        own = 0
        if attached is None:
            activation = 0
    return own + activation

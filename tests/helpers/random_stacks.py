"""Random layer stacks that use every layer type and activation dlcli has.

``random_stack(rng)`` returns ``(layers, input_shape (h, w, c), task, loss)``: an image body
of convolutions (padding int / pair / same / valid, strides, flipped kernels), max and
average pooling (padded, overlapping), max unpooling linked to its pool, transposed
convolutions with output padding, reshapes, dropout and standalone activations, then a head
(flatten, or a dense layer flattening its input) ending in a random output activation; or a
reconstruction stack (its output has the input's shape). Candidates whose shapes do not
work out are drawn again.
"""

import numpy as np

ACTIVATIONS = ["identity", "binary_step", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]


def _activation(rng, hidden=True):
    # binary_step inside a stack is a step function of rounded values; kept to the head
    names = [a for a in ACTIVATIONS if not (hidden and a == "binary_step")]
    name = str(rng.choice(names))
    if name == "leaky_relu":
        return {"type": "leaky_relu", "negative_slope": float(rng.uniform(0.01, 0.5))}
    return name


def _conv(rng, filters=None):
    padding = [0, 1, [1, 0], "same", "valid"][rng.integers(5)]
    layer = {"type": "conv2d", "filters": int(filters or rng.integers(2, 5)),
             "kernel_size": int(rng.integers(1, 4)) if rng.random() < 0.7 else [2, 3],
             "stride": int(rng.integers(1, 3)), "padding": padding,
             "flip_kernel": bool(rng.random() < 0.5), "use_bias": bool(rng.random() < 0.8)}
    if rng.random() < 0.6:
        layer["activation"] = _activation(rng)
    return layer


def _block(rng, index, pools):
    kind = rng.choice(["conv", "maxpool", "avgpool", "unpool", "deconv", "reshape", "dropout",
                       "activation"])
    if kind == "conv":
        return [_conv(rng)]
    if kind in ("maxpool", "avgpool"):
        pool = int(rng.integers(2, 4))
        layer = {"type": f"{kind}2d", "pool_size": pool, "stride": int(rng.integers(1, pool + 1)),
                 "padding": int(rng.integers(0, pool // 2 + 1))}
        return [layer]
    if kind == "unpool":  # a pool, maybe a shape-keeping layer, its unpooling
        name = f"pool{index}"
        pool = int(rng.integers(2, 4))
        layers = [{"type": "maxpool2d", "name": name, "pool_size": pool, "stride": pool,
                   "padding": int(rng.integers(0, pool // 2 + 1))}]
        if rng.random() < 0.5:
            layers.append({"type": "activation", "activation": "relu"})
        layers.append({"type": "maxunpool2d", "pool": name})
        return layers
    if kind == "deconv":
        stride = int(rng.integers(1, 3))
        layer = {"type": "conv_transpose2d", "filters": int(rng.integers(1, 4)),
                 "kernel_size": int(rng.integers(1, 4)), "stride": stride,
                 "padding": int(rng.integers(0, 2)), "output_padding": int(rng.integers(0, stride))}
        if rng.random() < 0.5:
            layer["activation"] = _activation(rng)
        return [layer]
    if kind == "reshape":
        return [{"type": "reshape", "shape": "transpose"}]  # filled in by the walk
    if kind == "dropout":
        return [{"type": "dropout", "rate": float(rng.uniform(0, 0.9))}]
    activation = _activation(rng)
    if isinstance(activation, dict):  # the standalone layer takes the options beside the name
        return [{"type": "activation", "activation": activation["type"],
                 "negative_slope": activation["negative_slope"]}]
    return [{"type": "activation", "activation": activation}]


def _walk(layers, input_shape):
    """Fill reshape targets and return the output shape; None when a shape fails."""
    for i, layer in enumerate(layers):
        if layer.get("shape") == "transpose":
            shape = _output(layers[:i], input_shape)
            if shape is None or len(shape) != 3:
                return None
            layer["shape"] = [shape[1], shape[0], shape[2]] if shape[0] != shape[1] else \
                [shape[0] * shape[1] * shape[2] // 2, 1, 2] if (shape[0] * shape[1] * shape[2]) % 2 == 0 \
                else [shape[2], shape[1], shape[0]]
    return _output(layers, input_shape)


def _output(layers, input_shape):
    from dlcli.config import resolve
    from dlcli.errors import DlcliError
    from dlcli.nn.layers.base import display_shape
    from dlcli.train.session import prepare

    config = {"name": "probe", "task": "regression", "data": {"source": "synthetic:images"},
              "model": {"input_shape": list(input_shape), "layers": layers, "loss": "mse"}}
    try:
        model = prepare(resolve(config), data=False).model
        return tuple(display_shape(model.output_shape)) if layers else tuple(input_shape)
    except (DlcliError, ValueError):
        return None


def random_stack(rng):
    while True:
        input_shape = (int(rng.integers(6, 11)), int(rng.integers(6, 11)), int(rng.integers(1, 4)))
        body = []
        for i in range(int(rng.integers(2, 6))):
            body += _block(rng, i, ())
        if rng.random() < 0.25:  # reconstruction: back to the input's shape
            h, w, c = input_shape
            layers = body + [{"type": "flatten"},
                             {"type": "dense", "units": h * w * c, "activation": _activation(rng)},
                             {"type": "reshape", "shape": [h, w, c]}]
            if _walk(layers, input_shape) == tuple(input_shape):
                return layers, input_shape, "reconstruction", "mse"
            continue
        head = [{"type": "flatten"}] if rng.random() < 0.5 else []
        head.append({"type": "dense", "units": int(rng.integers(3, 12)),
                     "activation": _activation(rng), "flatten_input": not head})
        head.append({"type": "dense", "units": int(rng.integers(2, 6)),
                     "activation": _activation(rng, hidden=False),
                     "use_bias": bool(rng.random() < 0.8)})
        layers = body + head
        if _walk(layers, input_shape) is not None:
            return layers, input_shape, "regression", "mse"

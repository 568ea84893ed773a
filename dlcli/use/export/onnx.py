"""``dlcli export --format onnx``: a run's whole inference path as one ONNX graph (opset 17).

The graph takes what ``dlcli predict`` takes and gives what it gives:

  input   ``input``, float32, (batch, height, width, channels) for images or
          (batch, features) for vectors, the raw (unnormalized) values
  output  ``output``, float32: class probabilities (N, classes) for classifiers, a sigmoid's
          (N, k) for binary and multi-label runs, values for regression, and for
          reconstruction runs the reconstruction in the units of the inputs (images as
          (N, height, width, channels))

In between: the run's normalization (computed in float64, as dlcli does, then cast), a
transpose into the engine's (N, channels, height, width), one ONNX node (or two) per layer
and activation, and, for reconstruction runs, the normalization undone. The batch axis is
dynamic. Initializers carry the checkpoint's names (``dense1.weight``); a flipped kernel is
stored flipped as ``<layer>.weight.flipped``. The model's metadata holds the class names,
the task, the input layout and the normalizer as JSON strings.

The ``onnx`` package builds and checks the graph; it is imported only here.
"""

from __future__ import annotations

import json

import numpy as np

from dlcli.errors import ExportError

OPSET = 17


class _Graph:
    """Nodes and initializers in the making; ``add`` returns the name of a new output."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}:{self._count}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value), name=name))
        return name

    def add(self, op: str, inputs: list[str], hint: str, outputs: int = 1, **attrs):
        names = [self.name(hint) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op, inputs, names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names


def _float32(array) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32))


# ---- layers -----------------------------------------------------------------------------
# Each converter takes (graph, layer, x, input shape, output shape, pool outputs) and returns
# the name of its output; shapes are dlcli's internal ones, batch axis excluded.

def _dense(g, layer, x, in_shape, out_shape, pools):
    if len(in_shape) != 1:  # flatten_input: (N, C, H, W) -> (N, C·H·W), flatten's order
        x = g.add("Flatten", [x], f"{layer.name}.flatten", axis=1)
    inputs = [x, g.const(f"{layer.name}.weight", _float32(layer.params["weight"]))]
    if "bias" in layer.params:
        inputs.append(g.const(f"{layer.name}.bias", _float32(layer.params["bias"])))
    return g.add("Gemm", inputs, layer.name, transB=1)


def _flatten(g, layer, x, in_shape, out_shape, pools):
    return g.add("Flatten", [x], layer.name, axis=1)


def _identity(g, layer, x, in_shape, out_shape, pools):
    return x  # dropout at inference, the identity activation


def _reshape(g, layer, x, in_shape, out_shape, pools):
    shape = g.const(f"{layer.name}.shape", np.array([0, *out_shape], dtype=np.int64))
    return g.add("Reshape", [x, shape], layer.name)


def _conv_inputs(g, layer, weight):
    inputs = [g.const(weight[0], _float32(weight[1]))]
    if "bias" in layer.params:
        inputs.append(g.const(f"{layer.name}.bias", _float32(layer.params["bias"])))
    return inputs


def _conv2d(g, layer, x, in_shape, out_shape, pools):
    from dlcli.nn.functional.conv import pair, resolve_padding
    config = layer.get_config()
    kernel, strides = pair(config["kernel_size"], "kernel_size"), pair(config["stride"], "stride")
    (top, bottom), (left, right) = resolve_padding(config["padding"], in_shape[1:], kernel,
                                                   strides)
    weight = (f"{layer.name}.weight", layer.params["weight"])
    if config.get("flip_kernel"):  # the notes' true convolution: the kernel rotated by 180°
        weight = (f"{layer.name}.weight.flipped", layer.params["weight"][:, :, ::-1, ::-1])
    return g.add("Conv", [x, *_conv_inputs(g, layer, weight)], layer.name,
                 kernel_shape=list(kernel), strides=list(strides),
                 pads=[top, left, bottom, right])


def _conv_transpose2d(g, layer, x, in_shape, out_shape, pools):
    from dlcli.nn.functional.conv import pair
    config = layer.get_config()
    kernel, strides = pair(config["kernel_size"], "kernel_size"), pair(config["stride"], "stride")
    ph, pw = pair(config["padding"], "padding")
    weight = (f"{layer.name}.weight", layer.params["weight"])
    return g.add("ConvTranspose", [x, *_conv_inputs(g, layer, weight)], layer.name,
                 kernel_shape=list(kernel), strides=list(strides), pads=[ph, pw, ph, pw],
                 output_padding=list(pair(config["output_padding"], "output_padding")))


def _pool_attrs(layer) -> dict:
    from dlcli.nn.functional.conv import pair
    config = layer.get_config()
    kernel = pair(config["pool_size"], "pool_size")
    strides = kernel if config["stride"] is None else pair(config["stride"], "stride")
    ph, pw = pair(config["padding"], "padding")
    return {"kernel_shape": list(kernel), "strides": list(strides), "pads": [ph, pw, ph, pw]}


def _maxpool2d(g, layer, x, in_shape, out_shape, pools):
    if layer.name not in pools:
        return g.add("MaxPool", [x], layer.name, **_pool_attrs(layer))
    # A maxunpool2d reads this pool: keep its indices (flat over N, C, H, W, as ONNX's
    # MaxUnpool takes them) and the shape of its input, which the unpooling restores.
    y, indices = g.add("MaxPool", [x], layer.name, outputs=2, **_pool_attrs(layer))
    pools[layer.name] = (indices, g.add("Shape", [x], f"{layer.name}.input_shape"))
    return y


def _avgpool2d(g, layer, x, in_shape, out_shape, pools):
    # dlcli counts the zero padding in every window's mean (count_include_pad).
    return g.add("AveragePool", [x], layer.name, count_include_pad=1, **_pool_attrs(layer))


def _maxunpool2d(g, layer, x, in_shape, out_shape, pools):
    pool = layer.get_config()["pool"]
    indices, shape = pools[pool]
    return g.add("MaxUnpool", [x, indices, shape], layer.name,
                 **_pool_attrs(_layer_named(g.model, pool)))


def _layer_named(model, name):
    return next(layer for layer in model.layers if layer.name == name)


LAYERS = {"dense": _dense, "flatten": _flatten, "dropout": _identity, "reshape": _reshape,
          "conv2d": _conv2d, "conv_transpose2d": _conv_transpose2d,
          "maxpool2d": _maxpool2d, "avgpool2d": _avgpool2d, "maxunpool2d": _maxunpool2d}


# ---- activations --------------------------------------------------------------------------

def _activation(g, activation, x, hint):
    name = activation.get_config()["activation"]
    if name == "identity":
        return x
    if name == "binary_step":  # 1 where x >= 0, else 0
        zero = g.const(f"{hint}.zero", np.zeros((), np.float32))
        return g.add("Cast", [g.add("GreaterOrEqual", [x, zero], hint)], hint,
                     to=g.helper.np_dtype_to_tensor_dtype(np.dtype(np.float32)))
    if name == "leaky_relu":
        return g.add("LeakyRelu", [x], hint, alpha=float(activation.get_config()["negative_slope"]))
    if name == "softmax":  # over the last axis, as dlcli computes it
        return g.add("Softmax", [x], hint, axis=-1)
    ops = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
    if name not in ops:
        raise ExportError(f"activation {name!r} ({hint}) has no ONNX counterpart in dlcli "
                          "export; export --format safetensors instead")
    return g.add(ops[name], [x], hint)


def _ops(model):
    """(op, its name, whether it is an activation) in forward order: the model's ops, an
    attached activation named ``<layer>.<activation>``."""
    from dlcli.nn.activations import Activation
    for op in model.ops:
        yield op, op.name, isinstance(op, Activation)


def check_exportable(model) -> None:
    """ExportError, one line, for a layer this exporter cannot express (before any work)."""
    for op, name, is_activation in _ops(model):
        if is_activation:
            continue
        if op.type_name not in LAYERS:
            raise ExportError(f"layer {name} ({op.type_name}) has no ONNX counterpart in "
                              "dlcli export; export --format safetensors instead")
        if op.type_name == "maxunpool2d":
            pool = _pool_attrs(_layer_named(model, op.get_config()["pool"]))
            if any(s < k for s, k in zip(pool["strides"], pool["kernel_shape"])):
                # dlcli sums the values two overlapping windows send to one position;
                # ONNX's MaxUnpool keeps one of them.
                raise ExportError(
                    f"layer {name} (maxunpool2d) undoes pool {op.get_config()['pool']!r}, whose "
                    "windows overlap (stride smaller than the pool size): ONNX's MaxUnpool "
                    "keeps one of the values dlcli sums; export --format safetensors instead")


# ---- the whole graph ------------------------------------------------------------------------

def build(run, metadata: dict):
    """The ONNX ModelProto of ``run`` (a LoadedRun), checked by ``onnx.checker``."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'dlcli[onnx]'",
                          where="--format onnx") from None
    model = run.model
    check_exportable(model)
    g = _Graph(helper, numpy_helper)
    g.model = model
    image = len(model.input_shape) == 3
    x = "input"
    x = _normalize(g, run.normalizer, x, image)
    pools = {layer.get_config()["pool"]: None for layer in model.layers
             if layer.type_name == "maxunpool2d"}
    shapes = {layer.name: (inp, out) for layer, inp, out in model.shapes()}
    for op, name, is_activation in _ops(model):
        if is_activation:
            x = _activation(g, op, x, name)
        else:
            in_shape, out_shape = shapes[op.name]
            x = LAYERS[op.type_name](g, op, x, in_shape, out_shape, pools)
    out_shape = model.output_shape
    if run.task == "reconstruction":
        x = _denormalize(g, run.normalizer, x)
    if len(out_shape) == 3:
        x = g.add("Transpose", [x], "to_nhwc", perm=[0, 2, 3, 1])
        c, h, w = out_shape
        out_shape = (h, w, c)
    g.nodes.append(helper.make_node("Identity", [x], ["output"], name="output"))
    in_dims = _display(model.input_shape)
    graph = helper.make_graph(
        g.nodes, f"dlcli_{metadata.get('run', 'model')}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *in_dims])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", *out_shape])],
        g.initializers)
    proto = helper.make_model(graph, producer_name="dlcli",
                              producer_version=str(metadata.get("dlcli_version", "")),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = 8  # opset 17's IR; readable by ONNX Runtime 1.13 and later
    proto.doc_string = f"dlcli run {metadata.get('run', '')}, {metadata.get('checkpoint', '')}"
    onnx.helper.set_model_props(proto, {k: v if isinstance(v, str) else json.dumps(v)
                                        for k, v in metadata.items()})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001 - a bug of ours, shown as one line
        raise ExportError(f"the ONNX graph failed onnx.checker: {exc}".splitlines()[0]) from None
    return proto


def _display(shape) -> list[int]:
    shape = [int(d) for d in shape]
    return [shape[1], shape[2], shape[0]] if len(shape) == 3 else shape


def _normalize(g, normalizer, x, image: bool) -> str:
    """Raw float32 input -> the engine's normalized float32 (N, C, H, W) or (N, F)."""
    if image:
        x = g.add("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2])
    if normalizer.kind == "none":
        return x
    double = g.helper.np_dtype_to_tensor_dtype(np.dtype(np.float64))
    x = g.add("Cast", [x], "normalize", to=double)
    x = g.add("Sub", [x, g.const("normalizer.shift", np.asarray(normalizer.shift, np.float64))],
              "normalize")
    x = g.add("Div", [x, g.const("normalizer.scale", np.asarray(normalizer.scale, np.float64))],
              "normalize")
    return g.add("Cast", [x], "normalize", to=g.helper.np_dtype_to_tensor_dtype(np.dtype(np.float32)))


def _denormalize(g, normalizer, x) -> str:
    """A reconstruction back in the units of the inputs: x · scale + shift (in float64)."""
    if normalizer.kind == "none":
        return x
    double = g.helper.np_dtype_to_tensor_dtype(np.dtype(np.float64))
    x = g.add("Cast", [x], "denormalize", to=double)
    x = g.add("Mul", [x, g.const("denormalizer.scale", np.asarray(normalizer.scale, np.float64))],
              "denormalize")
    x = g.add("Add", [x, g.const("denormalizer.shift", np.asarray(normalizer.shift, np.float64))],
              "denormalize")
    return g.add("Cast", [x], "denormalize", to=g.helper.np_dtype_to_tensor_dtype(np.dtype(np.float32)))


def write(proto, path) -> None:
    """Serialize ``proto`` to ``path`` atomically."""
    from dlcli.train.io import atomic_writer
    with atomic_writer(path) as handle:
        handle.write(proto.SerializeToString())

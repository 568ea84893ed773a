"""Convolution layers: ``conv2d`` and ``conv_transpose2d`` (notes chapter 3 and 4.1.3)."""

from __future__ import annotations

import numpy as np

from ... import rules as r
from ...registry import INITIALIZERS, LAYERS
from ..functional import conv as F
from .base import IncompatibleShape, Layer, display_shape


def _image_shape(layer: Layer, input_shape) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise IncompatibleShape(
            f"{layer.type_name} expects an image input (height, width, channels); "
            f"got shape {display_shape(tuple(input_shape))}")
    return tuple(int(d) for d in input_shape)


class _ConvBase(Layer):
    """Shared hyperparameter handling, parameter allocation and config of the conv layers."""

    RULES = {"filters": r.positive_int, "kernel_size": r.pair(1), "stride": r.pair(1),
             "padding": r.pair(0), "use_bias": r.boolean}

    def __init__(self, filters, kernel_size, stride=1, padding=0, use_bias=True,
                 initializer="he", activation=None, name=None, **more):
        super().__init__(name=name)
        values = self.checked(filters=filters, kernel_size=kernel_size, stride=stride,
                              padding=padding, use_bias=use_bias, **more)
        self.filters = values["filters"]
        self.kernel_size = values["kernel_size"]  # as given (an int or a list), for configs
        self.kernel = F.pair(values["kernel_size"])
        self.stride = values["stride"]
        self.strides = F.pair(values["stride"])
        self.padding = values["padding"]
        self.use_bias = values["use_bias"]
        self._values = values
        self.initializer = initializer
        self.activation_name = activation
        # Reusable im2col/GEMM buffers, rebuilt on shape change; public so that a fused step
        # running this layer's kernels (dlcli.nn.fusion) reuses the same buffers.
        self.workspace: dict = {}
        self._cache: dict | None = None

    def _weight_shape(self, in_channels: int) -> tuple:
        raise NotImplementedError

    def param_shapes(self, input_shape: tuple) -> dict[str, tuple]:
        c, _, _ = _image_shape(self, input_shape)
        shapes = {"weight": self._weight_shape(c)}
        if self.use_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def _init_params(self, input_shape: tuple, rng: np.random.Generator) -> dict:
        c = input_shape[0]
        kh, kw = self.kernel
        init = INITIALIZERS.get(self.initializer)
        params = {"weight": init(self._weight_shape(c), c * kh * kw, self.filters * kh * kw, rng)}
        if self.use_bias:
            params["bias"] = np.zeros(self.filters, dtype=self.dtype)
        return params

    def _input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError(f"{self.type_name} expects a batch (N, C, H, W); got shape {x.shape}")
        return x

    def _scratch(self, training: bool) -> dict | None:
        """The reusable buffers for a training forward; None (temporaries) otherwise, so
        that an evaluation batch, often larger, leaves no buffers of its size behind. The
        backward always reuses them (it only follows a training forward in training)."""
        return self.workspace if training else None

    def set_grads(self, dweight, dbias) -> None:
        """Write a backward's weight and bias gradients into ``grads``."""
        np.copyto(self.grads["weight"], dweight)
        if dbias is not None:
            np.copyto(self.grads["bias"], dbias)

    def get_config(self) -> dict:
        config = {"type": self.type_name, "filters": self.filters,
                  "kernel_size": self.kernel_size, "stride": self.stride,
                  "padding": self.padding}
        config.update(self._extra_config())
        config["use_bias"] = self.use_bias
        config["initializer"] = self.initializer
        if self.activation_name is not None:
            config["activation"] = self.activation_name
        if self.name is not None:
            config["name"] = self.name
        return config

    def _extra_config(self) -> dict:
        return {}


@LAYERS.register("conv2d")
class Conv2D(_ConvBase):
    """2-D cross-correlation of an image batch with ``filters`` learned kernels.

    ``y[n, o, i, j] = b[o] + sum_{c, u, v} W[o, c, u, v] * xp[n, c, s*i + u, s*j + v]``
    (notes 3.1), ``xp`` the zero-padded input. With ``flip_kernel=True`` the kernel is
    rotated by 180 degrees first, giving the notes' true convolution
    ``sum Image(x - i, y - j) K(i, j)``.

    Shapes (batch axis excluded): input (C, H, W) -> output (filters, H_out, W_out) with
    ``H_out = floor((H + p_top + p_bottom - kh) / s_h) + 1`` (notes 3.3), likewise W.
    Parameters: ``weight`` (filters, C, kh, kw) and ``bias`` (filters,) — PyTorch's layout.

    Hyperparameters: ``filters``; ``kernel_size`` int or [kh, kw]; ``stride=1`` int or pair;
    ``padding=0`` int, pair, ``"valid"`` or ``"same"`` (TensorFlow's: output ``ceil(n / s)``,
    odd padding pixel at the bottom/right); ``use_bias=True``; ``initializer="he"`` (with
    fan_in = C*kh*kw, fan_out = filters*kh*kw); ``flip_kernel=False``; ``activation=None``
    (applied by the model as a separate layer); ``name=None``.
    """

    type_name = "conv2d"
    RULES = {**_ConvBase.RULES, "padding": r.padding_rule(), "flip_kernel": r.boolean}

    def __init__(self, filters, kernel_size, stride=1, padding=0, use_bias=True,
                 initializer="he", flip_kernel=False, activation=None, name=None):
        super().__init__(filters, kernel_size, stride, padding, use_bias, initializer,
                         activation, name, flip_kernel=flip_kernel)
        self.flip_kernel = self._values["flip_kernel"]

    def _weight_shape(self, in_channels: int) -> tuple:
        return (self.filters, in_channels, *self.kernel)

    def _extra_config(self) -> dict:
        return {"flip_kernel": self.flip_kernel}

    def output_shape(self, input_shape: tuple) -> tuple:
        _, h, w = _image_shape(self, input_shape)
        kh, kw = self.kernel
        (pt, pb), (pl, pr) = F.resolve_padding(self.padding, (h, w), self.kernel, self.strides)
        oh = F.conv_output_size(h, kh, self.strides[0], pt, pb)
        ow = F.conv_output_size(w, kw, self.strides[1], pl, pr)
        if oh <= 0 or ow <= 0:
            raise IncompatibleShape(
                f"kernel {kh}x{kw} is larger than the padded input {h + pt + pb}x{w + pl + pr} "
                f"(padding {self.padding})")
        return (self.filters, oh, ow)

    def mult_adds(self, input_shape: tuple) -> int:
        c = input_shape[0]
        _, oh, ow = self.output_shape(input_shape)
        return oh * ow * self.filters * c * self.kernel[0] * self.kernel[1]

    def workspace_bytes(self, input_shape, batch, itemsize, need_input_grad=True) -> int:
        sizes = F.conv2d_workspace_sizes((batch, *input_shape), self.filters, self.kernel,
                                         self.strides, self.padding, has_bias=self.use_bias,
                                         need_input_grad=need_input_grad)
        return sum(sizes.values()) * itemsize

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, self._cache = F.conv2d_forward(
            self._input(x), self.params["weight"], self.params.get("bias"), self.strides,
            self.padding, flip_kernel=self.flip_kernel, workspace=self._scratch(training))
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        dx, dweight, dbias = F.conv2d_backward(
            np.asarray(dy, dtype=self.dtype), self._cache,
            need_input_grad=self.need_input_grad, workspace=self.workspace)
        self.set_grads(dweight, dbias)
        return dx


@LAYERS.register("conv_transpose2d")
class ConvTranspose2D(_ConvBase):
    """2-D transposed convolution ("deconvolution", notes 4.1.3), PyTorch's ConvTranspose2d.

    The gradient of a convolution with respect to its input: each input pixel scatters
    ``x[n, c, i, j] * W[c, o, :, :]`` into the output at ``(s*i, s*j)``, the result is cropped
    by ``padding`` on every side, and ``bias[o]`` is added.

    Shapes (batch axis excluded): input (C, H, W) -> output (filters, H_out, W_out) with
    ``H_out = s_h (H - 1) + kh - 2 p_h + output_padding_h``, likewise W.
    Parameters: ``weight`` (C, filters, kh, kw) and ``bias`` (filters,) — PyTorch's layout.

    Hyperparameters: ``filters``; ``kernel_size`` int or [kh, kw]; ``stride=1``;
    ``padding=0`` (int or pair); ``output_padding=0`` (int or pair, each < its stride: it
    picks among the input sizes a stride-s convolution maps to the same size);
    ``use_bias=True``; ``initializer="he"`` (fan_in = C*kh*kw, fan_out = filters*kh*kw);
    ``activation=None``; ``name=None``.
    """

    type_name = "conv_transpose2d"
    RULES = {**_ConvBase.RULES, "output_padding": r.pair(0)}
    # output_padding picks among the sizes a stride-s convolution maps to one size: < s.
    RELATIONS = (r.Relation(
        "output_padding", ("stride",),
        lambda v: f"each entry smaller than the stride {v['stride']}",
        lambda v: all(op < s for op, s in zip(F.pair(v["output_padding"]), F.pair(v["stride"])))),)

    def __init__(self, filters, kernel_size, stride=1, padding=0, output_padding=0,
                 use_bias=True, initializer="he", activation=None, name=None):
        super().__init__(filters, kernel_size, stride, padding, use_bias, initializer,
                         activation, name, output_padding=output_padding)
        self.pads = F.pair(self.padding)
        self.output_padding = self._values["output_padding"]
        self.output_pads = F.pair(self.output_padding)

    def _weight_shape(self, in_channels: int) -> tuple:
        return (in_channels, self.filters, *self.kernel)

    def _extra_config(self) -> dict:
        return {"output_padding": self.output_padding}

    def output_shape(self, input_shape: tuple) -> tuple:
        _, h, w = _image_shape(self, input_shape)
        size = [F.conv_transpose_output_size(n, f, s, p, op) for n, f, s, p, op in
                zip((h, w), self.kernel, self.strides, self.pads, self.output_pads)]
        if min(size) <= 0:
            raise IncompatibleShape(
                f"padding {self.padding} crops away the whole {size[0] + 2 * self.pads[0]}x"
                f"{size[1] + 2 * self.pads[1]} output of a {self.kernel[0]}x{self.kernel[1]} "
                f"transposed convolution of a {h}x{w} input")
        return (self.filters, size[0], size[1])

    def mult_adds(self, input_shape: tuple) -> int:
        c, h, w = _image_shape(self, input_shape)
        self.output_shape(input_shape)
        return h * w * c * self.filters * self.kernel[0] * self.kernel[1]

    def workspace_bytes(self, input_shape, batch, itemsize, need_input_grad=True) -> int:
        sizes = F.conv_transpose2d_workspace_sizes((batch, *input_shape), self.filters,
                                                   self.kernel, self.strides, self.pads,
                                                   self.output_pads)
        return sum(sizes.values()) * itemsize

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, self._cache = F.conv_transpose2d_forward(
            self._input(x), self.params["weight"], self.params.get("bias"), self.strides,
            self.pads, self.output_pads, workspace=self._scratch(training))
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        dx, dweight, dbias = F.conv_transpose2d_backward(
            np.asarray(dy, dtype=self.dtype), self._cache,
            need_input_grad=self.need_input_grad, workspace=self.workspace)
        self.set_grads(dweight, dbias)
        return dx

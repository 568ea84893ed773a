"""The PyTorch module equivalent to a dlcli model, written from the layers' configs alone.

Each layer with parameters becomes a submodule named like the layer (``dense1`` an
``nn.Linear``, ``conv1`` an ``nn.Conv2d``, ``deconv`` an ``nn.ConvTranspose2d``), so a
safetensors export loads with ``load_state_dict(strict=True)``. The module takes the
normalized inputs in (N, C, H, W) and returns what dlcli's model returns (the output
activation applied). Used only by tests, where torch is installed.
"""

import torch
import torch.nn.functional as F
from torch import nn

from dlcli.nn.functional.conv import pair, resolve_padding


def _activation(spec):
    if isinstance(spec, dict):
        name, slope = spec["type"], spec.get("negative_slope", 0.1)
    else:
        name, slope = spec, 0.1
    return {
        None: lambda x: x, "identity": lambda x: x,
        "binary_step": lambda x: (x >= 0).to(x.dtype),
        "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
        "leaky_relu": lambda x: F.leaky_relu(x, slope),
        "softmax": lambda x: torch.softmax(x, dim=-1),
    }[name]


def _activation_of(config):
    if config["type"] == "activation":
        spec = config["activation"]
        if "negative_slope" in config:
            spec = {"type": spec, "negative_slope": config["negative_slope"]}
        return _activation(spec)
    return _activation(config.get("activation"))


class Equivalent(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.steps = []
        for layer, in_shape, out_shape in model.shapes():
            config = layer.get_config()
            kind = config["type"]
            if kind == "dense":
                module = nn.Linear(int(torch.tensor(in_shape).prod()), config["units"],
                                   bias=config["use_bias"])
            elif kind in ("conv2d", "conv_transpose2d"):
                kernel, stride = pair(config["kernel_size"], "k"), pair(config["stride"], "s")
                if kind == "conv2d":
                    module = nn.Conv2d(in_shape[0], config["filters"], kernel, stride,
                                       bias=config["use_bias"])
                    module.pads = resolve_padding(config["padding"], in_shape[1:], kernel, stride)
                    module.flip = config.get("flip_kernel", False)
                else:
                    module = nn.ConvTranspose2d(
                        in_shape[0], config["filters"], kernel, stride,
                        padding=pair(config["padding"], "p"),
                        output_padding=pair(config["output_padding"], "o"),
                        bias=config["use_bias"])
            else:
                module = None
            if module is not None:
                self.add_module(layer.name, module)
            self.steps.append((layer.name, config, module, tuple(out_shape)))

    def forward(self, x):
        pooled = {}
        for name, config, module, out_shape in self.steps:
            kind = config["type"]
            if kind == "dense":
                x = module(x.flatten(1))
            elif kind == "conv2d":
                (top, bottom), (left, right) = module.pads
                weight = module.weight.flip(2, 3) if module.flip else module.weight
                x = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, module.bias,
                             module.stride)
            elif kind == "conv_transpose2d":
                x = module(x)
            elif kind in ("maxpool2d", "avgpool2d"):
                kernel = pair(config["pool_size"], "k")
                stride = kernel if config["stride"] is None else pair(config["stride"], "s")
                padding = pair(config["padding"], "p")
                if kind == "avgpool2d":
                    x = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=True)
                else:
                    size = x.shape
                    x, indices = F.max_pool2d(x, kernel, stride, padding, return_indices=True)
                    pooled[name] = (indices, size, kernel, stride, padding)
            elif kind == "maxunpool2d":
                indices, size, kernel, stride, padding = pooled[config["pool"]]
                x = F.max_unpool2d(x, indices, kernel, stride, padding, output_size=size[2:])
            elif kind in ("flatten", "reshape"):
                x = x.reshape(x.shape[0], *out_shape)
            x = _activation_of(config)(x)
        return x

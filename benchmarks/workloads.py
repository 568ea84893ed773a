"""The benchmark workloads, built once for dlcli and once (the same network, the same initial
weights, the same batches in the same order) for PyTorch.

A workload is a dict made by :func:`make`: the dlcli model, loss, optimizer config, the data
(internal layout: images are (N, C, H, W), PyTorch's), the batch size and the seed that
orders the batches. Synthetic inputs are standard normal float32 with uniform random labels:
what they contain does not change how long a step takes.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]

# The LeNet of the notes' figure 3.5, used when configs/lenet.yaml is missing.
LENET_LAYERS = [
    {"type": "conv2d", "name": "conv1", "filters": 8, "kernel_size": 5, "activation": "relu"},
    {"type": "maxpool2d", "name": "pool1", "pool_size": 2},
    {"type": "conv2d", "name": "conv2", "filters": 16, "kernel_size": 5, "activation": "relu"},
    {"type": "maxpool2d", "name": "pool2", "pool_size": 2},
    {"type": "dense", "name": "fc3", "units": 120, "activation": "relu", "flatten_input": True},
    {"type": "dense", "name": "fc4", "units": 84, "activation": "relu"},
    {"type": "dense", "name": "softmax", "units": 10, "activation": "softmax"},
]

MLP_LAYERS = [
    {"type": "dense", "units": 256, "activation": "relu"},
    {"type": "dense", "units": 128, "activation": "relu"},
    {"type": "dense", "units": 10, "activation": "softmax"},
]

SGD = {"type": "sgd", "lr": 0.01, "momentum": 0.9}
ADAM = {"type": "adam", "lr": 0.001}

NAMES = ("mlp_sgd", "mlp_adam", "lenet_adam", "conv_autoencoder")
DESCRIPTIONS = {
    "mlp_sgd": "MLP 784-256-128-10 ReLU, 60,000 synthetic samples, batch 128, SGD momentum 0.9",
    "mlp_adam": "MLP 784-256-128-10 ReLU, 60,000 synthetic samples, batch 128, Adam",
    "lenet_adam": "LeNet (notes fig. 3.5, configs/lenet.yaml), 10,000 synthetic 3x32x32, "
                  "batch 64, Adam",
    "conv_autoencoder": "configs/conv_autoencoder.yaml on the digits",
}


def available(name: str) -> str | None:
    """None when the workload can run, else why not."""
    if name == "conv_autoencoder" and not (REPO / "configs" / "conv_autoencoder.yaml").is_file():
        return "configs/conv_autoencoder.yaml is absent"
    return None


def _synthetic(n: int, shape: tuple, classes: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape), dtype=np.float32)
    y = rng.integers(0, classes, size=n).astype(np.int64)
    return x, y


def make(name: str, quick: bool = False) -> dict:
    """Build workload ``name`` (dlcli side). ``quick`` uses a fifth of the samples."""
    from dlcli.nn.model import Model

    scale = 5 if quick else 1
    if name in ("mlp_sgd", "mlp_adam"):
        x, y = _synthetic(60000 // scale, (784,), 10, seed=1)
        model = Model.from_config(MLP_LAYERS, (784,), np.float32)
        optimizer = SGD if name == "mlp_sgd" else ADAM
        batch, task = 128, "classification"
        loss = make_loss_named("categorical_crossentropy", model)
        source = "built in"
    elif name == "lenet_adam":
        x, y = _synthetic(10000 // scale, (3, 32, 32), 10, seed=2)
        path = REPO / "configs" / "lenet.yaml"
        if path.is_file():
            from dlcli.config import load_config
            layers, source = load_config(path)["model"]["layers"], "configs/lenet.yaml"
        else:
            layers, source = LENET_LAYERS, "built in (configs/lenet.yaml absent)"
        model = Model.from_config(layers, (3, 32, 32), np.float32)
        optimizer, batch, task = ADAM, 64, "classification"
        loss = make_loss_named("categorical_crossentropy", model)
    elif name == "conv_autoencoder":
        from dlcli.config import load_config
        from dlcli.train.session import prepare, targets
        config = load_config(REPO / "configs" / "conv_autoencoder.yaml")
        prep = prepare(config)
        model, loss, task = prep.model, prep.loss, prep.task
        x = prep.splits.x_train.astype(model.dtype, copy=False)
        y = targets(prep.splits, task, model.dtype)[0]
        training = config["training"]
        batch = len(x) if training["batch_size"] == "full" else int(training["batch_size"])
        optimizer = dict(training["optimizer"])
        source = "configs/conv_autoencoder.yaml"
    else:
        raise KeyError(name)
    model.build(np.random.default_rng([0, 0]))
    return {"name": name, "model": model, "loss": loss, "optimizer": optimizer, "x": x,
            "y": y, "batch": batch, "task": task, "seed": 7, "source": source,
            "steps_per_epoch": math.ceil(len(x) / batch)}


def make_loss_named(name: str, model):
    """The registered loss ``name``, fused with the model's output activation if possible."""
    from dlcli.nn.losses import fuse_output  # also registers the losses
    from dlcli.registry import LOSSES
    loss = LOSSES.get(name)()
    fuse_output(model, loss)
    return loss


def batch_starts(n: int, batch: int, samples: int) -> list[int]:
    """Where each of the ``ceil(samples / batch)`` full batches of an inference run starts,
    walking through the ``n`` samples and wrapping around."""
    if batch > n:
        raise ValueError(f"batch {batch} is larger than the {n} samples")
    return [(i * batch) % (n - batch + 1) for i in range(math.ceil(samples / batch))]


# ---- dlcli --------------------------------------------------------------------------------
class DlcliRunner:
    """One epoch at a time through dlcli's own Trainer (the loop ``dlcli train`` runs)."""

    def __init__(self, w: dict):
        import dlcli.nn.optim  # noqa: F401 - registers the optimizers
        from dlcli.registry import OPTIMIZERS
        from dlcli.train.trainer import Trainer

        self.w = w
        opt = dict(w["optimizer"])
        self.optimizer = OPTIMIZERS.get(opt.pop("type"))(**opt)
        self.trainer = Trainer(w["model"], w["loss"], self.optimizer, task=w["task"],
                               batch_size=w["batch"], epochs=0,
                               rng=np.random.default_rng(w["seed"]),
                               n_classes=10 if w["task"] == "classification" else None)

    def warmup(self, steps: int = 3) -> None:
        from dlcli.train.trainer import Trainer
        w = self.w
        n = min(len(w["x"]), steps * w["batch"])
        Trainer(w["model"], w["loss"], self.optimizer, task=w["task"], batch_size=w["batch"],
                epochs=1, rng=np.random.default_rng(0), shuffle=False).fit(w["x"][:n], w["y"][:n])

    def epoch(self) -> float:
        import time
        self.trainer.epochs += 1
        start = time.perf_counter()
        with np.errstate(all="ignore"):
            self.trainer.fit(self.w["x"], self.w["y"])
        return time.perf_counter() - start

    def record_step(self) -> list:
        """The matrix products of one training step (the trainer's own ``batch_step`` on the
        first batch), as :class:`benchmarks.gemm.Product` records."""
        from benchmarks.gemm import recording
        w, t = self.w, self.trainer
        x, y = w["x"], w["y"]
        batch = min(w["batch"], len(x))
        params = w["model"].parameters()
        grads = [g for _, _, g in params]
        x_buf, y_buf = t.batch_buffers(x, y, batch)
        with np.errstate(all="ignore"), recording() as calls:
            t.batch_step(x, y, np.arange(batch), x_buf, y_buf, params, grads,
                         w["model"].flat_buffers(), 1, 1)
        return calls

    def infer(self, batch: int, samples: int) -> float:
        """Seconds of the forward passes (evaluation mode, the output activation included,
        as ``dlcli predict`` runs them) over ``samples`` samples in batches of ``batch``."""
        import time
        x, model = self.w["x"], self.w["model"]
        start = time.perf_counter()
        for s in batch_starts(len(x), batch, samples):
            model.forward(x[s:s + batch], training=False)
        return time.perf_counter() - start


# ---- PyTorch -------------------------------------------------------------------------------
def to_torch(model):
    """A ``torch.nn.Sequential`` equal to the dlcli model, with its current weights."""
    import torch
    from torch import nn

    from dlcli.nn.functional.conv import resolve_padding

    class View(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.shape = tuple(shape)

        def forward(self, x):
            return x.reshape(x.shape[0], *self.shape)

    def activation(act, last):
        name = act.activation_name
        if last and model.fused_output:
            return None
        table = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
                 "softmax": lambda: nn.Softmax(dim=-1)}
        if name == "identity":
            return None
        if name == "leaky_relu":
            return nn.LeakyReLU(act.negative_slope)
        if name not in table:
            raise NotImplementedError(f"activation {name}")
        return table[name]()

    def copy(module, layer, flip=False):
        with torch.no_grad():
            weight = layer.params["weight"]
            if flip:
                weight = weight[..., ::-1, ::-1]
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            if "bias" in layer.params:
                module.bias.copy_(torch.from_numpy(layer.params["bias"]))
        return module

    modules = []
    rows = model.shapes()
    for i, (layer, in_shape, out_shape) in enumerate(rows):
        last = i == len(rows) - 1
        kind = layer.type_name
        if kind == "dense":
            if len(in_shape) > 1:
                modules.append(nn.Flatten())
            modules.append(copy(nn.Linear(int(np.prod(in_shape)), layer.units,
                                          bias=layer.use_bias), layer))
        elif kind == "conv2d":
            c, h, w = in_shape
            (pt, pb), (pl, pr) = resolve_padding(layer.padding, (h, w), layer.kernel,
                                                 layer.strides)
            if pt == pb and pl == pr:
                pad = (pt, pl)
            else:
                modules.append(nn.ZeroPad2d((pl, pr, pt, pb)))
                pad = 0
            modules.append(copy(nn.Conv2d(c, layer.filters, layer.kernel, layer.strides, pad,
                                          bias=layer.use_bias), layer, layer.flip_kernel))
        elif kind == "conv_transpose2d":
            modules.append(copy(nn.ConvTranspose2d(
                in_shape[0], layer.filters, layer.kernel, layer.strides, layer.pads,
                layer.output_pads, bias=layer.use_bias), layer))
        elif kind == "maxpool2d":
            modules.append(nn.MaxPool2d(layer.pool, layer.strides, layer.pads))
        elif kind == "avgpool2d":
            modules.append(nn.AvgPool2d(layer.pool, layer.strides, layer.pads,
                                        count_include_pad=True))
        elif kind == "flatten":
            modules.append(nn.Flatten())
        elif kind == "reshape":
            modules.append(View(out_shape))
        elif kind == "dropout":
            modules.append(nn.Dropout(layer.rate))
        elif kind == "activation":
            act = activation(layer, last)
            if act is not None:
                modules.append(act)
            continue
        else:
            raise NotImplementedError(f"layer type {kind}")
        if model.activation_of(layer) is not None:
            act = activation(model.activation_of(layer), last)
            if act is not None:
                modules.append(act)
    return nn.Sequential(*modules)


def torch_loss(loss):
    from torch import nn
    if loss.name == "categorical_crossentropy" and loss.from_logits:
        return nn.CrossEntropyLoss()
    if loss.name == "binary_crossentropy" and loss.from_logits:
        return nn.BCEWithLogitsLoss()
    if loss.name == "mse":
        return nn.MSELoss()
    raise NotImplementedError(f"loss {loss.name} (from_logits={loss.from_logits})")


class TorchRunner:
    """The same workload in PyTorch: same initial weights, same batch order, a plain loop
    (gather, zero_grad, forward, loss, backward, step, loss.item() and the accuracy count,
    as dlcli's loop also logs them).

    ``tuned``: as a competent PyTorch user runs it on a CPU: the fused optimizer
    (``fused=True``, one kernel for the whole update) and, for a network with convolutions,
    the ``channels_last`` memory format for the weights and each batch (oneDNN's preferred
    layout)."""

    def __init__(self, w: dict, threads: int, tuned: bool = False):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.w = w
        self.net = to_torch(w["model"])
        self.channels_last = tuned and any(
            isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in self.net.modules())
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.lossf = torch_loss(w["loss"])
        opt = dict(w["optimizer"])
        kind = opt.pop("type")
        params = self.net.parameters()
        fused = {"fused": True} if tuned else {}
        if kind in ("sgd", "momentum"):
            self.opt = torch.optim.SGD(params, lr=opt["lr"], momentum=opt.get(
                "momentum", 0.9 if kind == "momentum" else 0.0), **fused)
        elif kind == "adam":
            self.opt = torch.optim.Adam(params, lr=opt["lr"], **fused)
        else:
            raise NotImplementedError(f"optimizer {kind}")
        self.x = torch.from_numpy(w["x"])
        self.y = torch.from_numpy(w["y"])
        self.rng = np.random.default_rng(w["seed"])  # the dlcli Trainer's batch order
        self.classify = w["task"] == "classification"

    def _steps(self, order):
        torch = self.torch
        batch = self.w["batch"]
        total, correct = 0.0, 0
        self.net.train()
        for start in range(0, len(order), batch):
            index = order[start:start + batch]
            xb = self._layout(torch.index_select(self.x, 0, index))
            yb = torch.index_select(self.y, 0, index)
            self.opt.zero_grad()
            out = self.net(xb)
            loss = self.lossf(out, yb)
            loss.backward()
            self.opt.step()
            total += loss.item() * len(index)
            if self.classify:
                correct += int((out.argmax(1) == yb).sum())
        return total

    def _layout(self, xb):
        if self.channels_last and xb.ndim == 4:
            return xb.contiguous(memory_format=self.torch.channels_last)
        return xb

    def warmup(self, steps: int = 3) -> None:
        n = min(len(self.x), steps * self.w["batch"])
        self._steps(self.torch.arange(n))

    def infer(self, batch: int, samples: int) -> float:
        """Seconds of the forward passes (``torch.inference_mode``, evaluation mode, the
        output activation applied) over ``samples`` samples in batches of ``batch``."""
        import time
        torch, x = self.torch, self.x
        fused = self.w["model"].fused_output
        self.net.eval()
        start = time.perf_counter()
        with torch.inference_mode():
            for s in batch_starts(len(x), batch, samples):
                out = self.net(self._layout(x[s:s + batch]))
                if fused:  # the output activation the loss had fused, as dlcli applies it
                    out = (torch.softmax(out, 1) if isinstance(self.lossf, torch.nn.CrossEntropyLoss)
                           else torch.sigmoid(out))
        seconds = time.perf_counter() - start
        self.net.train()
        return seconds

    def epoch(self) -> float:
        import time
        start = time.perf_counter()
        order = self.torch.from_numpy(self.rng.permutation(len(self.x)))
        self._steps(order)
        return time.perf_counter() - start

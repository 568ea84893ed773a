"""Write the golden reference files of dlcli's engine with PyTorch (run from the repository root):

    python tests/golden/make_golden.py        # needs torch==2.13.0 (pip install '.[bench]')

For every layer, activation, loss and optimizer it draws small float64 inputs, parameters and
upstream gradients from a fixed NumPy generator, computes PyTorch's forward output and
gradients (or, for optimizers, a 10-step trajectory with the learning rate cut at step 6), and
stores inputs and results in ``tests/golden/{layers,losses,optimizers}.npz``. The tests in
``tests/nn/test_golden.py`` replay the inputs through dlcli and compare: they need no torch.

Keys are ``<case>/<array>``; ``<case>/config`` holds the dlcli config of the case as JSON
(layer or optimizer type and options, the input shape), so a case is self-describing.
Layouts match PyTorch already (dense weight (out, in), conv weight (out, in, kh, kw),
transposed conv (in, out, kh, kw), batches (N, C, H, W)), so nothing is transposed here.
"""

import json
import pathlib

import numpy as np
import torch
import torch.nn.functional as tf

HERE = pathlib.Path(__file__).resolve().parent
TORCH_VERSION = "2.13.0"


def as_np(t):
    return t.detach().numpy().copy()


def put(store, case, config, **arrays):
    store[f"{case}/config"] = np.array(json.dumps(config))
    for key, value in arrays.items():
        store[f"{case}/{key}"] = np.asarray(value, dtype=np.float64)


def distinct(rng, shape):
    """Values with no ties (max pooling) and none near ReLU's kink at 0."""
    values = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64)
    return (values - values.mean()) / values.size * 4 + np.sign(values - values.mean() + 0.5) * 0.05


# ---- layers ---------------------------------------------------------------------------------
def layer_case(store, rng, case, config, shape, fn, params=()):
    """``fn(x, *params) -> y`` in torch; stores x, params, y, dy, dx and d<param>."""
    x = distinct(rng, (3, *shape)) if config["type"] in ("maxpool2d", "maxunpool2d") else rng.standard_normal((3, *shape))
    xt = torch.tensor(x, requires_grad=True)
    pt = [torch.tensor(p, requires_grad=True) for _, p in params]
    y = fn(xt, *pt)
    dy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.tensor(dy))
    arrays = {"x": x, "y": as_np(y), "dy": dy, "dx": as_np(xt.grad)}
    for (name, value), t in zip(params, pt):
        arrays[f"param.{name}"] = value
        arrays[f"grad.{name}"] = as_np(t.grad)
    put(store, case, {**config, "input_shape": list(shape)}, **arrays)


def make_layers(rng):
    store = {}
    w = rng.standard_normal((4, 6)) * 0.5
    b = rng.standard_normal(4)
    layer_case(store, rng, "dense", {"type": "dense", "units": 4}, (6,),
               lambda x, w, b: tf.linear(x, w, b), [("weight", w), ("bias", b)])
    layer_case(store, rng, "dense_no_bias", {"type": "dense", "units": 4, "use_bias": False}, (6,),
               lambda x, w: tf.linear(x, w), [("weight", w)])
    conv_cases = [  # name, input (C, H, W), filters, kernel, stride, padding
        ("conv2d_k3_s1_p1", (2, 6, 5), 3, (3, 3), (1, 1), (1, 1)),
        ("conv2d_k2x3_s1_p0", (3, 5, 7), 4, (2, 3), (1, 1), (0, 0)),
        ("conv2d_k3_s2_p1", (2, 7, 6), 3, (3, 3), (2, 2), (1, 1)),
        ("conv2d_k5_s1_p0_lenet", (1, 12, 12), 6, (5, 5), (1, 1), (0, 0)),
    ]
    for name, shape, f, k, s, p in conv_cases:
        w = rng.standard_normal((f, shape[0], *k)) * 0.3
        b = rng.standard_normal(f)
        layer_case(store, rng, name, {"type": "conv2d", "filters": f, "kernel_size": list(k),
                                      "stride": list(s), "padding": list(p)}, shape,
                   lambda x, w, b, s=s, p=p: tf.conv2d(x, w, b, stride=s, padding=p),
                   [("weight", w), ("bias", b)])
    for name, shape, f, k, s, p, op in [("conv_transpose2d_k3_s2_p1_op1", (3, 4, 5), 2, (3, 3),
                                         (2, 2), (1, 1), (1, 1)),
                                        ("conv_transpose2d_k2_s2_p0", (2, 3, 3), 3, (2, 2), (2, 2),
                                         (0, 0), (0, 0))]:
        w = rng.standard_normal((shape[0], f, *k)) * 0.3
        b = rng.standard_normal(f)
        layer_case(store, rng, name, {"type": "conv_transpose2d", "filters": f,
                                      "kernel_size": list(k), "stride": list(s),
                                      "padding": list(p), "output_padding": list(op)}, shape,
                   lambda x, w, b, s=s, p=p, op=op: tf.conv_transpose2d(
                       x, w, b, stride=s, padding=p, output_padding=op),
                   [("weight", w), ("bias", b)])
    for name, shape, pool, stride, pad in [("pool2", (2, 6, 6), 2, 2, 0),
                                           ("pool3_s2_p1", (2, 7, 5), 3, 2, 1),
                                           ("pool2x1", (3, 4, 5), (2, 1), (2, 1), 0)]:
        config = {"pool_size": list(pool) if isinstance(pool, tuple) else pool,
                  "stride": list(stride) if isinstance(stride, tuple) else stride, "padding": pad}
        layer_case(store, rng, f"maxpool2d_{name}", {"type": "maxpool2d", **config}, shape,
                   lambda x, pool=pool, stride=stride, pad=pad: tf.max_pool2d(x, pool, stride, pad))
        layer_case(store, rng, f"avgpool2d_{name}", {"type": "avgpool2d", **config}, shape,
                   lambda x, pool=pool, stride=stride, pad=pad: tf.avg_pool2d(
                       x, pool, stride, pad, count_include_pad=True))
    layer_case(store, rng, "flatten", {"type": "flatten"}, (2, 3, 4), lambda x: torch.flatten(x, 1))
    layer_case(store, rng, "reshape", {"type": "reshape", "shape": [4, 6]}, (24,),
               lambda x: x.reshape(x.shape[0], 4, 6))
    # A 3-D shape is (H, W, C); the values keep the (C, H, W) row-major order (torch's view).
    layer_case(store, rng, "reshape_image", {"type": "reshape", "shape": [2, 3, 4]}, (24,),
               lambda x: x.reshape(x.shape[0], 4, 2, 3))
    layer_case(store, rng, "maxunpool2d_after_pool2",
               {"type": "maxunpool2d", "pool": "p", "pool_layer": {"pool_size": 2}}, (2, 4, 6),
               lambda x: tf.max_unpool2d(*tf.max_pool2d(x, 2, return_indices=True), 2,
                                         output_size=x.shape[-2:]))
    layer_case(store, rng, "dropout_eval", {"type": "dropout", "rate": 0.3}, (5,),
               lambda x: tf.dropout(x, 0.3, training=False))
    activations = {"identity": lambda x: x, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                   "relu": torch.relu, "leaky_relu": lambda x: tf.leaky_relu(x, 0.1),
                   "softmax": lambda x: torch.softmax(x, dim=1)}
    for name, fn in activations.items():
        layer_case(store, rng, f"activation_{name}", {"type": "activation", "activation": name},
                   (5,), fn)
    layer_case(store, rng, "activation_leaky_relu_0.3",
               {"type": "activation", "activation": "leaky_relu", "negative_slope": 0.3}, (5,),
               lambda x: tf.leaky_relu(x, 0.3))
    layer_case(store, rng, "activation_relu_on_images", {"type": "activation", "activation": "relu"},
               (2, 3, 4), torch.relu)
    return store


# ---- losses ---------------------------------------------------------------------------------
def loss_case(store, case, config, pred, target, fn):
    pt = torch.tensor(pred, requires_grad=True)
    loss = fn(pt, torch.tensor(target))
    loss.backward()
    put(store, case, config, pred=pred, target=target, loss=as_np(loss), dpred=as_np(pt.grad))


def make_losses(rng):
    store = {}
    pred, target = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    loss_case(store, "mse", {"type": "mse"}, pred, target, tf.mse_loss)
    loss_case(store, "widrow_hoff", {"type": "widrow_hoff"}, pred, target,
              lambda p, y: 0.5 * ((p - y) ** 2).sum() / p.shape[0])
    probs = rng.uniform(0.05, 0.95, (5, 3))
    bits = rng.integers(0, 2, (5, 3)).astype(np.float64)
    loss_case(store, "binary_crossentropy", {"type": "binary_crossentropy"}, probs, bits,
              tf.binary_cross_entropy)
    logits = rng.standard_normal((5, 3)) * 3
    loss_case(store, "binary_crossentropy_logits",
              {"type": "binary_crossentropy", "from_logits": True}, logits, bits,
              tf.binary_cross_entropy_with_logits)
    z = rng.standard_normal((6, 4)) * 2
    softmax = np.exp(z - z.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    onehot = np.eye(4)[rng.integers(0, 4, 6)]
    loss_case(store, "categorical_crossentropy", {"type": "categorical_crossentropy"}, softmax,
              onehot, lambda p, y: -(y * torch.log(p)).sum() / p.shape[0])
    loss_case(store, "categorical_crossentropy_logits",
              {"type": "categorical_crossentropy", "from_logits": True}, z, onehot,
              lambda p, y: tf.cross_entropy(p, y))
    labels = rng.integers(0, 4, 6)
    loss_case(store, "categorical_crossentropy_logits_labels",
              {"type": "categorical_crossentropy", "from_logits": True}, z,
              labels.astype(np.float64),
              lambda p, y: tf.cross_entropy(p, y.long()))
    return store


# ---- optimizers -----------------------------------------------------------------------------
OPTIMIZERS = [  # case, dlcli config, torch class, torch options
    ("sgd", {"type": "sgd", "lr": 0.1}, "SGD", {"lr": 0.1}),
    ("sgd_momentum_dampening_decay",
     {"type": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01},
     "SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01}),
    ("sgd_nesterov_maximize",
     {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True},
     "SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("momentum", {"type": "momentum", "lr": 0.05}, "SGD", {"lr": 0.05, "momentum": 0.9}),
    ("rmsprop", {"type": "rmsprop", "lr": 0.01}, "RMSprop", {"lr": 0.01}),
    ("rmsprop_centered_momentum",
     {"type": "rmsprop", "lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True,
      "weight_decay": 0.01}, "RMSprop",
     {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01}),
    ("adam", {"type": "adam", "lr": 0.01}, "Adam", {"lr": 0.01}),
    ("adam_amsgrad_decay_maximize",
     {"type": "adam", "lr": 0.01, "betas": [0.8, 0.99], "amsgrad": True, "weight_decay": 0.01,
      "maximize": True}, "Adam",
     {"lr": 0.01, "betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 0.01, "maximize": True}),
    ("adamw", {"type": "adamw", "lr": 0.01}, "AdamW", {"lr": 0.01}),
    ("adamw_amsgrad", {"type": "adamw", "lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
     "AdamW", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
]
STEPS, CUT_AT, CUT = 10, 6, 0.3  # the learning rate is multiplied by CUT before step CUT_AT


def make_optimizers(rng):
    store = {}
    for case, config, cls, options in OPTIMIZERS:
        start = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(3)}
        grads = {k: rng.standard_normal((STEPS, *v.shape)) for k, v in start.items()}
        tensors = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
        opt = getattr(torch.optim, cls)(list(tensors.values()), foreach=False, **options)
        path = {k: [] for k in start}
        for i in range(STEPS):
            if i == CUT_AT:
                for group in opt.param_groups:
                    group["lr"] *= CUT
            for k, t in tensors.items():
                t.grad = torch.tensor(grads[k][i])
            opt.step()
            for k, t in tensors.items():
                path[k].append(as_np(t))
        arrays = {}
        for k in start:
            arrays[f"start.{k}"] = start[k]
            arrays[f"grads.{k}"] = grads[k]
            arrays[f"path.{k}"] = np.stack(path[k])
        put(store, case, {**config, "steps": STEPS, "cut_at": CUT_AT, "cut": CUT}, **arrays)
    return store


def main():
    if torch.__version__.split("+")[0] != TORCH_VERSION:
        raise SystemExit(f"golden files are made with torch {TORCH_VERSION}; this is {torch.__version__}")
    torch.set_default_dtype(torch.float64)
    for name, make in (("layers", make_layers), ("losses", make_losses),
                       ("optimizers", make_optimizers)):
        store = make(np.random.default_rng(sum(map(ord, name))))
        np.savez_compressed(HERE / f"{name}.npz", **store)
        print(f"{HERE / name}.npz: {len({k.split('/')[0] for k in store})} cases")


if __name__ == "__main__":
    main()

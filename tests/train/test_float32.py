"""A float32 training step stays in float32: no op output, gradient, loss gradient, parameter
or optimizer state is ever float64 (a silent upcast doubles memory traffic and halves BLAS
speed)."""

import numpy as np
import pytest

import dlcli.nn.losses  # noqa: F401 - registers the losses
import dlcli.nn.optim  # noqa: F401 - registers the optimizers
from dlcli.nn.model import Model
from dlcli.registry import OPTIMIZERS
from dlcli.train.session import make_loss
from dlcli.train.trainer import Trainer

CNN = [
    {"type": "conv2d", "name": "conv", "filters": 4, "kernel_size": 3, "padding": "same",
     "activation": "relu"},
    {"type": "maxpool2d", "name": "pool", "pool_size": 2},
    {"type": "conv_transpose2d", "name": "up", "filters": 3, "kernel_size": 2, "stride": 2,
     "activation": {"type": "leaky_relu", "negative_slope": 0.1}},
    {"type": "avgpool2d", "name": "avg", "pool_size": 2},
    {"type": "dropout", "rate": 0.25},
    {"type": "flatten"},
    {"type": "dense", "units": 12, "activation": "tanh"},
    {"type": "reshape", "shape": [2, 2, 3]},
    {"type": "flatten"},
    {"type": "dense", "units": 6, "activation": "sigmoid"},
    {"type": "dense", "units": 3, "activation": "softmax"},
]


def _config(loss_name):
    return {"model": {"loss": loss_name}}


CASES = {
    "cnn_categorical": (CNN, (2, 8, 8), "categorical_crossentropy", "classification"),
    "mlp_binary": ([{"type": "dense", "units": 5, "activation": "relu"},
                    {"type": "dense", "units": 2, "activation": "sigmoid"}], (4,),
                   "binary_crossentropy", "multilabel"),
    "mlp_mse": ([{"type": "dense", "units": 5, "activation": "softmax"},
                 {"type": "dense", "units": 2}], (4,), "mse", "regression"),
}


def _check(where, array):
    if isinstance(array, np.ndarray) and array.dtype.kind == "f":
        assert array.dtype == np.float32, f"{where} is {array.dtype}"


def _instrument(model, seen):
    """Wrap every op's and every fused step's forward/backward to check what it returns."""
    fused = [step for plan in (model.plan(False), model.plan(True)) for step in plan
             if step not in model.ops]
    for op in model.ops + fused:
        where = getattr(op, "name", None) or type(op).__name__
        for method in ("forward", "backward"):
            original = getattr(op, method)

            def wrapped(*args, _original=original, _where=f"{where}.{method}", **kwargs):
                out = _original(*args, **kwargs)
                _check(_where, out)
                seen.append(_where)
                return out

            setattr(op, method, wrapped)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("optimizer", [{"type": "adam"}, {"type": "sgd", "momentum": 0.9},
                                       {"type": "rmsprop", "centered": True, "momentum": 0.5}])
def test_no_float64_in_a_float32_step(case, optimizer):
    layers, input_shape, loss_name, task = CASES[case]
    model = Model.from_config(layers, input_shape, np.float32).build(np.random.default_rng(0))
    model.set_rng(np.random.default_rng(1))

    loss = make_loss(_config(loss_name), model)
    rng = np.random.default_rng(2)
    n = 10
    x = rng.standard_normal((n, *input_shape)).astype(np.float32)
    k = model.output_shape[0]
    if task == "classification":
        y = rng.integers(0, k, n)
    elif task == "multilabel":
        y = (rng.random((n, k)) > 0.5).astype(np.float32)
    else:
        y = rng.standard_normal((n, k)).astype(np.float32)
    seen = []
    _instrument(model, seen)
    opt_cfg = dict(optimizer)
    opt = OPTIMIZERS.get(opt_cfg.pop("type"))(lr=0.01, **opt_cfg)
    trainer = Trainer(model, loss, opt, task=task, batch_size=4, epochs=2,
                      rng=np.random.default_rng(3), clip_norm=1.0)
    trainer.fit(x, y)
    assert any(w.endswith(".backward") for w in seen)
    assert len(seen) >= 2 * len(model.layers)
    _check("loss gradient", loss.backward())
    for key, param, grad in model.parameters():
        _check(f"{key} param", param)
        _check(f"{key} grad", grad)
    for key, entries in opt.state.items():
        for name, value in entries.items():
            _check(f"optimizer state {key}.{name}", value)
    # The buffers a layer keeps between steps (im2col columns, GEMM outputs) too.
    for layer in model.layers:
        for name, value in getattr(layer, "workspace", {}).items():
            _check(f"{layer.name} workspace {name}", value)

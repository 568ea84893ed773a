"""Building a run from a validated config: data, model, loss, task, initial weights and
optimizer, targets in the form the loss takes (shared by train, eval, gradcheck, time)."""

from dataclasses import dataclass

import numpy as np

from dlcli.config.resolve import Config, build_model, compute_dtype, infer_task, \
    pairing_warnings, to_internal_shape
from dlcli.errors import unknown_key_message
from dlcli.config.schedule import validate_schedule
from dlcli.data.lazy import value_range
from dlcli.errors import ConfigError, DataError
from dlcli.nn.layers.base import display_shape, size_of
from dlcli.nn.losses import fuse_output
from dlcli.registry import LOSSES, OPTIMIZERS, SCHEDULES
from dlcli.train.callbacks import Monitor
from dlcli.train.metrics import monitorable


@dataclass
class Prepared:
    """Everything a run needs, built from a config (shared by train, eval, gradcheck, time)."""

    config: Config
    splits: object
    model: object
    loss: object
    task: str
    warnings: list


def make_loss(config: Config, model):
    """The config's loss, fused with the model's output activation when the pair allows."""
    loss = LOSSES.get(config["model"]["loss"])()
    fuse_output(model, loss)
    return loss


def output_activation_name(model) -> str:
    act = model.output_activation()
    return act.activation_name if act is not None else "identity"


def prepare(config: Config, seed: int | None = None, *, data=True) -> Prepared:
    """Load data, build (but do not initialize) the model, pick the loss and the task."""
    from dlcli.data.prepare import prepare as prepare_data

    seed = config["seed"] if seed is None else seed
    # An autoencoder's target is its input: its data need no labels.
    needs_targets = config["task"] != "reconstruction"
    splits = (prepare_data(config["data"], config.base_dir, seed, targets=needs_targets,
                           dtype=compute_dtype(config)) if data else None)
    declared = config["model"]["input_shape"]
    input_shape = tuple(splits.input_shape) if splits is not None else to_internal_shape(declared)
    if declared is not None and splits is not None and to_internal_shape(declared) != input_shape:
        raise ConfigError(
            f"model.input_shape: the config says {tuple(declared)} but the data's samples "
            f"have shape {display_shape(input_shape)}", file=config.source)
    model = build_model(config, input_shape)
    out_shape = model.output_shape
    task = infer_task(config, out_shape[0] if len(out_shape) == 1 else None)
    warnings = list(config.warnings) + (list(splits.warnings) if splits is not None else [])
    if (splits is not None and config["task"] == "auto" and task == "regression"
            and splits.class_names is not None and len(splits.class_names) == 2
            and tuple(out_shape) == (1,)):
        task = "binary"  # ADALINE-style: a linear output fitted to 0/1 class labels
    if splits is not None:
        _check_targets(config, splits, task, out_shape)
    loss = make_loss(config, model)
    if loss.name == "perceptron" and output_activation_name(model) not in ("binary_step",
                                                                           "identity"):
        raise ConfigError(
            f"model.layers[{len(model.layers) - 1}]: the perceptron loss thresholds z = xᵀW at "
            f"0, so the output must be binary_step or identity, not "
            f"{output_activation_name(model)}", file=config.source)
    warnings += pairing_warnings(task, output_activation_name(model), loss.name)
    if task == "reconstruction":
        warnings += overcomplete_warnings(model)
    return Prepared(config, splits, model, loss, task, warnings)


def _fits_classes(k: int) -> str:
    """The output layer and loss that represent ``k`` classes."""
    if k == 2:
        return ("end the model in {type: dense, units: 1, activation: sigmoid} with loss: "
                "binary_crossentropy, or units: 2 with softmax and categorical_crossentropy")
    return (f"end the model in {{type: dense, units: {k}, activation: softmax}} with loss: "
            "categorical_crossentropy")


def _check_probability_targets(config, splits, task):
    """A cross-entropy of targets outside [0, 1] is no cross-entropy (it goes negative)."""
    loss = config["model"]["loss"]
    if loss != "binary_crossentropy" or task == "classification":
        return
    if task == "reconstruction":
        arrays = (splits.x_train, splits.x_val, splits.x_test)
    else:
        arrays = (splits.y_train, splits.y_val, splits.y_test)
    ranges = [value_range(a) for a in arrays if a is not None and len(a) and a.size]
    low = min(lo for lo, _ in ranges)
    high = max(hi for _, hi in ranges)
    if low >= 0 and high <= 1:
        return
    if task == "reconstruction":
        fix = (f"with data.normalize: {config['data']['normalize']} the inputs (an "
               "autoencoder's targets) are not; set data.normalize: minmax, or use loss: mse")
    else:
        fix = "use loss: mse with an identity output for values, or scale the targets"
    raise ConfigError(f"model.loss: binary_crossentropy needs targets in [0, 1], but the "
                      f"targets range from {low:.4g} to {high:.4g}; {fix}",
                      file=config.source)


def _check_targets(config, splits, task, out_shape):
    src = config["data"]["source"]
    last = f"model.layers[{len(config['model']['layers']) - 1}]"
    k = splits.n_classes
    if task == "binary" and k is not None and k > 2:
        loss = config["model"]["loss"]
        raise ConfigError(
            f"model.loss: {loss} with one output unit separates two classes, but "
            f"{src} has {k} classes ({_class_list(splits.class_names)}); {_fits_classes(k)}",
            file=config.source)
    _check_probability_targets(config, splits, task)
    if task == "classification":
        if splits.class_names is None:
            raise DataError("task classification needs class labels, but the targets are "
                            "values; set data.labels: class or use another loss", where=src)
        k = len(splits.class_names)
        if tuple(out_shape) != (k,):
            _check_label_range(splits, out_shape, last)
            raise ConfigError(f"{last}: the output has shape {tuple(out_shape)} but the data "
                              f"has {k} classes; set units: {k} ({_fits_classes(k)})",
                              file=config.source)
    elif task == "reconstruction":
        if tuple(out_shape) != tuple(splits.input_shape):
                raise ConfigError(f"{last}: a reconstruction model must output the input's shape "
                              f"{display_shape(splits.input_shape)}, got "
                              f"{display_shape(out_shape)}", file=config.source)
    else:
        y = splits.y_train
        k = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
        if tuple(out_shape) != (k,):
            hint = ""
            if splits.class_names is not None and config["task"] == "auto":
                hint = (f" (the loss {config['model']['loss']} implies task {task}; for the "
                        f"{len(splits.class_names)} class labels set task: classification)")
            raise ConfigError(f"{last}: the output has shape {tuple(out_shape)} but each "
                              f"target has {k} value(s){hint}", file=config.source)


def _class_list(names) -> str:
    names = [str(n) for n in names]
    return ", ".join(names) if len(names) <= 5 else ", ".join(names[:3]) + f", ..., {names[-1]}"


def _check_label_range(splits, out_shape, last):
    """Integer labels beyond a softmax's width are more often a typo in the data than a
    model too narrow: name the first such label where the data file holds it."""
    names, rows = splits.class_names, splits.first_rows or {}
    units = out_shape[0] if len(out_shape) == 1 else None
    if (units is None or units >= len(names) or names != [str(i) for i in range(len(names))]
            or not any(label >= units for label in rows)):
        return
    label = min(label for label in rows if label >= units)
    raise DataError(f"label {label} is outside the {units} classes 0-{units - 1} of the output "
                    f"layer ({last}.units: {units}); fix the data, or if it really has "
                    f"{len(names)} classes set units: {len(names)}", where=rows[label])


def initialize(config: Config, model, seed: int):
    """Initialize ``model`` from the generator ``[seed, 0]`` and return the config's optimizer
    and the training generator ``[seed, 1]`` (data order and dropout masks)."""
    model.build(np.random.default_rng([seed, 0]))
    train_rng = np.random.default_rng([seed, 1])
    model.set_rng(train_rng)
    options = dict(config["training"]["optimizer"])
    optimizer = OPTIMIZERS.get(options.pop("type"))(**options)
    return optimizer, train_rng


def targets(splits, task, dtype, loss=None):
    """Train, validation and test targets in the form ``loss`` takes: class labels for
    categorical cross-entropy, one-hot rows for any other loss on class labels (notes
    1.6.2), the inputs themselves for reconstruction."""
    from dlcli.data.encoding import one_hot
    from dlcli.data.lazy import OneHotRows, is_lazy
    from dlcli.train.metrics import prepare_targets
    pick = (lambda x, y: x) if task == "reconstruction" else (lambda x, y: y)
    out = [prepare_targets(pick(x, y), task, dtype) for x, y in
           ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val),
            (splits.x_test, splits.y_test))]
    if task == "classification" and loss is not None and loss.name != "categorical_crossentropy":
        k = len(splits.class_names)
        # streamed data: one-hot rows made per batch, not an N x k array
        encode = OneHotRows if is_lazy(splits.x_train) else one_hot
        out = [encode(y, k, dtype=dtype) for y in out]
    return out


def make_schedule(spec, base_lr: float, total_epochs: int | None = None):
    """Return ``lr(epoch) -> float`` for a (validated) schedule spec and the optimizer's lr.

    ``epoch`` is 0-based. ``total_epochs`` (``training.epochs``) fills cosine's ``t_max``
    when it is null: the epochs left after warm-up. Raises ConfigError (every problem, with
    its ``training.schedule.<key>`` path) for a spec that :func:`validate_schedule` rejects.
    """
    resolved, errors = validate_schedule(spec)
    if errors:
        raise ConfigError([(".".join(["training.schedule", *map(str, path)]), message)
                           for path, message in errors])
    params = dict(resolved)
    kind = params.pop("type")
    warmup = int(params.pop("warmup_epochs", 0))
    base_lr = float(base_lr)
    if kind == "cosine" and params.get("t_max") is None:
        if total_epochs is None:
            raise ConfigError([("training.schedule.t_max", "required key is missing (no "
                                "epoch count to default it from)")])
        params["t_max"] = max(1, int(total_epochs) - warmup)
    function = SCHEDULES.get(kind)

    def lr(epoch: int) -> float:
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch index must be >= 0, got {epoch}")
        if epoch < warmup:
            return base_lr * (epoch + 1) / warmup
        return function(epoch - warmup, base_lr=base_lr, **params)

    return lr


def make_monitor(config: Config, task: str, has_validation: bool) -> Monitor:
    """The metric that picks the best checkpoint (and early stopping), checked against what
    a run of this task logs."""
    training = config["training"]
    monitor_name = training["monitor"]
    if monitor_name == "auto":
        monitor_name = "val_loss" if has_validation else "loss"
    if monitor_name.startswith("val_") and not has_validation:
        raise ConfigError(f"training.monitor: {monitor_name!r} needs a validation split; set "
                          "data.validation_split above 0 or monitor 'loss'", file=config.source)
    known = monitorable(task, has_validation)
    if monitor_name not in known:
        hint = unknown_key_message(monitor_name, known).replace("unknown key", "")
        raise ConfigError(f"training.monitor: {task} runs log no metric {monitor_name!r}"
                          f"{hint}", file=config.source)
    return Monitor(monitor_name, training["monitor_mode"],
                   (training["early_stopping"] or {}).get("min_delta", 0.0))


# ---- autoencoders (notes 4.1.1) ---------------------------------------------------------
def bottleneck(model) -> tuple[str, tuple, int]:
    """(layer name, output shape in the notes' layout, size) of the smallest layer output;
    the first one on a tie (the encoder's side)."""
    best = None
    for layer, _, out in model.shapes():
        if best is None or size_of(out) < best[2]:
            best = (layer.name, display_shape(out), size_of(out))
    if best is None:  # no layers: the input is all there is
        return ("input", display_shape(model.input_shape), size_of(model.input_shape))
    return best


def overcomplete_warnings(model) -> list[str]:
    """One warning when the bottleneck is not smaller than the input, else none."""
    name, shape, size = bottleneck(model)
    d = size_of(model.input_shape)
    if size < d:
        return []
    return [f"the bottleneck {name} {shape} (the smallest layer output) has {size} values, "
            f"not fewer than the input's {d}: an overcomplete autoencoder can learn the "
            "identity (notes 4.1.1: make the bottleneck smaller than the input)"]

"""From a resolved config to the engine's terms: the task, the dtype, the internal input
shape and the (unbuilt) model."""

import numpy as np

from dlcli.errors import ConfigError, ShapeError
from dlcli.nn.layers.base import IncompatibleShape
from dlcli.nn.model import Model


def infer_task(config, output_units: int | None = None) -> str:
    """The task implied by the loss when ``task: auto``."""
    task = config["task"]
    if task != "auto":
        return task
    loss = config["model"]["loss"]
    if loss == "categorical_crossentropy":
        return "classification"
    if loss in ("binary_crossentropy",):
        return "multilabel" if (output_units or 1) > 1 else "binary"
    if loss == "perceptron":
        return "binary"
    return "regression"


USUAL_PAIRS = {
    # task -> (output activation, losses) of notes figure 1.10
    "classification": ({"softmax"}, {"categorical_crossentropy"}),
    "binary": ({"sigmoid", "binary_step", "identity"}, {"binary_crossentropy", "perceptron",
                                                         "widrow_hoff", "mse"}),
    "multilabel": ({"sigmoid"}, {"binary_crossentropy"}),
    "regression": ({"identity", "sigmoid"}, {"mse", "widrow_hoff", "binary_crossentropy"}),
    "reconstruction": ({"identity", "sigmoid"}, {"mse", "binary_crossentropy"}),
}


def pairing_warnings(task: str, output_activation: str, loss: str) -> list[str]:
    """Warn on combinations outside the notes' table (figure 1.10)."""
    acts, losses = USUAL_PAIRS[task]
    notes = []
    if output_activation not in acts or loss not in losses:
        notes.append(
            f"task {task} usually pairs output activation {'/'.join(sorted(acts))} with loss "
            f"{'/'.join(sorted(losses))}; this config has {output_activation} + {loss}")
    if loss == "categorical_crossentropy" and output_activation != "softmax":
        notes.append("categorical_crossentropy expects probabilities: end the model in softmax")
    if loss == "binary_crossentropy" and output_activation not in ("sigmoid",):
        notes.append("binary_crossentropy expects probabilities in [0, 1]: end the model in sigmoid")
    return notes


def to_internal_shape(shape) -> tuple:
    """The notes' (H, W, C) -> internal (C, H, W); a 2-D (H, W) is one channel."""
    shape = tuple(shape)
    if len(shape) == 3:
        h, w, c = shape
        return (c, h, w)
    if len(shape) == 2:
        return (1,) + shape
    return shape


def compute_dtype(config):
    """The NumPy dtype of the config's ``dtype`` key (the model's and its data's)."""
    return np.float64 if config["dtype"] == "float64" else np.float32


def build_model(config, input_shape: tuple):
    """The (unbuilt) Model of ``config`` for an internal ``input_shape``; shape problems
    become a ShapeError naming the layer."""
    try:
        model = Model.from_config(config["model"]["layers"], input_shape, compute_dtype(config))
        model.shapes()
    except IncompatibleShape as exc:
        raise ShapeError(str(exc), file=config.source) from None
    except (ValueError, KeyError) as exc:
        raise ConfigError(str(exc).strip("'\""), file=config.source) from None
    return model

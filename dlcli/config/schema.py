"""The config schema as data: each section lists its keys, rules and defaults.

``REQUIRED`` marks keys without a default. Layer, activation and optimizer keys are checked
against the class's constructor signature and the rules the class declares (``RULES``);
schedules and synthetic data sets declare theirs beside them.
"""

from dlcli import rules as r

REQUIRED = object()

TASKS = ("auto", "classification", "binary", "multilabel", "regression", "reconstruction")

TOP = {
    "name": (r.Rule("a name of letters, digits, '.', '_' or '-' (it names the run directory)",
                    lambda v: v if isinstance(v, str) and v and v not in (".", "..")
                    and all(c.isalnum() or c in "._-" for c in v) else r._FAIL),
             None),  # None: the config file's stem
    "seed": (r.nonnegative_int, 0),
    "task": (r.choice(*TASKS), "auto"),
    "dtype": (r.choice("float32", "float64"), "float32"),
    "data": ("section", REQUIRED),
    "model": ("section", REQUIRED),
    "training": ("section", {}),
}

DATA = {
    "source": (r.string, REQUIRED),
    "params": (r.mapping, {}),
    "target": (r.optional(r.string_or_list()), None),
    "features": (r.optional(r.string_or_list()), None),  # CSV: names or globs (default: all)
    "exclude": (r.optional(r.string_or_list(allow_empty=True)), None),  # CSV: names or globs left out
    "missing": (r.choice("refuse", "drop", "mean"), "refuse"),  # CSV: empty cells
    "layout": (r.choice("auto", "NHWC", "NCHW", "NHW"), "auto"),
    "validation_split": (r.fraction, 0.1),
    "test_split": (r.fraction, 0.2),
    "normalize": (r.choice("standard", "minmax", "none"), "standard"),
    "labels": (r.choice("auto", "class", "value"), "auto"),
}

MODEL = {
    "input_shape": (r.optional(r.list_of(r.positive_int, "a list of positive integers "
                                         "(height, width, channels) or (features,)", 1)), None),
    "layers": ("layers", REQUIRED),
    "loss": ("loss", REQUIRED),
    "init_from": (r.optional(r.string), None),
}

TRAINING = {
    "epochs": (r.positive_int, 10),
    "batch_size": (r.batch_size_rule(), 32),
    "optimizer": ("optimizer", {"type": "adam"}),
    "shuffle": (r.boolean, True),
    "monitor": (r.string, "auto"),  # auto: val_loss when there is a validation split, else loss
    "monitor_mode": (r.choice("auto", "min", "max"), "auto"),
    "early_stopping": ("early_stopping", None),
    "output_dir": (r.string, "runs"),
    "clip_norm": (r.optional(r.number(0.0, min_open=True)), None),
    "clip_value": (r.optional(r.number(0.0, min_open=True)), None),
    "schedule": ("schedule", None),
    "diagnostics": (r.boolean, False),
    # epochs between checkpoints, or auto: as often as keeps writing near 10% of the time
    "checkpoint_every": (r.Rule("a positive integer or 'auto'",
                                lambda v: v if v == "auto" else r.positive_int(v)), "auto"),
    "tensorboard": (r.boolean, False),  # TensorBoard event files in <run>/tensorboard/
    "parallel": ("parallel", None),  # data-parallel shards (dlcli.parallel)
}

PARALLEL = {
    "shards": (r.positive_int, REQUIRED),
    "reduce": (r.choice("tree", "allreduce"), "tree"),
}

# Keys Keras, Lightning or Hydra users put elsewhere: (section, key) -> where dlcli reads it.
# The section is the dotted path of the mapping the key was found in ("" at the top).
_EVERYWHERE = {"lr": "training.optimizer.lr", "learning_rate": "training.optimizer.lr",
               "epochs": "training.epochs", "max_epochs": "training.epochs",
               "num_epochs": "training.epochs", "n_epochs": "training.epochs",
               "batch_size": "training.batch_size", "optimizer": "training.optimizer",
               "loss": "model.loss", "layers": "model.layers", "input_shape": "model.input_shape",
               "validation_split": "data.validation_split", "test_split": "data.test_split",
               "source": "data.source", "target": "data.target",
               "patience": "training.early_stopping.patience",
               "early_stopping": "training.early_stopping", "shuffle": "training.shuffle",
               "momentum": "training.optimizer.momentum",
               "weight_decay": "training.optimizer.weight_decay",
               "seed": "seed", "task": "task", "name": "name", "dtype": "dtype"}


def misplaced(section: str, key) -> str | None:
    """Where ``key``, found in the mapping at ``section``, belongs; None if nowhere else."""
    name = str(key).lower()
    target = _EVERYWHERE.get(name)
    if section == "training.optimizer" and name == "name":
        target = "training.optimizer.type"
    here = f"{section}.{key}" if section else str(key)
    return target if target is not None and target != here else None


EARLY_STOPPING = {
    "patience": (r.nonnegative_int, 5),
    "min_delta": (r.number(0.0), 0.0),
}

# A layer's own values are checked against the rules its class declares (``RULES``,
# ``RELATIONS``: :mod:`dlcli.rules`); its name, activation and initializer against these and
# the registries.
LAYER_NAME = r.optional(r.Rule(
    "a layer name of letters, digits and _ not starting with a digit",
    lambda v: v if isinstance(v, str) and v and v.replace("_", "a").isalnum()
    and not v[0].isdigit() else r._FAIL))

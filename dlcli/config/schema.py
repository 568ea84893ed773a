"""The config schema as data: each section lists its keys, rules and defaults.

``REQUIRED`` marks keys without a default. Layer keys are checked against the layer class's
constructor signature and typed by ``LAYER_KEY_RULES``; optimizer keys against the
optimizer's hyperparameters.
"""

from dlcli.config import rules as r

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
    "exclude": (r.optional(r.string_or_list()), None),  # CSV: names or globs left out
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
    "tensorboard": (r.boolean, False),  # TensorBoard event files in <run>/tensorboard/
    "parallel": ("parallel", None),  # data-parallel shards (dlcli.parallel)
}

PARALLEL = {
    "shards": (r.positive_int, REQUIRED),
    "reduce": (r.choice("tree", "allreduce"), "tree"),
}

EARLY_STOPPING = {
    "patience": (r.nonnegative_int, 5),
    "min_delta": (r.number(0.0), 0.0),
}

_ACTIVATION_NAME = r.string  # checked against the registry in resolve


LAYER_KEY_RULES = {
    "name": r.optional(r.Rule(
        "a layer name of letters, digits and _ not starting with a digit",
        lambda v: v if isinstance(v, str) and v and v.replace("_", "a").isalnum()
        and not v[0].isdigit() else r._FAIL)),
    "units": r.positive_int,
    "filters": r.positive_int,
    "kernel_size": r.pair(1),
    "pool_size": r.pair(1),
    "stride": r.optional(r.pair(1)),
    "padding": r.padding_rule(),
    "output_padding": r.pair(0),
    "use_bias": r.boolean,
    "flip_kernel": r.boolean,
    "rate": r.fraction,
    "update": r.choice("gradient", "unit_norm"),
    "flatten_input": r.boolean,
    "shape": r.reshape_shape(),
    "pool": r.string,
    "negative_slope": r.number(0.0, 1.0, max_open=True),
}

"""``dlcli shapes``: per-layer shapes, sizes, parameters and multiply-adds, without compute."""

import numpy as np

from dlcli.nn.layers.base import display_shape, size_of


def optimizer_slots(opt: dict, params: int = 1, dtype=np.float32) -> int:
    """Parameter-sized arrays the optimizer keeps between steps for a model of ``params``
    values: its state (Adam: two moments) and its reused work arrays. Counted from the
    optimizer itself, stepped twice, so the figure follows its code. It steps a parameter of
    ``min(params, blas.MIN_SIZE)`` values: the packed buffer's size as far as the choice
    between BLAS and NumPy passes goes (SGD keeps no work array on the BLAS route)."""
    import dlcli.nn.optim  # noqa: F401 - registers the optimizers
    from dlcli.nn import blas
    from dlcli.registry import OPTIMIZERS
    config = dict(opt)
    optimizer = OPTIMIZERS.get(config.pop("type"))(**config)
    param = np.ones(max(1, min(params, blas.MIN_SIZE)), dtype)
    for _ in range(2):
        optimizer.step([("p", param, np.full_like(param, 0.5))])
    return sum(1 for a in optimizer.kept_arrays("p") if a.shape == param.shape)


def layer_table(model, batch_size: int, optimizer: dict) -> dict:
    """The rows of ``dlcli shapes`` (the first row is the input) and the memory estimate.

    Memory for one training step, in bytes of the compute dtype: parameters, gradients,
    optimizer state and work arrays (Adam: two moments and one work array), the activations
    kept for backpropagation (the input and every layer's and activation's output, times the
    batch size), and the scratch buffers layers keep between steps (convolutions' column
    matrices, pooling planes; ``Layer.workspace_bytes``). Short-lived temporaries within a
    step are not counted.
    """
    itemsize = np.dtype(model.dtype).itemsize
    rows = [{"name": "input", "type": "input", "output_shape": list(display_shape(model.input_shape)),
             "size": size_of(model.input_shape), "params": 0, "mult_adds": 0, "activation": None}]
    kept = size_of(model.input_shape)
    workspaces = 0
    walk = model.shapes()
    for index, (layer, in_shape, out_shape) in enumerate(walk):
        # training never needs the data's gradient: the first layer skips it
        workspaces += layer.workspace_bytes(in_shape, batch_size, itemsize,
                                            need_input_grad=index > 0)
        params = sum(size_of(s) for s in layer.param_shapes(in_shape).values())
        act = layer.activation.activation_name if layer.activation is not None else None
        if layer.type_name == "activation":
            act = layer.activation_name
        rows.append({"name": layer.name, "type": layer.type_name,
                     "output_shape": list(display_shape(out_shape)), "size": size_of(out_shape),
                     "params": params, "mult_adds": int(layer.mult_adds(in_shape)),
                     "activation": act})
        kept += _kept_outputs(layer, in_shape, out_shape, walk[index + 1:index + 3])
    total = sum(r["params"] for r in rows)
    slots = optimizer_slots(optimizer, total, model.dtype)
    memory = {
        "parameters": total * itemsize,
        "gradients": total * itemsize,
        "optimizer_state": slots * total * itemsize,
        "activations": kept * batch_size * itemsize,
        "workspaces": workspaces,
    }
    memory["total"] = sum(memory.values())
    return {"layers": rows, "total_params": total,
            "total_mult_adds": sum(r["mult_adds"] for r in rows),
            "batch_size": batch_size, "dtype": np.dtype(model.dtype).name,
            "memory_bytes": memory}


def _kept_outputs(layer, in_shape, out_shape, following) -> int:
    """Values per sample the layer and its activation output (``following``: the next
    entries of ``model.shapes()``, up to two); a ReLU that runs after the
    max pooling it precedes (``PoolThenReLU``) outputs the pooled size, and a convolution
    that hands its output to that pooling in its product layout (``ConvThenPool``) makes
    none (the product's buffer is one of its workspaces)."""
    from dlcli.nn.model import ConvThenPool, PoolThenReLU
    relu = layer.activation if layer.activation is not None else layer
    own = size_of(out_shape) if layer.activation is not None else 0
    activation = size_of(out_shape)
    if following and PoolThenReLU.applies(relu, following[0][0]) \
            and PoolThenReLU.covers(following[0][0], out_shape[1:]):
        activation = size_of(following[0][2])
    if following and ConvThenPool.hands_over(layer, in_shape, [f[0] for f in following]):
        own = 0
        if layer.activation is None:
            activation = 0
    return own + activation


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def shapes_report(config, ranks: int | None = None) -> dict:
    """The ``dlcli shapes`` report of a config. Uses ``model.input_shape`` when given,
    otherwise reads the data once to learn the input shape (no forward pass). With
    ``training.parallel`` or ``ranks``: also the memory of one rank (``per_rank``)."""
    from dlcli.config.resolve import build_model, to_internal_shape
    from dlcli.train.session import prepare

    training = config["training"]
    batch = training["batch_size"]
    if config["model"]["loss"] is None:  # the layers alone (dlcli shapes needs no loss)
        model = build_model(config, to_internal_shape(config["model"]["input_shape"]))
        report = layer_table(model, 1 if batch == "full" else batch, training["optimizer"])
        task = config["task"]
        report.update(task=None if task == "auto" else task, loss=None, warnings=[])
        return _per_rank(report, config, model, 1 if batch == "full" else batch, ranks)
    prep = prepare(config, data=config["model"]["input_shape"] is None)
    if batch == "full":
        batch = len(prep.splits.x_train) if prep.splits is not None else 1
    report = layer_table(prep.model, batch, training["optimizer"])
    report["task"] = prep.task
    report["loss"] = prep.loss.name
    report["warnings"] = prep.warnings
    return _per_rank(report, config, prep.model, batch, ranks)


def _per_rank(report: dict, config, model, batch: int, ranks: int | None) -> dict:
    """With ``training.parallel`` or ``--ranks``: the memory of one rank's step."""
    training = config["training"]
    if ranks is None and not training.get("parallel"):
        return report
    from dlcli.parallel.memory import per_rank_memory
    spec = training.get("parallel") or {"shards": ranks, "reduce": "tree"}
    ranks = ranks or 1
    if spec["shards"] % ranks:
        from dlcli.errors import ConfigError
        raise ConfigError(f"training.parallel.shards: {spec['shards']} shards cannot be "
                          f"shared evenly by {ranks} ranks (--ranks)", file=config.source)
    report["per_rank"] = per_rank_memory(model, batch, training["optimizer"],
                                         spec["shards"], ranks, spec["reduce"])
    return report

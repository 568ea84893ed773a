"""``dlcli shapes``: per-layer shapes, sizes, parameters and multiply-adds, without compute."""

# Re-exported: the table and memory estimate live with the engine they measure.
from dlcli.nn.memory import layer_table, optimizer_slots  # noqa: F401


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

"""``dlcli gradcheck``: backpropagation of a config's model against finite differences."""

import numpy as np

from dlcli.nn.gradcheck import check_model


def run_gradcheck(config, samples: int = 4, entries: int = 20, tolerance: float = 1e-5) -> dict:
    """Build the config's model in float64 and check every parameter tensor's gradient on
    ``samples`` training samples. Dropout runs as at evaluation (deterministic)."""
    from dlcli.train.session import prepare, targets

    config.data["dtype"] = "float64"
    prep = prepare(config)
    model, loss = prep.model, prep.loss
    reason = not_a_gradient(model, loss)
    if reason:
        return {"tolerance": tolerance, "samples": 0, "loss": loss.name, "passed": True,
                "applicable": False, "reason": reason, "params": []}
    rng = np.random.default_rng(config["seed"])
    model.build(rng)
    # Random weights away from zero so that no ReLU/step kink or zero bias hides an error.
    for _, param, _ in model.parameters():
        param += rng.normal(0, 0.1, size=param.shape)
    x = prep.splits.x_train[:samples].astype(np.float64)
    y = targets(prep.splits, prep.task, np.float64, loss)[0][:samples]
    rows = check_model(model, loss, x, y, rng, entries=entries)
    for row in rows:
        row["passed"] = row["relative_error"] <= tolerance
    return {"tolerance": tolerance, "samples": int(len(x)), "loss": loss.name,
            "passed": all(r["passed"] for r in rows), "applicable": True, "params": rows}


def not_a_gradient(model, loss) -> str | None:
    """Why backpropagation of this model is not the gradient of its loss, if it is not: the
    learning rules of notes 1.3-1.4 update the weights by a rule, not by a derivative."""
    if loss.name == "perceptron":
        return ("the perceptron rule W ← W + η(y − ŷ)x is not the gradient of its loss (the "
                "number of mistakes, a step function): there is nothing to check")
    rules = [layer.name for layer in model.layers if getattr(layer, "update", "") == "unit_norm"]
    if rules:
        return (f"layer {rules[0]} uses the unit-norm Widrow-Hoff rule, which scales each "
                "sample's update by 1/‖x̃‖: by design not the gradient of the loss")
    return None

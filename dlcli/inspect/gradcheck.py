"""Central finite-difference gradient checks, always in float64, and ``dlcli gradcheck``
(backpropagation of a config's model against finite differences).

The scalar checked is ``sum(forward(x) * R)`` with a fixed random upstream gradient ``R``
(not ones, which hides transposition mistakes), so ``backward(R)`` must equal the
numerical derivative of that sum with respect to the input and every parameter.
"""

import numpy as np


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(1e-8, max|a| + max|n|) — scale-free and safe at zero."""
    denom = max(1e-8, float(np.max(np.abs(analytic))) + float(np.max(np.abs(numeric))))
    return float(np.max(np.abs(analytic - numeric))) / denom


def numeric_gradient(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f() / d array by central differences, perturbing ``array`` in place."""
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def check_layer(layer, x: np.ndarray, rng: np.random.Generator, eps: float = 1e-6) -> dict:
    """Relative error of ``layer``'s backward against central differences.

    ``layer`` must be built in float64 and ``x`` a float64 batch. Returns
    ``{"input": err, "<param>": err, ...}``. The layer runs with ``training=False`` so that
    stochastic layers are deterministic.
    """
    x = np.array(x, dtype=np.float64)
    y = layer.forward(x, training=False)
    upstream = rng.standard_normal(y.shape)

    def scalar() -> float:
        return float(np.sum(layer.forward(x, training=False) * upstream))

    layer.zero_grad()
    layer.forward(x, training=False)
    dx = layer.backward(upstream.copy())
    errors = {"input": relative_error(dx, numeric_gradient(scalar, x, eps))}
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    for key, param in layer.params.items():
        errors[key] = relative_error(analytic[key], numeric_gradient(scalar, param, eps))
    return errors


def check_model(model, loss, x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                entries: int = 20, eps: float = 1e-6) -> list[dict]:
    """Backpropagation against central differences for every parameter tensor of a built
    float64 ``model`` on the batch (x, y), through ``loss``.

    For each tensor, up to ``entries`` coordinates drawn from ``rng`` are perturbed (all of
    them when the tensor is smaller). Returns one row per tensor:
    ``{"param", "shape", "checked", "max_abs_error", "relative_error"}``.
    """
    model.zero_grad()
    logits = model.forward(x, training=False, logits=True)
    loss.forward(logits, y)
    model.backward(loss.backward())
    rows = []
    for key, param, grad in model.parameters():
        analytic = grad.copy().reshape(-1)
        flat = param.reshape(-1)
        count = min(entries, flat.size)
        picks = np.sort(rng.choice(flat.size, size=count, replace=False))
        numeric = np.empty(count)
        for j, i in enumerate(picks):
            old = flat[i]
            flat[i] = old + eps
            plus = loss.forward(model.forward(x, training=False, logits=True), y)
            flat[i] = old - eps
            minus = loss.forward(model.forward(x, training=False, logits=True), y)
            flat[i] = old
            numeric[j] = (plus - minus) / (2 * eps)
        rows.append({"param": key, "shape": list(param.shape), "checked": int(count),
                     "max_abs_error": float(np.max(np.abs(analytic[picks] - numeric))),
                     "relative_error": relative_error(analytic[picks], numeric)})
    return rows


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

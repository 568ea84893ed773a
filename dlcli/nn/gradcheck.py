"""Central finite-difference gradient checks, always in float64.

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

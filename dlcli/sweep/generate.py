"""Trial values for grid and random sweeps: trial i's values are a function of (seed, i).

* grid: the product of the ``values`` lists, the first parameter varying slowest
  (``itertools.product`` order); ``trials: N`` keeps the first N points.
* random: each parameter of trial i is drawn from its own generator
  ``numpy.random.default_rng([seed, i, crc32(key)])``, so adding a parameter to a spec
  leaves the others' draws unchanged, and a resumed sweep draws what the first one drew.

  ========================  ===========================================================
  ``{values: [a, b, ...]}``  one of the values, each with probability 1/len
  ``{uniform: [lo, hi]}``     lo + (hi - lo)·u, u ~ U[0, 1)
  ``{loguniform: [lo, hi]}``  exp(log lo + (log hi - log lo)·u)
  ``{int: [lo, hi]}``         an integer in [lo, hi], each equally likely
  ``{int: [lo, hi], log}``    floor(exp(log lo + (log(hi + 1) - log lo)·u)), capped at hi
  ========================  ===========================================================
"""

import math
import zlib

import numpy as np


def grid_size(parameters: dict) -> int:
    return math.prod(len(d["values"]) for d in parameters.values())


def grid_values(parameters: dict, number: int) -> dict:
    """The ``number``-th point of the grid (mixed-radix digits, last parameter fastest)."""
    keys = list(parameters)
    out = {}
    for key in reversed(keys):
        values = parameters[key]["values"]
        number, digit = divmod(number, len(values))
        out[key] = values[digit]
    return {key: out[key] for key in keys}


def _draw(dist: dict, rng: np.random.Generator):
    if "values" in dist:
        return dist["values"][int(rng.integers(len(dist["values"])))]
    if "uniform" in dist:
        low, high = dist["uniform"]
        return float(low + (high - low) * rng.random())
    if "loguniform" in dist:
        low, high = dist["loguniform"]
        return float(math.exp(math.log(low) + (math.log(high) - math.log(low)) * rng.random()))
    low, high = dist["int"]
    if dist.get("log"):
        value = math.exp(math.log(low) + (math.log(high + 1) - math.log(low)) * rng.random())
        return int(min(math.floor(value), high))
    return int(rng.integers(low, high + 1))


def random_values(parameters: dict, seed: int, number: int) -> dict:
    return {key: _draw(dist, np.random.default_rng([seed, number, zlib.crc32(key.encode())]))
            for key, dist in parameters.items()}


def trial_count(spec) -> int:
    if spec["method"] == "grid":
        size = grid_size(spec.parameters)
        return min(size, spec["trials"]) if spec["trials"] else size
    return spec["trials"]


def values_for(spec, number: int) -> dict:
    """Trial ``number``'s values (grid and random only; tpe asks Optuna as trials finish)."""
    if spec["method"] == "grid":
        return grid_values(spec.parameters, number)
    if spec["method"] == "random":
        return random_values(spec.parameters, spec["seed"], number)
    raise ValueError("tpe values come from Optuna")


def corner_values(parameters: dict) -> list[dict]:
    """Points that touch every value and both ends of every range (checked up front for tpe,
    whose values are chosen as trials finish): all lows, all highs, then each value."""
    def end(dist, which):
        if "values" in dist:
            return dist["values"][0 if which == 0 else -1]
        bounds = dist.get("uniform") or dist.get("loguniform") or dist.get("int")
        return bounds[which]
    points = [{k: end(d, 0) for k, d in parameters.items()},
              {k: end(d, 1) for k, d in parameters.items()}]
    for key, dist in parameters.items():
        for value in dist.get("values", [])[1:-1]:
            points.append({**points[0], key: value})
    unique = []
    for point in points:
        if point not in unique:
            unique.append(point)
    return unique


"""What one rank of a data-parallel run holds during a step (``dlcli shapes --ranks N``)."""

from __future__ import annotations

import math

import numpy as np

from dlcli.parallel.shards import block, frontier, split


def live_buffers(lo: int, hi: int) -> int:
    """Gradient-sized buffers alive at once while the tree sums the leaves ``[lo, hi)``
    (a node keeps its left half while its right half is computed)."""
    if hi - lo <= 1:
        return 1
    mid = split(lo, hi)
    return max(live_buffers(lo, mid), 1 + live_buffers(mid, hi))


def per_rank_memory(model, batch: int, optimizer: dict, shards: int, ranks: int,
                    reduce: str = "tree") -> dict:
    """Bytes one of ``ranks`` ranks needs for a step of ``shards`` shards of ``batch`` rows:
    the replicated parameters, gradients and optimizer state; the activations and layer
    workspaces of one shard's rows at a time (shards run one after the other); the tree's
    partial sums and the message buffers of the reduction."""
    from dlcli.inspect.shapes import layer_table

    rows = math.ceil(batch / shards)
    memory = dict(layer_table(model, rows, optimizer)["memory_bytes"])
    memory.pop("total")
    itemsize = np.dtype(model.dtype).itemsize
    grad = model.param_count() * itemsize
    first, last = block(0, ranks, shards)
    nodes = frontier(0, shards, first, last)
    tree = max(live_buffers(lo, hi) for lo, hi in nodes) if ranks > 1 else \
        live_buffers(0, shards)
    doubling = reduce == "tree" and ranks & (ranks - 1) == 0
    if ranks == 1:
        messages = 0
    elif reduce == "allreduce" or doubling:
        messages = 2 * grad  # the message and what the partner sends
    else:  # all-gather: every rank's nodes, padded to the longest frontier
        width = max(len(frontier(0, shards, *block(r, ranks, shards))) for r in range(ranks))
        messages = (1 + ranks) * width * grad
    memory["reduction"] = tree * grad + messages
    memory["total"] = sum(memory.values())
    return {"ranks": ranks, "shards": shards, "shards_per_rank": shards // ranks,
            "rows_per_shard": rows, "reduce": reduce, "memory_bytes": memory}

"""Summing the shards' gradients across ranks in the fixed tree order (``shards.py``).

One message per rank and step holds the step's float64 scalars (each shard's loss and
metric sums, each rank's pending signal) followed by the rank's gradient partial sums.
The scalars are laid out so that every entry is non-zero on at most one rank: adding the
messages of several ranks adds zeros to each entry, which is exact in any order.

``reduce: tree`` (the default): with a power-of-two number of ranks each rank's block of
shards is a node of the tree, and the ranks combine pairwise by recursive doubling
(log2 N exchanges of one partial sum each, every rank ending with the root). Otherwise the
ranks all-gather the nodes of their blocks and each evaluates the top of the tree.
``reduce: allreduce``: each rank sums its own shards, then ``MPI_Allreduce`` adds the
partial sums in MPI's order, which differs between rank counts (faster, not
reproducible across N).
"""

from __future__ import annotations

import numpy as np

from dlcli.parallel.shards import TreeSum, block, frontier


class Reducer:
    """Sums leaves ``0..shards-1`` of which this rank computes its block.

    ``size``: values per gradient; ``scalars``: float64 values per step (the layout is
    the caller's, non-zero on at most one rank each).
    """

    def __init__(self, world, shards: int, mode: str, size: int, dtype, scalars: int):
        self.world, self.shards, self.mode = world, shards, mode
        self.first, self.last = block(world.rank, world.size, shards)
        self.pool = TreeSum(size, dtype)
        self.dtype = np.dtype(dtype)
        n = world.size
        self.doubling = mode == "tree" and n > 1 and n & (n - 1) == 0
        self.nodes = frontier(0, shards, self.first, self.last)
        # every rank's frontier, padded to the longest, for the all-gather route
        fronts = [frontier(0, shards, *block(r, n, shards)) for r in range(n)]
        self.fronts = fronts
        width = 1 if self.doubling or mode == "allreduce" else max(len(f) for f in fronts)
        self.scalar_bytes = 8 * scalars
        self.message = np.zeros(self.scalar_bytes + width * size * self.dtype.itemsize,
                                np.uint8)
        self.scalars = self.message[:self.scalar_bytes].view(np.float64)
        self.grads = self.message[self.scalar_bytes:].view(self.dtype).reshape(width, size)
        self.received = (np.empty_like(self.message) if self.doubling
                         else np.empty(n * self.message.size, np.uint8) if n > 1 else None)
        self.size = size

    def reduce(self, leaf) -> np.ndarray:
        """The global gradient (a pool buffer: hand it back with ``release``); ``leaf(k,
        out)`` computes leaf ``k`` and fills its entries of ``self.scalars`` (zeroed here
        first). Afterwards ``self.scalars`` holds every rank's entries."""
        self.scalars.fill(0)
        if self.world.size == 1:
            return self.pool.node(0, self.shards, leaf)
        if self.mode == "allreduce":
            local = self.pool.node(self.first, self.last, leaf)
            self.world.allreduce_sum(local)
            self.world.allreduce_sum(self.scalars)
            return local
        if self.doubling:
            return self._doubling(leaf)
        for i, (lo, hi) in enumerate(self.nodes):
            value = self.pool.node(lo, hi, leaf)
            self.grads[i] = value
            self.pool.give(value)
        self.world.allgather(self.message, self.received)
        messages = self.received.reshape(self.world.size, -1)
        known = {}
        scalars = np.zeros_like(self.scalars)
        for r, nodes in enumerate(self.fronts):
            scalars += messages[r, :self.scalar_bytes].view(np.float64)
            grads = messages[r, self.scalar_bytes:].view(self.dtype).reshape(-1, self.size)
            known.update({node: grads[i] for i, node in enumerate(nodes)})
        self.scalars[...] = scalars
        return self.pool.node(0, self.shards, None, known)

    def _own(self, leaf) -> np.ndarray:
        lo, hi = self.nodes[0]
        return self.pool.node(lo, hi, leaf)

    def _doubling(self, leaf) -> np.ndarray:
        value = self._own(leaf)
        mine = self.grads[0]
        mine[...] = value
        theirs_scalars = self.received[:self.scalar_bytes].view(np.float64)
        theirs = self.received[self.scalar_bytes:].view(self.dtype)
        step = 1
        while step < self.world.size:
            partner = self.world.rank ^ step
            self.world.sendrecv(self.message, partner, self.received)
            # node = lower ranks' half + upper ranks' half (addition commutes bit for bit)
            np.add(mine, theirs, out=mine)
            np.add(self.scalars, theirs_scalars, out=self.scalars)
            step <<= 1
        value[...] = mine
        return value

    def release(self, value: np.ndarray) -> None:
        self.pool.give(value)

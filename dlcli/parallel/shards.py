"""Shards of a global batch and the fixed pairwise tree that sums their gradients.

A global batch of ``m`` rows is cut into ``S`` contiguous shards, shard ``k`` holding the
rows ``[⌊k·m/S⌋, ⌊(k+1)·m/S⌋)`` (sizes differ by at most one; a short last batch may leave
some shards empty). Every loss is a mean over its batch, so with ``g_k`` the mean gradient
of shard ``k`` (``m_k`` rows) the global batch's gradient is

    g = Σ_k (m_k / m) · g_k

Each leaf of the tree is ``(m_k / m) · g_k`` (an empty shard's leaf is zeros) and the sum
is taken in one fixed order, whatever process computed which leaf: the node covering the
shards ``[lo, hi)`` is ``node(lo, mid) + node(mid, hi)`` with ``mid = (lo + hi) // 2``.
Floating-point addition is commutative but not associative, so fixing the tree fixes the
bits. When ``N`` ranks split ``S`` shards into ``N`` contiguous blocks of ``S/N`` and ``N``
is a power of two, each block is a node of this tree (the halving splits land on block
boundaries), so the ranks combine whole blocks pairwise; otherwise each rank contributes
the largest nodes inside its block (:func:`frontier`).
"""

from __future__ import annotations

import numpy as np


def bounds(m: int, shards: int) -> list[int]:
    """The ``shards + 1`` row offsets cutting ``m`` rows into contiguous shards."""
    return [k * m // shards for k in range(shards + 1)]


def block(rank: int, size: int, shards: int) -> tuple[int, int]:
    """The shards ``[first, last)`` that ``rank`` of ``size`` computes (``size`` divides
    ``shards``)."""
    per = shards // size
    return rank * per, (rank + 1) * per


def split(lo: int, hi: int) -> int:
    """Where the tree splits the node ``[lo, hi)``."""
    return (lo + hi) // 2


def frontier(lo: int, hi: int, first: int, last: int) -> list[tuple[int, int]]:
    """The largest tree nodes below ``[lo, hi)`` that lie inside ``[first, last)``, left to
    right: what a rank owning those shards can sum on its own."""
    if hi <= first or lo >= last:
        return []
    if first <= lo and hi <= last:
        return [(lo, hi)]
    mid = split(lo, hi)
    return frontier(lo, mid, first, last) + frontier(mid, hi, first, last)


class TreeSum:
    """Evaluates tree nodes with a small pool of buffers (one per tree level in use).

    ``leaf(k, out)`` writes leaf ``k`` into ``out``; ``known`` maps nodes already summed
    elsewhere (by another rank) to their values.
    """

    def __init__(self, size: int, dtype):
        self.size, self.dtype = size, np.dtype(dtype)
        self._free: list[np.ndarray] = []

    def take(self) -> np.ndarray:
        return self._free.pop() if self._free else np.empty(self.size, self.dtype)

    def give(self, buf: np.ndarray) -> None:
        self._free.append(buf)

    def node(self, lo: int, hi: int, leaf, known=None) -> np.ndarray:
        """The value of node ``[lo, hi)`` in a buffer taken from the pool (give it back)."""
        if known is not None and (lo, hi) in known:
            out = self.take()
            np.copyto(out, known[(lo, hi)])
            return out
        if hi - lo == 1:
            out = self.take()
            leaf(lo, out)
            return out
        mid = split(lo, hi)
        left = self.node(lo, mid, leaf, known)
        right = self.node(mid, hi, leaf, known)
        np.add(left, right, out=left)
        self.give(right)
        return left


def tree_sum(leaves: list[np.ndarray]) -> np.ndarray:
    """The fixed-tree sum of ``leaves`` (a reference for tests and small uses)."""
    pool = TreeSum(leaves[0].size, leaves[0].dtype)
    return pool.node(0, len(leaves), lambda k, out: np.copyto(out, leaves[k].ravel()))

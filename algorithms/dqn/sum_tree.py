"""A sum tree over priorities for proportional prioritized replay (Schaul et al. 2016).

Leaves hold p_i^alpha; each inner node the sum of its children (and, in a second array, the
smallest positive leaf below it), so drawing an index with probability p_i^alpha / sum_j p_j^alpha,
updating a priority and reading the smallest positive priority are O(log N), vectorized over a
batch with NumPy. A leaf of 0 is never drawn.
"""

from __future__ import annotations

import numpy as np


class SumTree:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 1
        while self.size < capacity:
            self.size *= 2
        self.nodes = np.zeros(2 * self.size, dtype=np.float64)  # nodes[1] is the root
        self.mins = np.full(2 * self.size, np.inf)  # smallest positive leaf below each node

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    @property
    def min_positive(self) -> float:
        """The smallest leaf above 0 (inf when every leaf is 0)."""
        return float(self.mins[1])

    def get(self, idx: np.ndarray) -> np.ndarray:
        return self.nodes[np.asarray(idx) + self.size]

    def set(self, idx: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``idx`` to ``values`` (>= 0) and refresh their ancestors."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(idx) == 0:
            return
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), idx.shape)
        # Last write wins for duplicate indices, as in a sequential loop.
        order = np.arange(len(idx))
        uniq, last = np.unique(idx[::-1], return_index=True)
        pos = uniq + self.size
        leaf_values = values[order[::-1][last]]
        self.nodes[pos] = leaf_values
        self.mins[pos] = np.where(leaf_values > 0, leaf_values, np.inf)
        pos = np.unique(pos // 2)
        while pos[0] >= 1:
            self.nodes[pos] = self.nodes[2 * pos] + self.nodes[2 * pos + 1]
            self.mins[pos] = np.minimum(self.mins[2 * pos], self.mins[2 * pos + 1])
            if pos[0] == 1:
                break
            pos = np.unique(pos // 2)

    def find(self, mass: np.ndarray) -> np.ndarray:
        """For each value in [0, total), the leaf whose cumulative-sum interval contains it.
        Never a leaf of 0: where rounding puts a value past the last positive leaf of a
        subtree, the walk stays in the subtree that has mass."""
        mass = np.array(mass, dtype=np.float64)
        node = np.ones(len(mass), dtype=np.int64)
        while node[0] < self.size:
            left = 2 * node
            go_right = (mass >= self.nodes[left]) & (self.nodes[left + 1] > 0)
            go_right |= self.nodes[left] <= 0
            mass = np.where(go_right, mass - self.nodes[left], mass)
            node = np.where(go_right, left + 1, left)
        return node - self.size

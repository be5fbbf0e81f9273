"""The textbook O(n * B * U) dynamic programme, in NumPy.

This is the baseline the benchmarks measure against: the method of the
paper's reference code, vectorised over the budget axis and looping over
prompts and rollout counts. It is exact for any value model but slow.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def textbook_dp(
    table: NDArray[np.float64], span: NDArray[np.int64], costs: NDArray[np.int64], capacity: int
) -> tuple[NDArray[np.int64], float]:
    """Solve the reduced problem exactly by scanning every rollout count.

    Parameters
    ----------
    table : numpy.ndarray
        Gains above each prompt's minimum, shape ``(n, max_span)``.
    span : numpy.ndarray
        Extra rollouts allowed per prompt.
    costs : numpy.ndarray
        Cost units per rollout.
    capacity : int
        Budget left after the minimums, in cost units.

    Returns
    -------
    extra : numpy.ndarray of int64
        Extra rollouts per prompt.
    gain : float
        Their summed gain.
    """
    size = table.shape[0]
    best = np.zeros(capacity + 1)
    choice = np.zeros((size, capacity + 1), dtype=np.int64)
    for i in range(size):
        prefix = np.concatenate(([0.0], np.cumsum(table[i, : span[i]])))
        new = best.copy()
        for k in range(1, int(span[i]) + 1):
            shift = k * int(costs[i])
            if shift > capacity:
                break
            candidate = best[: capacity + 1 - shift] + prefix[k]
            improved = candidate > new[shift:]
            new[shift:][improved] = candidate[improved]
            choice[i, shift:][improved] = k
        best = new
    extra = np.zeros(size, dtype=np.int64)
    x = capacity
    for i in range(size - 1, -1, -1):
        extra[i] = choice[i, x]
        x -= extra[i] * costs[i]
    return extra, float(best[capacity])

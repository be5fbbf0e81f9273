"""Exact dynamic programmes over the budget (numba kernels).

``best[x]`` is the largest sum of gains of the prompts seen so far using at
most ``x`` cost units. Adding prompt ``i`` (cost ``c``, at most ``s`` extra
rollouts, prefix sums of gains ``G``) is a (max, +) convolution::

    new[x] = max_{0 <= k <= min(s, x // c)} best[x - k c] + G[k]

The general kernel scans every ``k`` (``O(capacity * s)`` per prompt). When
``G`` is concave the matrix ``M[t, j] = h[j] + G[t - j]`` along each residue
class ``x = r + t c`` is inverse-Monge, so its row maxima move monotonically
and divide and conquer finds them in ``O(capacity * log s)`` per prompt.
Both record the chosen ``k`` to rebuild the allocation; among equal values
they keep the smallest ``k``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._jit import kernel


@kernel
def _prefix_sums(table: NDArray[np.float64], i: int, span: int, out: NDArray[np.float64]) -> None:
    out[0] = 0.0
    for k in range(span):
        out[k + 1] = out[k] + table[i, k]


@kernel
def _rebuild(
    choice: NDArray[np.int32], costs: NDArray[np.int64], capacity: int
) -> NDArray[np.int64]:
    size = choice.shape[0]
    extra = np.zeros(size, dtype=np.int64)
    x = capacity
    for i in range(size - 1, -1, -1):
        extra[i] = choice[i, x]
        x -= extra[i] * costs[i]
    return extra


@kernel
def _convolve_general(
    best: NDArray[np.float64],
    new: NDArray[np.float64],
    choice: NDArray[np.int32],
    prefix: NDArray[np.float64],
    span: int,
    cost: int,
) -> None:
    """One prompt's step of the DP by scanning every ``k``."""
    for x in range(best.shape[0]):
        top = best[x]
        arg = 0
        for k in range(1, min(span, x // cost) + 1):
            value = best[x - k * cost] + prefix[k]
            if value > top:
                top = value
                arg = k
        new[x] = top
        choice[x] = arg


@kernel
def _convolve_concave(
    best: NDArray[np.float64],
    new: NDArray[np.float64],
    choice: NDArray[np.int32],
    prefix: NDArray[np.float64],
    span: int,
    cost: int,
) -> None:
    """One prompt's step of the DP by monotone divide and conquer (concave ``prefix``)."""
    capacity = best.shape[0] - 1
    # Pending ranges: rows [t_lo, t_hi] whose maximisers lie in columns [j_lo, j_hi].
    stack = np.empty((128, 4), dtype=np.int64)
    for r in range(min(cost, capacity + 1)):
        last = (capacity - r) // cost
        stack[0, 0] = 0
        stack[0, 1] = last
        stack[0, 2] = 0
        stack[0, 3] = last
        top = 1
        while top > 0:
            top -= 1
            t_lo = stack[top, 0]
            t_hi = stack[top, 1]
            j_lo = stack[top, 2]
            j_hi = stack[top, 3]
            t = (t_lo + t_hi) // 2
            # Rightmost maximiser: fewest extra rollouts for this prompt.
            arg = min(j_hi, t)
            value_best = best[r + arg * cost] + prefix[t - arg]
            for j in range(arg - 1, max(j_lo, t - span) - 1, -1):
                value = best[r + j * cost] + prefix[t - j]
                if value > value_best:
                    value_best = value
                    arg = j
            new[r + t * cost] = value_best
            choice[r + t * cost] = t - arg
            if t + 1 <= t_hi:
                stack[top, 0] = t + 1
                stack[top, 1] = t_hi
                stack[top, 2] = arg
                stack[top, 3] = j_hi
                top += 1
            if t_lo <= t - 1:
                stack[top, 0] = t_lo
                stack[top, 1] = t - 1
                stack[top, 2] = j_lo
                stack[top, 3] = arg
                top += 1


@kernel
def dp_kernel(
    table: NDArray[np.float64],
    span: NDArray[np.int64],
    costs: NDArray[np.int64],
    capacity: int,
    concave: bool,
) -> tuple[NDArray[np.int64], float]:
    """Solve the DP exactly: extra rollouts per prompt and their summed gain.

    ``concave=True`` requires every row of ``table`` to be non-increasing
    within its span and uses divide and conquer; otherwise every ``k`` is
    scanned.
    """
    size = table.shape[0]
    best = np.zeros(capacity + 1, dtype=np.float64)
    new = np.empty(capacity + 1, dtype=np.float64)
    choice = np.zeros((size, capacity + 1), dtype=np.int32)
    prefix = np.empty(table.shape[1] + 1, dtype=np.float64)
    for i in range(size):
        _prefix_sums(table, i, span[i], prefix)
        if concave:
            _convolve_concave(best, new, choice[i], prefix, span[i], costs[i])
        else:
            _convolve_general(best, new, choice[i], prefix, span[i], costs[i])
        best, new = new, best
    return _rebuild(choice, costs, capacity), best[capacity]


@kernel
def lagrangian_windows(
    table: NDArray[np.float64],
    span: NDArray[np.int64],
    costs: NDArray[np.int64],
    price: float,
    slack: float,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Range of extra rollouts each prompt can hold in an optimal allocation.

    With LP dual price ``price``, the reduced value of ``k`` extra rollouts is
    ``G(k) - price * cost * k``; an optimal allocation loses, summed over all
    prompts, at most ``slack`` (LP bound minus a feasible objective) of
    reduced value against each prompt's best ``k``. So prompt ``i`` holds
    between ``lo[i]`` and ``hi[i]`` extra rollouts, the ``k`` whose own loss is
    at most ``slack``.
    """
    size = table.shape[0]
    lo = np.empty(size, dtype=np.int64)
    hi = np.empty(size, dtype=np.int64)
    for i in range(size):
        unit_price = price * costs[i]
        top = 0
        while top < span[i] and table[i, top] >= unit_price:
            top += 1
        k = top
        loss = 0.0
        while k > 0:
            loss += table[i, k - 1] - unit_price
            if loss > slack:
                break
            k -= 1
        lo[i] = k
        k = top
        loss = 0.0
        while k < span[i]:
            loss += unit_price - table[i, k]
            if loss > slack:
                break
            k += 1
        hi[i] = k
    return lo, hi

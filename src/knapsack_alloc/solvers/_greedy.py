"""Greedy allocation by marginal gain per unit cost (numba kernel).

The kernel takes rollouts in the order of the key ``(gain / cost descending,
rollouts held ascending, prompt index ascending)``: the next rollout goes to
the prompt whose next rollout is worth most per unit of cost; ties go to the
prompt holding fewer rollouts, then to the earlier prompt. With concave
values and unit costs the result is the exact optimum; with integer costs it
is feasible, and the first rollout that does not fit gives the LP-relaxation
upper bound.

Two phases, same result as taking rollouts one at a time from a heap:

1. *Threshold*: find thresholds ``lam`` and take, in one sweep, every
   rollout whose key is ``>= lam`` (a prefix of the order above, because
   gains never increase within a prompt), as long as it fits the budget.
   ``lam`` shrinks geometrically; after an overshoot the step is refined.
2. *Heap*: the last few rollouts one at a time from a binary heap.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.solvers._gains import advance, next_gain
from knapsack_alloc.solvers._jit import kernel

_MAX_REFINEMENTS = 12
_SMALLEST_STEP = 2.0**-64


@kernel
def _before(i: int, j: int, key: NDArray[np.float64], held: NDArray[np.int64]) -> bool:
    if key[i] != key[j]:
        return bool(key[i] > key[j])
    if held[i] != held[j]:
        return bool(held[i] < held[j])
    return i < j


@kernel
def _sift_down(
    heap: NDArray[np.int64], size: int, pos: int, key: NDArray[np.float64], held: NDArray[np.int64]
) -> None:
    item = heap[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _before(heap[child + 1], heap[child], key, held):
            child += 1
        if not _before(heap[child], item, key, held):
            break
        heap[pos] = heap[child]
        pos = child
    heap[pos] = item


@kernel
def greedy_kernel(
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.int64],
    capacity: int,
    term_a: NDArray[np.float64],
    term_b: NDArray[np.float64],
    a_num: NDArray[np.float64],
    b_num: NDArray[np.float64],
    den: NDArray[np.float64],
    step: float,
    table: NDArray[np.float64],
    use_table: bool,
) -> tuple[NDArray[np.int64], float, float]:
    """Allocate ``capacity`` cost units greedily.

    Returns
    -------
    extra : numpy.ndarray of int64
        Rollouts given to each prompt above its minimum.
    taken : float
        Sum of the gains taken.
    bound : float
        LP-relaxation bound on the sum of gains of any feasible allocation
        (equal to ``taken`` when the greedy answer is optimal by construction).
    """
    size = lower.shape[0]
    extra = np.zeros(size, dtype=np.int64)
    if use_table:
        a = np.zeros(size, dtype=np.float64)
        b = np.zeros(size, dtype=np.float64)
    else:
        a = term_a.copy()
        b = term_b.copy()
    trial_extra = np.empty(size, dtype=np.int64)
    trial_a = np.empty(size, dtype=np.float64)
    trial_b = np.empty(size, dtype=np.float64)
    max_cost = 1
    for i in range(size):
        max_cost = max(max_cost, costs[i])

    remaining = capacity
    taken = 0.0
    tail = max(64, size // 8) * max_cost
    lam = math.inf
    ratio = 0.5
    refinements = 0
    while remaining > tail and refinements <= _MAX_REFINEMENTS:
        best = -1.0
        for i in range(size):
            if extra[i] < span[i]:
                gain = next_gain(i, extra[i], lower[i] + extra[i], a[i], b[i], table, use_table)
                best = max(best, gain / costs[i])
        if best <= 0.0:
            break  # only zero gains left: the heap settles their ties
        lam_try = min(lam * ratio, best)
        spent = 0
        gained = 0.0
        overshoot = False
        for i in range(size):
            e = extra[i]
            ta = a[i]
            tb = b[i]
            while e < span[i]:
                n = lower[i] + e
                gain = next_gain(i, e, n, ta, tb, table, use_table)
                if gain / costs[i] < lam_try:
                    break
                spent += costs[i]
                if spent > remaining:
                    overshoot = True
                    break
                gained += gain
                ta, tb = advance(i, n, ta, tb, a_num, b_num, den, step, use_table)
                e += 1
            if overshoot:
                break
            trial_extra[i] = e
            trial_a[i] = ta
            trial_b[i] = tb
        if overshoot:
            ratio = math.sqrt(ratio)
            refinements += 1
            continue
        extra, trial_extra = trial_extra, extra
        a, trial_a = trial_a, a
        b, trial_b = trial_b, b
        if refinements == 0 and 4 * spent < remaining:
            ratio = max(ratio * ratio, _SMALLEST_STEP)
        remaining -= spent
        taken += gained
        lam = lam_try

    # Heap phase: one rollout at a time, in exactly the same order.
    key = np.empty(size, dtype=np.float64)
    held = lower + extra
    heap = np.empty(size, dtype=np.int64)
    heap_size = 0
    for i in range(size):
        if extra[i] < span[i]:
            key[i] = next_gain(i, extra[i], held[i], a[i], b[i], table, use_table) / costs[i]
            heap[heap_size] = i
            heap_size += 1
    for pos in range(heap_size // 2 - 1, -1, -1):
        _sift_down(heap, heap_size, pos, key, held)
    bound = math.nan
    while remaining > 0 and heap_size > 0:
        i = heap[0]
        if costs[i] > remaining:
            if math.isnan(bound):
                bound = taken + key[i] * remaining
            heap_size -= 1
            heap[0] = heap[heap_size]
        else:
            taken += next_gain(i, extra[i], held[i], a[i], b[i], table, use_table)
            remaining -= costs[i]
            a[i], b[i] = advance(i, held[i], a[i], b[i], a_num, b_num, den, step, use_table)
            extra[i] += 1
            held[i] += 1
            if extra[i] < span[i]:
                key[i] = next_gain(i, extra[i], held[i], a[i], b[i], table, use_table) / costs[i]
            else:
                heap_size -= 1
                heap[0] = heap[heap_size]
        if heap_size > 0:
            _sift_down(heap, heap_size, 0, key, held)
    if math.isnan(bound):
        bound = taken
    return extra, taken, bound

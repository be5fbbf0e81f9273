"""Greedy allocation by marginal gain per unit cost (numba kernel).

The kernel takes rollouts in the order of the key ``(gain / cost descending,
rollouts held ascending, prompt index ascending)``: the next rollout goes to
the prompt whose next rollout is worth most per unit of cost; ties go to the
prompt holding fewer rollouts, then to the earlier prompt. With concave
values and unit costs the result is the exact optimum; with integer costs it
is feasible, and the first rollout that does not fit gives the LP-relaxation
upper bound.

Two phases, same result as taking rollouts one at a time from a heap:

1. *Threshold*: take, in one sweep, every rollout whose key is ``>= lam``
   (a prefix of the order above, because gains never increase within a
   prompt), if all of them fit the budget. ``lam`` shrinks geometrically
   until a sweep would overshoot, then bisects (in log scale) between the
   last threshold that fitted and the first that did not.
2. *Heap*: the last few rollouts one at a time from a binary heap.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._jit import kernel
from knapsack_alloc.solvers.kernels.gains import advance, next_gain

_MAX_PASSES = 200
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
def _key(gain: float, cost: int, unit: bool) -> float:
    return gain if unit else gain / cost


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
) -> tuple[NDArray[np.int64], float, float, float]:
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
    price : float
        Largest gain per cost unit among the rollouts not taken (0 when every
        prompt holds its maximum). When the budget ran out mid-order this is
        the first rollout turned away, the LP dual price.
    """
    size = lower.shape[0]
    extra = np.zeros(size, dtype=np.int64)
    if use_table:
        a = np.zeros(size, dtype=np.float64)
        b = np.zeros(size, dtype=np.float64)
    else:
        a = term_a.copy()
        b = term_b.copy()
    unit = True
    max_cost = 1
    for i in range(size):
        unit = unit and costs[i] == 1
        max_cost = max(max_cost, costs[i])
    # key[i]: key of prompt i's next rollout (-1 once it holds its maximum).
    key = np.full(size, -1.0)
    for i in range(size):
        if span[i] > 0:
            key[i] = _key(next_gain(i, 0, lower[i], a[i], b[i], table, use_table), costs[i], unit)
    # Sweeps record the prompts they move here and apply them only if all fit.
    moved = np.empty(size, dtype=np.int64)
    moved_extra = np.empty(size, dtype=np.int64)
    moved_a = np.empty(size, dtype=np.float64)
    moved_b = np.empty(size, dtype=np.float64)
    moved_key = np.empty(size, dtype=np.float64)

    remaining = capacity
    taken = 0.0
    tail = max(64, size // 16) * max_cost
    best = key.max() if size else -1.0  # largest key among rollouts not yet taken
    lam = math.inf  # every key >= lam is taken
    lam_fail = 0.0  # taking every key >= lam_fail would overshoot the budget
    ratio = 0.5
    for _ in range(_MAX_PASSES):
        if remaining <= tail or best <= 0.0:
            break  # few rollouts or only zero gains left: the heap settles them
        lam_try = math.sqrt(lam * lam_fail) if lam_fail > 0.0 else lam * ratio
        lam_try = min(lam_try, best)
        if lam_try <= lam_fail or lam_try >= lam:
            break  # the bracket is down to rounding
        spent = 0
        gained = 0.0
        count = 0
        overshoot = False
        for i in range(size):
            if key[i] < lam_try:
                continue
            e = extra[i]
            ta = a[i]
            tb = b[i]
            next_key = -1.0
            while e < span[i]:
                n = lower[i] + e
                gain = next_gain(i, e, n, ta, tb, table, use_table)
                next_key = _key(gain, costs[i], unit)
                if next_key < lam_try:
                    break
                spent += costs[i]
                if spent > remaining:
                    overshoot = True
                    break
                gained += gain
                ta, tb = advance(i, n, ta, tb, a_num, b_num, den, step, use_table)
                e += 1
                next_key = -1.0
            if overshoot:
                break
            moved[count] = i
            moved_extra[count] = e
            moved_a[count] = ta
            moved_b[count] = tb
            moved_key[count] = next_key
            count += 1
        if overshoot:
            lam_fail = lam_try
            continue
        best = -1.0
        for m in range(count):
            i = moved[m]
            extra[i] = moved_extra[m]
            a[i] = moved_a[m]
            b[i] = moved_b[m]
            key[i] = moved_key[m]
        for i in range(size):
            best = max(best, key[i])
        if lam_fail == 0.0 and 4 * spent < remaining:
            ratio = max(ratio * ratio, _SMALLEST_STEP)
        remaining -= spent
        taken += gained
        lam = lam_try

    # Heap phase: one rollout at a time, in exactly the same order. With unit
    # costs no key below lam_fail can be reached, so such prompts stay out.
    held = lower + extra
    heap = np.empty(size, dtype=np.int64)
    heap_size = 0
    for i in range(size):
        if extra[i] < span[i] and (not unit or key[i] >= lam_fail):
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
                gain = next_gain(i, extra[i], held[i], a[i], b[i], table, use_table)
                key[i] = _key(gain, costs[i], unit)
            else:
                heap_size -= 1
                heap[0] = heap[heap_size]
        if heap_size > 0:
            _sift_down(heap, heap_size, 0, key, held)
    if math.isnan(bound):
        bound = taken
    price = 0.0
    for i in range(size):
        if extra[i] < span[i]:
            price = max(price, key[i])
    return extra, taken, bound, price

"""The library's one tie rule, applied to the answer of any exact solver.

The greedy order ``(gain / cost descending, rollouts held ascending, prompt
index ascending)`` decides between optimal allocations: a rollout whose gain
ties goes to the prompt holding fewer rollouts, then to the earlier prompt.
The greedy kernel follows it by construction; the answers of the DP, the
textbook DP and OR-Tools are brought to it here with moves that change no
gain, compared exactly (never sums):

1. trailing rollouts worth exactly 0 are dropped;
2. concave gains: for each gain value that some prompt's last rollout has
   and some other prompt's next rollout has too (a tie), the rollouts worth
   exactly that much are dealt again in the greedy order: cheaper ones
   first (they free budget), then by rollouts held, then by index;
3. the budget left is spent in the greedy order (only zero gains remain);
4. other gains: identical prompts (equal gains, bounds and cost) swap
   counts so that they never increase with the index.

What this cannot reach is listed in ``docs/solvers.md`` (optima that differ
by several rollouts whose summed gains tie exactly, e.g. one rollout of cost
2 against two of cost 1, and gains that differ only in their last bits).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._jit import kernel

Spend = Callable[[NDArray[np.int64]], NDArray[np.int64]]


def canonical(
    table: NDArray[np.float64],
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.int64],
    extra: NDArray[np.int64],
    concave: bool,
    spend_leftover: Spend,
) -> NDArray[np.int64]:
    """Return the canonical optimum equal in gain to ``extra`` (see the module docstring).

    Parameters
    ----------
    table : numpy.ndarray
        Gains above each prompt's minimum, shape ``(n, max_span)``.
    lower, span, costs : numpy.ndarray of int64
        Minimums, extra rollouts allowed and cost units of each prompt.
    extra : numpy.ndarray of int64
        A solver's extra rollouts (an optimal allocation).
    concave : bool
        Whether every row of ``table`` is non-increasing within its span.
    spend_leftover : callable
        Hands the budget ``extra`` leaves unspent out in the greedy order.

    Returns
    -------
    numpy.ndarray of int64
    """
    if table.shape[1] == 0:
        return extra
    extra = _drop_zero_tail(table, extra)
    if concave:
        extra = _deal_ties(table, lower, span, costs, extra)
    extra = spend_leftover(extra)
    if not concave:
        extra = _order_identical(table, lower, span, costs, extra)
    return extra


@kernel
def _drop_zero_tail(table: NDArray[np.float64], extra: NDArray[np.int64]) -> NDArray[np.int64]:
    kept = extra.copy()
    for i in range(kept.shape[0]):
        while kept[i] > 0 and table[i, kept[i] - 1] == 0.0:
            kept[i] -= 1
    return kept


@kernel
def _boundary_gains(
    table: NDArray[np.float64], span: NDArray[np.int64], extra: NDArray[np.int64], i: int
) -> tuple[float, float]:
    """Gains of prompt ``i``'s last rollout taken and its next one (-1 where there is none)."""
    last = table[i, extra[i] - 1] if extra[i] > 0 else -1.0
    following = table[i, extra[i]] if extra[i] < span[i] else -1.0
    return last, following


@kernel
def _contains(values: NDArray[np.float64], count: int, value: float) -> bool:
    """Whether the sorted ``values[:count]`` hold ``value``."""
    at = np.searchsorted(values[:count], value)
    return bool(at < count and values[at] == value)


@kernel
def _replace(values: NDArray[np.float64], count: int, old: float, new: float) -> int:
    """Swap one ``old`` for ``new`` in sorted ``values[:count]`` (-1: none); return the count."""
    if old >= 0.0:
        at = np.searchsorted(values[:count], old)
        values[at : count - 1] = values[at + 1 : count].copy()
        count -= 1
    if new >= 0.0:
        at = np.searchsorted(values[:count], new)
        values[at + 1 : count + 1] = values[at:count].copy()
        values[at] = new
        count += 1
    return count


@kernel
def _water_fill(
    held: NDArray[np.int64], room: NDArray[np.int64], slots: int, taken: NDArray[np.int64]
) -> int:
    """Deal ``slots`` one at a time to the smallest ``(held + taken, index)`` with room left.

    Writes each member's share to ``taken`` and returns the slots dealt.
    """
    size = held.shape[0]
    taken[:] = 0
    if slots <= 0 or size == 0:
        return 0
    low = held.min()
    high = (held + room).max()
    while low < high:  # the highest level whose filling needs at most `slots`
        middle = (low + high + 1) // 2
        need = 0
        for i in range(size):
            need += min(max(middle - held[i], 0), room[i])
        if need <= slots:
            low = middle
        else:
            high = middle - 1
    rest = slots
    for i in range(size):
        taken[i] = min(max(low - held[i], 0), room[i])
        rest -= taken[i]
    for i in range(size):  # one more, in index order, to those at the level with room
        if rest == 0:
            break
        if held[i] + taken[i] == low and taken[i] < room[i]:
            taken[i] += 1
            rest -= 1
    return slots - rest


@kernel
def _deal_ties(
    table: NDArray[np.float64],
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.int64],
    extra: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Deal tied gains again in the greedy order, largest tie first (concave gains)."""
    extra = extra.copy()
    size = extra.shape[0]
    # Members of the tie being dealt, sorted by (cost, index): the greedy order among
    # equal gains deals cheaper rollouts first (more gain per cost), then by index.
    order = np.argsort(costs, kind="mergesort")
    members = np.empty(size, dtype=np.int64)
    start = np.empty(size, dtype=np.int64)
    held = np.empty(size, dtype=np.int64)
    room = np.empty(size, dtype=np.int64)
    dealt = np.empty(size, dtype=np.int64)
    # A tie is a positive gain that is one prompt's last taken rollout and another's
    # next. Dealing one moves boundaries only within its members' runs: members' last
    # gains become the tie or larger ones, their next gains the tie or smaller ones.
    # So every tie to settle is one of the last gains found now, and trying them once
    # each, from the largest down, against the next gains of the moment settles all.
    lasts = np.empty(size, dtype=np.float64)
    nexts = np.empty(size, dtype=np.float64)
    found = 0
    left = 0
    for i in range(size):
        last, following = _boundary_gains(table, span, extra, i)
        if last > 0.0:
            lasts[found] = last
            found += 1
        if following >= 0.0:
            nexts[left] = following
            left += 1
    candidates = np.unique(lasts[:found])
    nexts[:left] = np.sort(nexts[:left])
    for c in range(candidates.shape[0] - 1, -1, -1):
        tie = candidates[c]
        if not _contains(nexts, left, tie):
            continue
        count = 0
        slots = 0
        for i in order:
            last, following = _boundary_gains(table, span, extra, i)
            if last != tie and following != tie:
                continue
            # The prompt's run of slots worth exactly `tie` (contiguous: gains never increase).
            first = extra[i]
            while first > 0 and table[i, first - 1] == tie:
                first -= 1
            end = extra[i]
            while end < span[i] and table[i, end] == tie:
                end += 1
            members[count] = i
            start[count] = first
            held[count] = lower[i] + first
            room[count] = end - first
            slots += extra[i] - first
            count += 1
        group = 0
        while group < count:
            stop = group
            while stop < count and costs[members[stop]] == costs[members[group]]:
                stop += 1
            slots -= _water_fill(held[group:stop], room[group:stop], slots, dealt[group:stop])
            for m in range(group, stop):
                i = members[m]
                before = _boundary_gains(table, span, extra, i)[1]
                extra[i] = start[m] + dealt[m]
                after = _boundary_gains(table, span, extra, i)[1]
                if after != before:
                    left = _replace(nexts, left, before, after)
            group = stop
    return extra


def _order_identical(
    table: NDArray[np.float64],
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.int64],
    extra: NDArray[np.int64],
) -> NDArray[np.int64]:
    if extra.size < 2:
        return extra
    keys = np.column_stack([lower, span, costs, table.view(np.int64)])
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    index = np.arange(extra.size)
    ordered = np.empty_like(extra)
    ordered[np.lexsort((index, group))] = extra[np.lexsort((-extra, group))]
    return ordered

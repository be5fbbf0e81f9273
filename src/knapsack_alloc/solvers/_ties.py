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
    extra = _drop_zero_tail(table, extra)
    if concave:
        extra = _deal_ties(table, lower, span, costs, extra)
    extra = spend_leftover(extra)
    if not concave:
        extra = _order_identical(table, lower, span, costs, extra)
    return extra


def _drop_zero_tail(table: NDArray[np.float64], extra: NDArray[np.int64]) -> NDArray[np.int64]:
    extra = extra.copy()
    for i in np.flatnonzero(extra > 0).tolist():
        while extra[i] > 0 and table[i, extra[i] - 1] == 0.0:
            extra[i] -= 1
    return extra


def _deal_ties(
    table: NDArray[np.float64],
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.int64],
    extra: NDArray[np.int64],
) -> NDArray[np.int64]:
    width = table.shape[1]
    if width == 0:
        return extra
    extra = extra.copy()
    rows = np.arange(extra.size)
    columns = np.arange(width)
    done: set[float] = set()
    while True:
        last_taken = np.where(extra > 0, table[rows, np.clip(extra - 1, 0, width - 1)], np.nan)
        next_left = np.where(extra < span, table[rows, np.minimum(extra, width - 1)], np.nan)
        tied = set(last_taken[last_taken > 0].tolist()) & set(next_left.tolist()) - done
        if not tied:
            return extra
        tie = max(tied)  # settle larger gains first: dealing one value moves no other's slots
        done.add(tie)
        members = np.flatnonzero((last_taken == tie) | (next_left == tie))
        # Each member's run of slots worth exactly `tie` (contiguous: gains never increase).
        inside = (table[members] == tie) & (columns < span[members, None])
        start = np.argmax(inside, axis=1)
        room = inside.sum(axis=1)
        slots = int((extra[members] - start).sum())
        # The greedy order among equal gains: cheaper rollouts first (more gain per cost).
        for cost in np.unique(costs[members]).tolist():
            group = costs[members] == cost
            dealt = _water_fill(lower[members][group] + start[group], room[group], slots)
            extra[members[group]] = start[group] + dealt
            slots -= int(dealt.sum())


def _water_fill(
    held: NDArray[np.int64], room: NDArray[np.int64], slots: int
) -> NDArray[np.int64]:
    """Deal ``slots`` one at a time to the smallest ``(held + taken, index)`` with room left."""
    if slots <= 0:
        return np.zeros_like(held)

    def taken_below(level: int) -> NDArray[np.int64]:
        return np.clip(level - held, 0, room)

    low, high = int(held.min()), int((held + room).max())
    while low < high:  # the highest level whose filling needs at most `slots`
        middle = (low + high + 1) // 2
        if int(taken_below(middle).sum()) <= slots:
            low = middle
        else:
            high = middle - 1
    taken = taken_below(low)
    rest = slots - int(taken.sum())
    room_at_level = np.flatnonzero((held + taken == low) & (taken < room))
    taken[room_at_level[:rest]] += 1
    return taken


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

"""Slow, independent statements of the allocator's rules, in plain Python.

Nothing here imports knapsack_alloc: histories are dicts of lists, estimates
are exact fractions, the paper's rules are written in closed form from the
notes (not as the library's sequence of updates), and optimal splits are
found by brute force over exact values.
"""

from __future__ import annotations

from fractions import Fraction

from oracles import best_total, exact_expected_value, exact_value, rollouts_needed


class NaiveHistory:
    """Every reward of every prompt, grouped by update."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.updates: dict[object, list[list[bool]]] = {}

    def record(self, ids: list, successes: list[bool]) -> None:
        batch: dict[object, list[bool]] = {}
        for prompt, success in zip(ids, successes, strict=True):
            batch.setdefault(prompt, []).append(bool(success))
        for prompt, rewards in batch.items():
            self.updates.setdefault(prompt, []).append(rewards)

    def counts(self, prompt: object) -> tuple[int, int, int]:
        """(window successes, window trials, total rewards) of the notes' estimate rule."""
        updates = self.updates.get(prompt, [])
        total = sum(len(u) for u in updates)
        if not updates:
            return 0, 0, 0
        if len(updates[-1]) >= self.window:
            window = updates[-1]
        else:
            flat = [r for u in updates for r in u]
            window = flat[-self.window :]
        return sum(window), len(window), total

    def ring(self, prompt: object) -> tuple[int, int]:
        """(successes, trials) of the most recent ``window`` rewards."""
        flat = [r for u in self.updates.get(prompt, []) for r in u]
        last = flat[-self.window :]
        return sum(last), len(last)


def paper_rules(
    states: list[tuple[int, int, int]],
    budget: int,
    *,
    default: int = 8,
    low: int = 2,
    high: int = 128,
    valid_after: int = 8,
    alpha: float = 0.9,
) -> dict:
    """The notes' paper rules with unit costs, in closed form.

    ``states[i]`` is prompt ``i``'s (window successes, window trials, total
    rewards). Returns the counts of the prompts that are not effective, the
    effective prompts with their exact rates, the number of rollouts they
    share (bases included), the fallback prompts, and the cost units no rule
    can spend. The two completions documented in ``paper_counts`` keep the
    budget spent: what effective prompts cannot hold (``high``) goes to the
    fallback candidates, and with no candidate the effective prompts take
    the surplus too.
    """
    valid = [total >= valid_after for _, _, total in states]
    rate = [Fraction(s, n) if ok else None for (s, n, _), ok in zip(states, valid, strict=True)]
    effective = [i for i, p in enumerate(rate) if p is not None and 0 < p < 1]
    base = [low if ok else default for ok in valid]
    remaining = budget - sum(base)
    need = sum(rollouts_needed(rate[i], alpha, high) for i in effective)
    room = len(effective) * (high - low)
    unsolved = [i for i, p in enumerate(rate) if p is None or p == 0]
    candidates = unsolved or [i for i in range(len(states)) if i not in effective]
    if not effective:
        share = 0
    elif candidates and need < remaining:
        share = min(need, room)
    else:
        share = min(remaining, room)
    surplus = remaining - share
    counts = list(base)
    fallback = []
    if candidates and surplus > 0:
        each, rest = divmod(surplus, len(candidates))
        for position, i in enumerate(candidates):
            counts[i] += each + (position < rest)
        fallback, surplus = candidates, 0
    return {
        "counts": {i: counts[i] for i in range(len(states)) if i not in effective},
        "effective": effective,
        "rates": [rate[i] for i in effective],
        "effective_total": low * len(effective) + share,
        "fallback": fallback,
        "unspent": surplus,
    }


def best_split_value(tables: list[dict[int, Fraction]], low: int, high: int, total: int):
    """Largest exact value of a split of ``total`` rollouts (unit costs), by brute force."""
    size = len(tables)
    return best_total(tables, [low] * size, [high] * size, [1] * size, total)


def point_tables(rates, low: int, high: int, weight=(1, 2)) -> list[dict[int, Fraction]]:
    """Exact ``Value(N, p)`` of each rate for ``low <= N <= high``."""
    return [{n: exact_value(n, p, weight) for n in range(low, high + 1)} for p in rates]


def posterior_tables(
    states: list[tuple[int, int]], prior: tuple[float, float], low: int, high: int
) -> list[dict[int, Fraction]]:
    """Exact posterior expected GRPO value of each ``(successes, trials)`` window."""
    a, b = Fraction(prior[0]), Fraction(prior[1])
    return [
        {n: exact_expected_value(n, a + s, b + trials - s) for n in range(low, high + 1)}
        for s, trials in states
    ]

"""Slow, independent re-statements of the allocator's rules, in plain Python.

Nothing here imports knapsack_alloc: histories are dicts of lists, estimates
are computed with loops, and the optimal split is a textbook greedy over
marginal gains written with ``math`` only.
"""

from __future__ import annotations

import math


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


def grpo_value(n: int, p: float) -> float:
    if n == 0:
        return 0.0
    return (1.0 - p**n - (1.0 - p) ** n) * p * (1.0 - p) ** 2


def greedy_split(values, lower: int, upper: int, budget: int) -> list[int]:
    """Exact split of ``budget`` rollouts for concave per-prompt ``values[i](n)``."""
    counts = [lower] * len(values)
    left = budget - lower * len(values)
    while left > 0:
        best, best_gain = -1, -1.0
        for i, value in enumerate(values):
            if counts[i] < upper:
                gain = value(counts[i] + 1) - value(counts[i])
                if gain > best_gain:
                    best, best_gain = i, gain
        if best < 0:
            break
        counts[best] += 1
        left -= 1
    return counts


def naive_paper(
    prompts: list,
    history: NaiveHistory,
    budget: int,
    *,
    default: int = 8,
    low: int = 2,
    high: int = 128,
    valid_after: int = 8,
    alpha: float = 0.9,
) -> dict:
    """The notes' paper rules; the effective split by the plain greedy."""
    info = []
    for prompt in prompts:
        s, n, total = history.counts(prompt)
        valid = total >= valid_after
        p = s / n if valid else 0.0
        info.append((valid, p))
    counts = []
    effective = []
    for i, (valid, p) in enumerate(info):
        if not valid:
            counts.append(default)
        else:
            counts.append(low)
            if 0.0 < p < 1.0:
                effective.append(i)
    remaining = budget - sum(counts)
    need = 0
    for i in effective:
        p = info[i][1]
        need += math.floor(min(high, math.log(1 - alpha) / math.log(max(p, 1 - p))))
    if not effective:
        share = 0
    elif need < remaining:
        share = need
    else:
        share = remaining
    capacity = len(effective) * (high - low)
    share = min(share, capacity)
    surplus = remaining - share
    candidates = [i for i, (valid, p) in enumerate(info) if (valid and p == 0.0) or not valid]
    if not candidates:
        candidates = [i for i in range(len(prompts)) if i not in effective]
    fallback = set()
    if candidates and surplus > 0:
        each, extra = divmod(surplus, len(candidates))
        for position, i in enumerate(candidates):
            counts[i] += each + (1 if position < extra else 0)
            fallback.add(i)
        surplus = 0
    share += min(surplus, capacity - share)
    split = greedy_split(
        [lambda n, p=info[i][1]: grpo_value(n, p) for i in effective],
        low,
        high,
        low * len(effective) + share,
    )
    objective = 0.0
    for i, n in zip(effective, split, strict=True):
        counts[i] = n
        objective += grpo_value(n, info[i][1])
    return {
        "counts": counts,
        "effective": effective,
        "objective": objective,
        "fallback": sorted(fallback),
    }


def beta_moment(a: float, b: float, x: float, y: float) -> float:
    """E[p**x (1 - p)**y] for p ~ Beta(a, b)."""

    def log_beta(u: float, v: float) -> float:
        return math.lgamma(u) + math.lgamma(v) - math.lgamma(u + v)

    return math.exp(log_beta(a + x, b + y) - log_beta(a, b))


def expected_grpo(n: int, a: float, b: float) -> float:
    """E[(1 - p**n - (1 - p)**n) p (1 - p)**2] under Beta(a, b)."""
    if n == 0:
        return 0.0
    return beta_moment(a, b, 1, 2) - beta_moment(a, b, n + 1, 2) - beta_moment(a, b, 1, n + 2)


def naive_bayes(
    prompts: list,
    history: NaiveHistory,
    budget: int,
    prior: tuple[float, float],
    *,
    low: int = 2,
    high: int = 128,
) -> dict:
    values = []
    for prompt in prompts:
        s, n, _ = history.counts(prompt)
        a, b = prior[0] + s, prior[1] + n - s
        values.append(lambda k, a=a, b=b: expected_grpo(k, a, b))
    counts = greedy_split(values, low, high, budget)
    return {"counts": counts, "objective": sum(v(c) for v, c in zip(values, counts, strict=True))}


def naive_prior(history: NaiveHistory, min_trials: int) -> tuple[float, float]:
    """Method-of-moments Beta fit on ring-window means, as the docs state it."""
    means, inverse = [], []
    for prompt in history.updates:
        s, n = history.ring(prompt)
        if n >= max(min_trials, 1):
            means.append(s / n)
            inverse.append(1.0 / n)
    if len(means) < 32:
        return (1.0, 1.0)
    k = len(means)
    m = sum(means) / k
    m2 = sum(x * x for x in means) / k
    h = sum(inverse) / k
    mean = min(max(m, 0.01), 0.99)
    spread = (m2 - m * h) / (1 - h) - m * m if h < 1 else 0.0
    concentration = mean * (1 - mean) / spread - 1 if spread > 0 else float(history.window)
    concentration = min(max(concentration, 1.0), float(history.window))
    return (mean * concentration, (1 - mean) * concentration)

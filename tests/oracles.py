"""Slow, obviously correct re-statements of what the engine computes."""

from __future__ import annotations

import itertools

import numpy as np


def brute_force(value_of, lower, upper, costs, budget):
    """Best objective over every integer allocation within bounds and budget.

    ``value_of(counts)`` returns per-prompt values for a counts array.
    Returns ``(best_objective, best_counts)``; ties keep the first found.
    """
    best, best_counts = -np.inf, None
    ranges = [range(lo, hi + 1) for lo, hi in zip(lower, upper, strict=True)]
    for combo in itertools.product(*ranges):
        counts = np.array(combo, dtype=np.int64)
        if costs @ counts > budget:
            continue
        objective = float(np.sum(value_of(counts)))
        if objective > best:
            best, best_counts = objective, counts
    return best, best_counts


def grpo_value(counts, p):
    """The paper's value, written straight from its definition."""
    out = []
    for n, x in zip(counts, p, strict=True):
        n = int(n)
        pnz = 0.0 if n == 0 else 1.0 - x**n - (1.0 - x) ** n
        out.append(pnz * x * (1.0 - x) ** 2)
    return np.array(out)


def beta_expectation(function, a, b, nodes=4000):
    """E[function(p)] for p ~ Beta(a, b), by midpoint quadrature on the density."""
    from scipy.stats import beta as beta_dist

    grid = (np.arange(nodes) + 0.5) / nodes
    weights = beta_dist.pdf(grid, a, b) / nodes
    return float(np.sum(function(grid) * weights))


def greedy_one_at_a_time(gain_rows, lower, costs, capacity):
    """Take rollouts one at a time by (gain/cost desc, held asc, index asc) while they fit.

    ``gain_rows[i]`` lists prompt i's gains from ``lower[i]`` on. Returns extra counts.
    """
    n = len(gain_rows)
    extra = [0] * n
    alive = set(range(n))
    remaining = capacity
    while remaining > 0:
        candidates = [i for i in alive if extra[i] < len(gain_rows[i])]
        if not candidates:
            break
        i = min(
            candidates,
            key=lambda j: (-gain_rows[j][extra[j]] / costs[j], lower[j] + extra[j], j),
        )
        if costs[i] > remaining:
            alive.discard(i)
            continue
        extra[i] += 1
        remaining -= costs[i]
    return np.array(extra, dtype=np.int64)

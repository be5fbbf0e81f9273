"""Slow, obviously correct re-statements of what the engine computes.

Nothing here imports knapsack_alloc. Values come straight from the formulas
of the model (``P_nz(N, p) = 1 - p**N - (1 - p)**N`` times a weight
``p**j (1 - p)**k``), in exact rational arithmetic where it matters: a float
is a dyadic rational, so ``Fraction(x)`` is exactly the number the library
was given.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

#: Weights ``(j, k)`` of the built-in value models: ``p**j (1 - p)**k``.
GRPO_WEIGHT = (1, 2)
NONZERO_WEIGHT = (0, 0)


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


def best_total(tables, lower, upper, costs, budget):
    """Largest ``sum_i tables[i][N_i]`` over integer ``N`` within bounds and budget.

    ``tables[i]`` maps every count of prompt ``i`` to its value (exact or
    float). Brute force over all allocations; None if none is feasible.
    """
    best = None
    ranges = [range(lo, hi + 1) for lo, hi in zip(lower, upper, strict=True)]
    for counts in itertools.product(*ranges):
        if sum(c * n for c, n in zip(costs, counts, strict=True)) > budget:
            continue
        total = sum(table[n] for table, n in zip(tables, counts, strict=True))
        if best is None or total > best:
            best = total
    return best


def exact_value(n, p, weight=GRPO_WEIGHT):
    """``p**j (1 - p)**k * P_nz(N, p)`` as a Fraction; 0 for ``N == 0``.

    ``p`` is a float (taken exactly) or a Fraction.
    """
    n, p = int(n), Fraction(p)
    q = 1 - p
    if n == 0:
        return Fraction(0)
    j, k = weight
    return p**j * q**k * (1 - p**n - q**n)


def rising(x, n):
    """The rising factorial ``x (x + 1) ... (x + n - 1)``, exactly."""
    out = Fraction(1)
    for t in range(n):
        out *= x + t
    return out


def beta_moment(a, b, x, y):
    """``E[p**x (1 - p)**y]`` for ``p ~ Beta(a, b)``, exactly.

    ``B(a + x, b + y) / B(a, b)`` is a ratio of rising factorials for whole
    ``x, y >= 0`` and any real ``a, b > 0`` (floats are taken exactly).
    """
    a, b, x, y = Fraction(a), Fraction(b), int(x), int(y)
    return rising(a, x) * rising(b, y) / rising(a + b, x + y)


def exact_expected_value(n, a, b, weight=GRPO_WEIGHT):
    """``E[p**j q**k P_nz(N, p)]`` under ``Beta(a, b)``, exactly; 0 for ``N <= 1``."""
    n = int(n)
    if n <= 1:
        return Fraction(0)
    j, k = weight
    return beta_moment(a, b, j, k) - beta_moment(a, b, j + n, k) - beta_moment(a, b, j, k + n)


def exact_tables(weight, estimates, lower, upper):
    """Each prompt's value at every count within its bounds, exactly.

    ``estimates`` holds point rates, or has ``alpha`` and ``beta`` arrays of
    Beta posteriors (a ``BetaPosterior``).
    """
    if hasattr(estimates, "alpha"):
        def value(n, i):
            return exact_expected_value(n, estimates.alpha[i], estimates.beta[i], weight)
    else:
        def value(n, i):
            return exact_value(n, estimates[i], weight)
    return [{n: value(n, i) for n in range(lo, hi + 1)}
            for i, (lo, hi) in enumerate(zip(lower, upper, strict=True))]  # fmt: skip


def rollouts_needed(p, alpha, cap):
    """The notes' ``floor(min(cap, ln(1 - alpha) / ln(max(p, 1 - p))))``, exactly.

    For ``0 < p < 1`` the ratio is at least ``N`` exactly when
    ``max(p, 1 - p)**N >= 1 - alpha``, so its floor is the largest such ``N``.
    """
    top = max(Fraction(p), 1 - Fraction(p))
    floor = 1 - Fraction(alpha)
    n = 0
    while n < cap and top ** (n + 1) >= floor:
        n += 1
    return n


def beta_expectation(function, a, b):
    """``E[function(p)]`` for ``p ~ Beta(a, b)``, by adaptive quadrature on the density."""
    from scipy.integrate import quad
    from scipy.stats import beta as beta_dist

    value, error = quad(lambda p: function(p) * beta_dist.pdf(p, a, b), 0.0, 1.0,
                        epsabs=1e-14, epsrel=1e-11, limit=200)  # fmt: skip
    assert error <= 1e-9 * max(abs(value), 1e-12)
    return value


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


def is_float_exact(value):
    """Whether a Fraction is a float exactly (no rounding on conversion)."""
    return Fraction(float(value)) == value and math.isfinite(float(value))

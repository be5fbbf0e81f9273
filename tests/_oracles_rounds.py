"""Slow, exact re-statements of the value of a step sampled in rounds.

Nothing here imports knapsack_alloc. The value of a group is computed by
enumerating the outcomes of its remaining rollouts (not by the complement
formula the library uses), with exact rational arithmetic: Beta moments with
integer parameters are ratios of factorials.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction


def beta_moment(a: int, b: int, x: int, y: int) -> Fraction:
    """``E[p**x (1 - p)**y]`` under ``Beta(a, b)`` with integer ``a, b >= 1``."""
    f = math.factorial
    return Fraction(
        f(a + x - 1) * f(b + y - 1) * f(a + b - 1), f(a + b + x + y - 1) * f(a - 1) * f(b - 1)
    )


def mixed_polynomial(held: int, wins: int, size: int) -> list[tuple[int, int, int]]:
    """``P(group mixed at final size)`` as terms ``(coefficient, power of p, power of q)``.

    Enumerates the number ``k`` of successes among the ``size - held`` rollouts
    still to come and keeps the outcomes where the final group holds both a
    success and a failure.
    """
    more = size - held
    terms = []
    for k in range(more + 1):
        final_wins = wins + k
        if 0 < final_wins < size:
            terms.append((math.comb(more, k), k, more - k))
    return terms


def group_value(
    held: int, wins: int, size: int, belief: tuple[int, int] | Fraction, weight: tuple[int, int]
) -> Fraction:
    """Expected ``p**j q**k * [mixed]`` of a group of final ``size``.

    ``belief`` is ``(a, b)`` of a Beta posterior, or a point success rate.
    """
    j, k = weight
    total = Fraction(0)
    for coefficient, x, y in mixed_polynomial(held, wins, size):
        if isinstance(belief, Fraction):
            term = belief ** (x + j) * (1 - belief) ** (y + k)
        else:
            term = beta_moment(belief[0], belief[1], x + j, y + k)
        total += coefficient * term
    return total


def best_split(values, lower, upper, costs, budget):
    """Largest total of ``values[i][size]`` over sizes within the bounds and the budget.

    ``values[i]`` maps each size of prompt ``i`` to its value. Brute force.
    """
    best = None
    ranges = [range(lo, hi + 1) for lo, hi in zip(lower, upper, strict=True)]
    for sizes in itertools.product(*ranges):
        cost = sum(c * n for c, n in zip(costs, sizes, strict=True))
        if cost > budget:
            continue
        total = sum(values[i][n] for i, n in enumerate(sizes))
        if best is None or total > best:
            best = total
    return best

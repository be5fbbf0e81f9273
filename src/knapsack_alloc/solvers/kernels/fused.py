"""One compiled call for the most common instance: built-in values at point rates.

With scalar bounds and unit costs, :func:`knapsack_alloc.allocate` spends
most of its time crossing from Python into numba. This kernel chains the
same kernels as the general path (gain terms, greedy, values, the
Lagrangian bound at the greedy's price) inside one compiled call, so the
answer is bit-identical and the overhead is paid once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._jit import kernel
from knapsack_alloc.solvers.kernels.dual import dual_gap
from knapsack_alloc.solvers.kernels.greedy import greedy_kernel
from knapsack_alloc.values.kernels import point_gain_terms, point_values


@kernel
def point_rates_greedy(
    rates: NDArray[np.float64],
    lower: int,
    span: int,
    capacity: int,
    p_power: int,
    q_power: int,
) -> tuple[NDArray[np.int64], float, float]:
    """Greedy allocation of ``capacity`` unit-cost rollouts above ``lower`` each.

    Returns the rollouts per prompt, their total value
    ``sum p**p_power (1-p)**q_power P_nz(N, p)`` and the Lagrangian upper
    bound at the greedy's price (the objective plus the most it can miss).
    """
    size = rates.shape[0]
    lowers = np.full(size, lower, dtype=np.int64)
    spans = np.full(size, span, dtype=np.int64)
    costs = np.ones(size, dtype=np.int64)
    term_a, term_b, q = point_gain_terms(rates, lowers, p_power, q_power)
    unused = np.empty(0, dtype=np.float64)
    no_table = np.empty((0, 0), dtype=np.float64)
    extra, _, _, price = greedy_kernel(
        lowers, spans, costs, capacity, term_a, term_b, rates, q, unused, 0.0, no_table, False
    )
    counts = lowers + extra
    gap = dual_gap(
        lowers, spans, np.ones(size), float(capacity), term_a, term_b, rates, q, unused, 0.0,
        no_table, False, True, price, extra,
    )  # fmt: skip
    objective = point_values(counts, rates, p_power, q_power).sum()
    return counts, objective, objective + gap

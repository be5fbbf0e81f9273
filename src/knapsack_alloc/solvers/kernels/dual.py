"""The Lagrangian dual bound of the allocation problem (numba kernels).

With ``G_i(k)`` the summed gains of ``k`` extra rollouts of prompt ``i``
(``0 <= k <= span_i``, cost ``c_i`` each) and ``C`` the budget left after
every minimum, weak duality gives, for every price ``lam >= 0``::

    max  sum_i G_i(k_i)  s.t.  sum_i c_i k_i <= C
        <=  D(lam) = lam C + sum_i max_k [G_i(k) - lam c_i k]

for any gains, concave or not: adding ``lam (C - sum c_i k_i) >= 0`` to a
feasible objective and maximising each prompt separately can only increase
it. ``D`` is convex in ``lam``; its minimum equals the optimum of the
problem over each prompt's concave envelope (the LP relaxation), so it is
the optimum itself for concave gains with unit costs. The kernels only
evaluate ``D`` (or ``D`` minus the gains of an allocation, its largest
possible shortfall); where the price comes from does not matter to the bound.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._jit import kernel
from knapsack_alloc.solvers.kernels.gains import advance, next_gain

# Factor of the geometric descent that brackets the best price.
_DESCENT = 2.0**-8


@kernel
def _scan(
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.float64],
    term_a: NDArray[np.float64],
    term_b: NDArray[np.float64],
    a_num: NDArray[np.float64],
    b_num: NDArray[np.float64],
    den: NDArray[np.float64],
    step: float,
    table: NDArray[np.float64],
    use_table: bool,
    concave: bool,
    price: float,
    extra: NDArray[np.int64],
) -> tuple[float, float, float]:
    """Scan every prompt's reduced values ``G_i(k) - price * c_i * k``.

    Returns the sum of their maxima, ``sum_i c_i k_i`` at the smallest
    maximisers, and ``sum_i G_i(extra_i)``. With ``concave`` a prompt's scan
    stops once past ``extra_i`` at the first gain worth at most its price.
    Each prompt goes to a loop specialised to its kind of gains, chosen here
    rather than in a helper: a call per prompt with the arrays, or a general
    loop's branches, would cost several times the arithmetic.
    """
    total = 0.0
    spend = 0.0
    held = 0.0
    for i in range(lower.shape[0]):
        unit_price = price * costs[i]
        if use_table:
            best, best_k, gains = _walk_row(table[i], span[i], concave, unit_price, extra[i])
        elif lower[i] >= 1 and step == 0.0:
            best, best_k, gains = _walk_geometric(span[i], term_a[i], term_b[i], a_num[i],
                                                  b_num[i], concave, unit_price,
                                                  extra[i])  # fmt: skip
        elif lower[i] >= 1:
            best, best_k, gains = _walk_beta(span[i], lower[i], term_a[i], term_b[i], a_num[i],
                                             b_num[i], den[i], concave, unit_price,
                                             extra[i])  # fmt: skip
        else:
            # Point rates (step 0) carry no denominators: den is empty then.
            den_i = den[i] if step != 0.0 else 0.0
            best, best_k, gains = _walk_from_zero(span[i], term_a[i], term_b[i], a_num[i],
                                                  b_num[i], den_i, step, unit_price,
                                                  extra[i])  # fmt: skip
        total += best
        spend += costs[i] * best_k
        held += gains
    return total, spend, held


@kernel
def _walk_row(
    row: NDArray[np.float64], span: int, concave: bool, unit_price: float, mark: int
) -> tuple[float, int, float]:
    """Scan tabulated gains: max reduced value, its smallest maximiser, gains of ``mark``."""
    running = 0.0
    held = 0.0
    best = 0.0
    best_k = 0
    for k in range(span):
        gain = row[k]
        if concave and gain <= unit_price and k >= mark:
            break
        running += gain - unit_price
        if k < mark:
            held += gain
        if running > best:
            best = running
            best_k = k + 1
    return best, best_k, held


@kernel
def _walk_geometric(
    span: int,
    a: float,
    b: float,
    ratio_a: float,
    ratio_b: float,
    concave: bool,
    unit_price: float,
    mark: int,
) -> tuple[float, int, float]:
    """Scan point-rate gains ``a + b``, whose terms shrink by constant ratios.

    The same arithmetic as :func:`~knapsack_alloc.solvers.kernels.gains.advance`.
    """
    running = 0.0
    held = 0.0
    best = 0.0
    best_k = 0
    for k in range(span):
        gain = a + b
        if concave and gain <= unit_price and k >= mark:
            break
        running += gain - unit_price
        if k < mark:
            held += gain
        if running > best:
            best = running
            best_k = k + 1
        a *= ratio_a
        b *= ratio_b
    return best, best_k, held


@kernel
def _walk_beta(
    span: int,
    start: int,
    a: float,
    b: float,
    a_num: float,
    b_num: float,
    den: float,
    concave: bool,
    unit_price: float,
    mark: int,
) -> tuple[float, int, float]:
    """Scan Beta-posterior gains, whose terms shrink by ``(num + n) / (den + n)`` at ``n``.

    The same arithmetic as :func:`~knapsack_alloc.solvers.kernels.gains.advance`.
    """
    running = 0.0
    held = 0.0
    best = 0.0
    best_k = 0
    for k in range(span):
        gain = a + b
        if concave and gain <= unit_price and k >= mark:
            break
        running += gain - unit_price
        if k < mark:
            held += gain
        if running > best:
            best = running
            best_k = k + 1
        n = start + k
        a *= (a_num + n) / (den + n)
        b *= (b_num + n) / (den + n)
    return best, best_k, held


@kernel
def _walk_from_zero(
    span: int,
    a: float,
    b: float,
    a_num: float,
    b_num: float,
    den: float,
    step: float,
    unit_price: float,
    mark: int,
) -> tuple[float, int, float]:
    """Scan recurrence gains from 0 rollouts: the step to 1 gains 0, then ``a + b`` from 1.

    The reduced value of ``k >= 1`` rollouts is ``-unit_price`` plus that of
    ``k - 1`` rollouts of the gains from 1, which never increase.
    """
    if span == 0:
        return 0.0, 0, 0.0
    if step == 0.0:
        best, best_k, held = _walk_geometric(span - 1, a, b, a_num, b_num, True, unit_price,
                                             mark - 1)  # fmt: skip
    else:
        best, best_k, held = _walk_beta(span - 1, 1, a, b, a_num, b_num, den, True, unit_price,
                                        mark - 1)  # fmt: skip
    if best - unit_price > 0.0:
        return best - unit_price, best_k + 1, held
    return 0.0, 0, held


@kernel
def dual_value(
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.float64],
    capacity: float,
    term_a: NDArray[np.float64],
    term_b: NDArray[np.float64],
    a_num: NDArray[np.float64],
    b_num: NDArray[np.float64],
    den: NDArray[np.float64],
    step: float,
    table: NDArray[np.float64],
    use_table: bool,
    concave: bool,
    price: float,
) -> tuple[float, float]:
    """Evaluate ``D(price)``; also return ``sum_i c_i k_i`` at each prompt's smallest maximiser."""
    nothing = np.zeros(lower.shape[0], dtype=np.int64)
    total, spend, _ = _scan(lower, span, costs, term_a, term_b, a_num, b_num, den, step, table,
                            use_table, concave, price, nothing)  # fmt: skip
    return price * capacity + total, spend


@kernel
def dual_gap(
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.float64],
    capacity: float,
    term_a: NDArray[np.float64],
    term_b: NDArray[np.float64],
    a_num: NDArray[np.float64],
    b_num: NDArray[np.float64],
    den: NDArray[np.float64],
    step: float,
    table: NDArray[np.float64],
    use_table: bool,
    concave: bool,
    price: float,
    extra: NDArray[np.int64],
) -> float:
    """Return ``D(price) - sum_i G_i(extra_i)``: how much the allocation ``extra`` can miss.

    One scan of each prompt gives both its best reduced value and the gains
    of its rollouts.
    """
    total, _, held = _scan(lower, span, costs, term_a, term_b, a_num, b_num, den, step, table,
                           use_table, concave, price, extra)  # fmt: skip
    return price * capacity + total - held


@kernel
def held_gains(
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    term_a: NDArray[np.float64],
    term_b: NDArray[np.float64],
    a_num: NDArray[np.float64],
    b_num: NDArray[np.float64],
    den: NDArray[np.float64],
    step: float,
    table: NDArray[np.float64],
    use_table: bool,
    extra: NDArray[np.int64],
) -> float:
    """Return ``sum_i G_i(extra_i)``, the gains of an allocation above the minimums."""
    costs = np.ones(lower.shape[0])
    # An infinite price stops every scan right after the allocation's rollouts.
    return _scan(lower, span, costs, term_a, term_b, a_num, b_num, den, step, table,
                 use_table, True, np.inf, extra)[2]  # fmt: skip


@kernel
def _top_price(
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.float64],
    term_a: NDArray[np.float64],
    term_b: NDArray[np.float64],
    a_num: NDArray[np.float64],
    b_num: NDArray[np.float64],
    den: NDArray[np.float64],
    step: float,
    table: NDArray[np.float64],
    use_table: bool,
    concave: bool,
) -> float:
    """Return a price at which no extra rollout pays: ``max G_i(k) / (c_i k)``."""
    top = 0.0
    for i in range(lower.shape[0]):
        a = 0.0 if use_table else term_a[i]
        b = 0.0 if use_table else term_b[i]
        total = 0.0
        for k in range(span[i]):
            n = lower[i] + k
            total += next_gain(i, k, n, a, b, table, use_table)
            top = max(top, total / (costs[i] * (k + 1)))
            if concave:
                break  # the first gain is the largest ratio
            a, b = advance(i, n, a, b, a_num, b_num, den, step, use_table)
    return top


@kernel
def _between(low: float, high: float) -> float:
    """Return the midpoint of two non-negative doubles' bit patterns (a log-scale bisection)."""
    bits = np.empty(2, dtype=np.float64)
    bits[0] = low
    bits[1] = high
    as_int = bits.view(np.int64)
    middle = as_int[0] + (as_int[1] - as_int[0]) // 2
    as_int[0] = middle
    return float(bits[0])


@kernel
def minimise_dual(
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.float64],
    capacity: float,
    term_a: NDArray[np.float64],
    term_b: NDArray[np.float64],
    a_num: NDArray[np.float64],
    b_num: NDArray[np.float64],
    den: NDArray[np.float64],
    step: float,
    table: NDArray[np.float64],
    use_table: bool,
    concave: bool,
) -> tuple[float, float]:
    """Minimise ``D`` over ``price >= 0`` to adjacent doubles; return ``(D, price)``.

    ``D`` is convex and its slope at ``price`` is ``capacity - spend(price)``,
    so the minimiser is bracketed by a geometric descent from a price at which
    nothing is worth buying, then found by bisecting the bit patterns of the
    bracket (at most 64 steps). Both ends are evaluated and the smaller
    ``D`` kept; any price gives a valid bound.
    """

    def at(price: float) -> tuple[float, float]:
        return dual_value(lower, span, costs, capacity, term_a, term_b, a_num, b_num, den,
                          step, table, use_table, concave, price)  # fmt: skip

    full = 0.0
    for i in range(lower.shape[0]):
        full += costs[i] * span[i]
    if full <= capacity:  # every rollout fits: price 0 is optimal
        return at(0.0)[0], 0.0
    high = _top_price(lower, span, costs, term_a, term_b, a_num, b_num, den, step,
                      table, use_table, concave)  # fmt: skip
    value_high, spend = at(high)
    while spend > capacity:  # rounding in the top ratio: move up until nothing is bought
        high = 2.0 * high + 1e-300
        value_high, spend = at(high)
    low = high
    while True:  # geometric descent to a price at which too much is worth buying
        low = low * _DESCENT
        value_low, spend = at(low)
        if spend > capacity:
            break
        high, value_high = low, value_low
        if low == 0.0:
            return value_high, high
    while True:
        middle = _between(low, high)
        if middle <= low or middle >= high:
            break
        value, spend = at(middle)
        if spend > capacity:
            low, value_low = middle, value
        else:
            high, value_high = middle, value
    if value_low < value_high:
        return value_low, low
    return value_high, high

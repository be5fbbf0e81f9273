"""Certificates: how far from optimal any allocation can be.

:func:`certify` takes rollout counts found by any means (this library, the
reference code, a hand-made rule, last step's plan) and returns their
objective next to an upper bound on the optimum of the same instance. The
bound is the Lagrangian dual (see :mod:`knapsack_alloc.solvers.kernels.dual`),
computed from the instance alone: it does not look at the counts, so a wrong
allocation cannot certify itself. :func:`~knapsack_alloc.allocate` reports
the same bound, or a tighter one its solver proves, and calls its answer
``optimal`` only when the two numbers agree within
:data:`OPTIMALITY_TOLERANCE`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from knapsack_alloc._validation import integer_array, positive_costs, real_scalar, rollout_bounds
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.values import BetaPosterior, ValueArgument, check_estimates, resolve_value
from knapsack_alloc.values.gains import GainSource

#: Relative difference between objective and upper bound below which an
#: allocation counts as optimal: both are sums of floating-point terms, so
#: exact equality would depend on the order of the additions.
OPTIMALITY_TOLERANCE = 1e-9
# Below this, float64 sums have no relative precision left (all values are ~0).
_NEGLIGIBLE = 1e-300
# Relative error bound of a float sum of non-negative float products (generous).
_SUM_ERROR = 2.0**-50


def proves_optimal(objective: float, upper_bound: float) -> bool:
    """Whether ``upper_bound`` is within :data:`OPTIMALITY_TOLERANCE` of ``objective``."""
    scale = max(abs(upper_bound), abs(objective), _NEGLIGIBLE)
    return upper_bound - objective <= OPTIMALITY_TOLERANCE * scale


@dataclass(frozen=True, repr=False)
class Certificate:
    """An allocation's objective and a proven upper bound on the optimum.

    Attributes
    ----------
    objective : float
        ``sum_i Value(counts[i], p_i)`` of the certified counts.
    upper_bound : float
        Upper bound on the objective of every allocation within the bounds
        and the budget (the Lagrangian dual at ``price``).
    price : float
        The price of one cost unit at which the dual was evaluated.
    total_cost : float
        ``sum_i cost_i * counts[i]``.
    budget : float
        The budget the counts were certified against.
    value : str
        Name of the value model.
    """

    objective: float
    upper_bound: float
    price: float
    total_cost: float
    budget: float
    value: str

    @property
    def gap(self) -> float:
        """``upper_bound - objective`` (0 if negative): the most the optimum can add."""
        return max(self.upper_bound - self.objective, 0.0)

    @property
    def relative_gap(self) -> float:
        """``gap / upper_bound`` (0 when the bound is 0)."""
        return self.gap / self.upper_bound if self.upper_bound > 0 else 0.0

    @property
    def optimal(self) -> bool:
        """Whether the bound proves the counts optimal (up to :data:`OPTIMALITY_TOLERANCE`)."""
        return proves_optimal(self.objective, self.upper_bound)

    def __repr__(self) -> str:
        return (
            f"Certificate(objective={self.objective:.6g}, upper_bound={self.upper_bound:.6g}, "
            f"gap={self.gap:.2g}, optimal={self.optimal})"
        )


def dual_bound(
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.float64],
    capacity: float,
    gains: GainSource,
    concave: bool,
) -> tuple[float, float]:
    """Minimise the Lagrangian bound on the summed gains above ``lower``.

    Parameters
    ----------
    lower, span : numpy.ndarray of int64
        Minimum and extra rollouts allowed for each prompt.
    costs : numpy.ndarray of float64
        Cost of one rollout of each prompt.
    capacity : float
        Budget left after the minimums (any larger number gives a valid bound).
    gains : GainSource
        Marginal gains of each prompt from its minimum.
    concave : bool
        Whether every prompt's gains never increase within its span.

    Returns
    -------
    bound, price : float
        The bound and the price of one cost unit it was evaluated at.
    """
    from knapsack_alloc.solvers.kernels.dual import minimise_dual

    bound, price = minimise_dual(lower, span, costs, capacity, *gains.recurrence(), concave)
    return float(bound), float(price)


def shortfall(
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    costs: NDArray[np.float64],
    capacity: float,
    gains: GainSource,
    concave: bool,
    extra: NDArray[np.int64],
    price: float | None,
    proven: float | None,
) -> float:
    """Bound how far the allocation ``lower + extra`` can fall short of the optimum.

    The Lagrangian bound at ``price`` (minimised when None) minus the gains of
    ``extra``, or ``proven`` (a bound on the summed gains that a solver
    proved) minus them when that is smaller. Parameters as in
    :func:`dual_bound`.

    Returns
    -------
    float
        ``upper_bound - objective``, up to rounding.
    """
    from knapsack_alloc.solvers.kernels.dual import dual_gap, held_gains, minimise_dual

    recurrence = gains.recurrence()
    if price is None:
        price = float(minimise_dual(lower, span, costs, capacity, *recurrence, concave)[1])
    gap = float(dual_gap(lower, span, costs, capacity, *recurrence, concave, price, extra))
    if proven is not None:
        gap = min(gap, proven - float(held_gains(lower, span, *recurrence, extra)))
    return gap


def certify(
    counts: ArrayLike,
    success_rates: ArrayLike | BetaPosterior,
    budget: float,
    *,
    min_rollouts: int | ArrayLike,
    max_rollouts: int | ArrayLike,
    costs: ArrayLike | None = None,
    value: ValueArgument = "grpo",
) -> Certificate:
    """Bound how far ``counts`` can be from the optimal allocation of the instance.

    Parameters
    ----------
    counts : array_like of int
        Rollouts per prompt to certify, e.g. ``allocate(...).counts`` or the
        output of another implementation.
    success_rates : array_like or BetaPosterior
        As in :func:`~knapsack_alloc.allocate`.
    budget : int or float
        Total cost allowed; real numbers are fine.
    min_rollouts, max_rollouts : int or array_like of int
        Bounds on each prompt's rollouts.
    costs : array_like, optional
        Cost of one rollout of each prompt (default 1 each); any positive
        reals, used exactly (no rounding).
    value : {'grpo', 'nonzero'}, ValueModel or callable, default 'grpo'
        The value model, as in :func:`~knapsack_alloc.allocate`.

    Returns
    -------
    Certificate
        ``objective``, ``upper_bound``, ``gap`` and ``optimal``.

    Raises
    ------
    InvalidArgumentError
        If a count lies outside its bounds or the counts cost more than the
        budget (checked in exact arithmetic), or an argument is invalid.

    Notes
    -----
    For every price ``lam >= 0`` ::

        OPT <= lam * budget + sum_i max_{L_i <= N <= U_i} [Value_i(N) - lam * cost_i * N]

    (weak duality), whatever the value model, concave or not. The price is
    minimised to adjacent doubles. The bound equals the optimum when values
    are concave and costs are equal (e.g. the paper's setting); with integer
    costs, or values that are not concave, a gap can remain even for an
    optimal allocation (the duality gap; :func:`~knapsack_alloc.allocate`
    then reports the tighter bound its DP proves).

    Examples
    --------
    >>> from knapsack_alloc import certify
    >>> certificate = certify([15, 7, 2], [0.1, 0.5, 0.9], 24, min_rollouts=2, max_rollouts=128)
    >>> certificate.optimal
    True
    >>> certify([8, 8, 8], [0.1, 0.5, 0.9], 24, min_rollouts=2, max_rollouts=128).optimal
    False
    """
    estimates = check_estimates(success_rates)
    size = len(estimates)
    model = resolve_value(value)
    lower, upper = rollout_bounds(min_rollouts, max_rollouts, size)
    held = integer_array("counts", counts, length=size)
    for outside, side, limit, name in (
        (held < lower, "below", lower, "min_rollouts"),
        (held > upper, "above", upper, "max_rollouts"),
    ):
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise InvalidArgumentError(
                f"counts[{i}] == {held[i]} is {side} {name}[{i}] == {limit[i]}; every count "
                "must lie between min_rollouts and max_rollouts."
            )
    budget_value = real_scalar("budget", budget)
    if budget_value < 0:
        raise InvalidArgumentError(f"budget == {budget!r}, must be >= 0.")
    per_rollout = np.ones(size) if costs is None else positive_costs("costs", costs, length=size)
    total_cost = _check_spend(per_rollout, held, budget, budget_value)

    capacity = _capacity_above(budget_value, per_rollout, lower)
    # Rollouts the budget could pay for (rounded up: a superset keeps the bound valid).
    affordable = np.floor(capacity / per_rollout * (1 + _SUM_ERROR)) if size else per_rollout
    span = np.minimum(upper - lower, affordable).astype(np.int64)
    gains = model._gains(estimates, lower, span)
    dual, price = dual_bound(lower, span, per_rollout, capacity, gains, gains.concave(lower, span))
    return Certificate(
        objective=float(model.value(held, estimates).sum()),
        upper_bound=float(model.value(lower, estimates).sum()) + dual,
        price=price,
        total_cost=total_cost,
        budget=budget_value,
        value=model.name,
    )


def _check_spend(
    costs: NDArray[np.float64], counts: NDArray[np.int64], budget: Any, budget_value: float
) -> float:
    """Return ``sum(costs * counts)``; raise if it exceeds the budget in exact arithmetic."""
    total = math.fsum((costs * counts).tolist())
    error = _SUM_ERROR * total
    if total - error > budget_value:
        over = True
    elif total + error <= budget_value:
        over = False
    else:  # too close to call in floating point: decide with exact fractions
        exact = sum(Fraction(c) * n for c, n in zip(costs.tolist(), counts.tolist(), strict=True))
        limit = (
            Fraction(int(budget))
            if isinstance(budget, (int, np.integer))
            else Fraction(budget_value)
        )
        over = exact > limit
    if over:
        raise InvalidArgumentError(
            f"counts cost {total:.17g} (sum of cost * counts, compared exactly), more than "
            f"budget == {budget!r}; "
            "certify allocations that stay within the budget."
        )
    return total


def _capacity_above(budget: float, costs: NDArray[np.float64], lower: NDArray[np.int64]) -> float:
    """Bound ``budget - sum(costs * lower)`` from above (rounding only ever raises it)."""
    floor = math.fsum((costs * lower).tolist()) * (1 - _SUM_ERROR)
    return float(np.nextafter(budget - floor, np.inf))

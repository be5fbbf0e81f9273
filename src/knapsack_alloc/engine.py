"""The one entry point: :func:`allocate`."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._problem import GainSource, Problem
from knapsack_alloc._validation import (
    InvalidArgumentError,
    choice,
    integer_array,
    real_array,
    real_scalar,
)
from knapsack_alloc.costs import resolve_costs
from knapsack_alloc.posterior import BetaPosterior
from knapsack_alloc.result import AllocationResult
from knapsack_alloc.solvers import SOLVERS
from knapsack_alloc.values import (
    BUILT_IN,
    Estimates,
    NonzeroGradientValue,
    ValueModel,
    resolve_value,
)


def allocate(
    success_rates: Any,
    budget: Any,
    *,
    min_rollouts: Any = 2,
    max_rollouts: Any = 128,
    costs: Any = None,
    cost_resolution: Any = None,
    value: str | ValueModel | Any = "grpo",
    solver: str = "auto",
    time_limit: float | None = None,
    allow_unused_budget: bool = False,
) -> AllocationResult:
    """Split a rollout budget across prompts to maximise the learning value.

    Parameters
    ----------
    success_rates : array_like or BetaPosterior
        Estimated success probability of each prompt, in ``[0, 1]``; or a
        :class:`BetaPosterior` of successes and failures, in which case the
        exact posterior expected value is maximised.
    budget : int or float
        Total cost to spend: rollouts with unit costs, else the costs' unit.
    min_rollouts, max_rollouts : int or array_like of int, default 2 and 128
        Bounds on each prompt's rollouts (a scalar or one per prompt).
    costs : array_like, optional
        Cost of one rollout of each prompt (default 1 each), e.g. expected
        response tokens. Whole numbers are used exactly; see ``cost_resolution``.
    cost_resolution : float, optional
        Round real-valued ``costs`` (and floor the budget) to whole multiples
        of this unit; the largest relative rounding error is reported as
        ``cost_rounding`` on the result.
    value : {'grpo', 'nonzero'}, ValueModel or callable, default 'grpo'
        ``'grpo'``: ``P_nz(N, p) * p * (1 - p)**2`` (the paper);
        ``'nonzero'``: ``P_nz(N, p)``, the expected number of prompts with a
        gradient; or a value model / vectorised callable ``value(N, p)`` that
        does not decrease in ``N``.
    solver : {'auto', 'greedy', 'dp', 'ortools', 'textbook'}, default 'auto'
        ``'auto'`` picks the fastest exact method. ``'greedy'``: exact for
        unit costs, else feasible with a bound; ``'dp'``: exact for integer
        costs; ``'ortools'``: SCIP through OR-Tools (optional dependency);
        ``'textbook'``: the slow O(n * B * U) DP, for comparison.
    time_limit : float, optional
        Seconds allowed to the ``'ortools'`` solver.
    allow_unused_budget : bool, default False
        A budget above what ``max_rollouts`` can use is an error unless this
        is True; the result's ``unused_budget`` then says how much is left.

    Returns
    -------
    AllocationResult
        ``counts`` per prompt in input order, ``objective``, ``upper_bound``,
        ``status``, ``solver``, ``total_cost``, ``solve_time``.

    Notes
    -----
    Solves ::

        maximise    sum_i Value(N_i, p_i)
        subject to  sum_i cost_i * N_i <= budget,
                    min_rollouts_i <= N_i <= max_rollouts_i,  N_i integer.

    With unit costs and ``budget <= sum(max_rollouts)`` the whole budget is
    spent. Rollouts whose gains tie are given to the prompt holding fewer
    rollouts, then to the earlier prompt, so the same input always gives the
    same output. The maths and the solvers are described in ``docs/``.

    References
    ----------
    Li et al., "Knapsack RL: Unlocking Exploration of LLMs via Optimizing
    Budget Allocation", arXiv:2509.25849, 2025.

    Examples
    --------
    >>> from knapsack_alloc import allocate
    >>> result = allocate([0.0, 0.5, 0.9, 1.0], budget=32, max_rollouts=16)
    >>> result.counts.tolist(), result.status
    ([2, 12, 16, 2], 'optimal')
    """
    started = time.perf_counter()
    estimates = _estimates(success_rates)
    if (
        type(min_rollouts) is int
        and type(max_rollouts) is int
        and costs is None
        and cost_resolution is None
        and time_limit is None
        and isinstance(estimates, np.ndarray)
    ):
        result = _point_rates_unit_costs(estimates, budget, min_rollouts, max_rollouts, value,
                                         solver, started)  # fmt: skip
        if result is not None:
            return result
    size = len(estimates)
    solver_name = choice("solver", solver, SOLVERS)
    model = resolve_value(value)
    limit = _time_limit(time_limit)
    lower = integer_array("min_rollouts", min_rollouts, length=size)
    upper = integer_array("max_rollouts", max_rollouts, length=size)
    inverted = lower > upper
    if inverted.any():
        i = int(np.flatnonzero(inverted)[0])
        raise InvalidArgumentError(
            f"min_rollouts[{i}] == {lower[i]} > max_rollouts[{i}] == {upper[i]}; "
            "each prompt needs min_rollouts <= max_rollouts."
        )
    cost_model = resolve_costs(costs, budget, size, cost_resolution)
    units = cost_model.units
    unit_cost = cost_model.kind == "unit"
    floor = int(lower.sum() if unit_cost else units @ lower)
    ceiling = int(upper.sum() if unit_cost else units @ upper)
    if size == 0 and cost_model.budget_units > 0:
        raise InvalidArgumentError(
            f"budget == {budget!r} but there are no prompts; pass budget=0 for an empty batch."
        )
    if cost_model.budget_units < floor:
        raise InvalidArgumentError(
            f"budget == {budget!r} is below the {floor} cost units that min_rollouts requires "
            f"(sum of cost * min_rollouts); raise the budget or lower min_rollouts."
        )
    if cost_model.budget_units > ceiling and not allow_unused_budget:
        raise InvalidArgumentError(
            f"budget == {budget!r} is above the {ceiling} cost units that max_rollouts can use "
            "(sum of cost * max_rollouts); lower the budget, raise max_rollouts, or pass "
            "allow_unused_budget=True to leave the rest unspent."
        )
    divisor = 1 if unit_cost or not size else int(np.gcd.reduce(units))
    reduced_costs = units // divisor
    capacity = (min(cost_model.budget_units, ceiling) - floor) // divisor
    # No prompt can take more extra rollouts than the budget pays for.
    span = np.minimum(upper - lower, capacity // reduced_costs)
    gains = model.gains(estimates, lower, span)
    problem = Problem(
        lower=lower,
        span=span,
        costs=reduced_costs,
        capacity=capacity,
        gains=gains,
        concave=_is_concave(gains, lower, span),
        unit_cost=unit_cost or divisor == int(units.max(initial=1)),
    )
    output = SOLVERS[solver_name](problem, limit)
    counts = lower + output.extra
    objective = float(model.value(counts, estimates).sum())
    if output.status == "optimal":
        upper_bound = objective
    else:
        base = float(model.value(lower, estimates).sum())
        upper_bound = max(objective, base + output.bound)
    return AllocationResult(
        counts=counts,
        objective=objective,
        upper_bound=upper_bound,
        total_cost=float(counts.sum() if unit_cost else cost_model.per_rollout @ counts),
        budget=cost_model.budget,
        solver=output.solver,
        status=output.status,  # type: ignore[arg-type]
        solve_time=time.perf_counter() - started,
        value=model.name,
        cost_rounding=cost_model.rounding,
    )


def _point_rates_unit_costs(
    rates: NDArray[np.float64],
    budget: Any,
    lower: int,
    upper: int,
    value: Any,
    solver: str,
    started: float,
) -> AllocationResult | None:
    """Solve the most common case in one compiled call, or None if this is not it.

    The case: point success rates, a built-in value model, scalar bounds with
    ``1 <= min_rollouts``, unit costs, a budget the bounds can spend, and the
    ``auto`` or ``greedy`` solver. Anything else, errors included, goes
    through the general path.
    """
    model = BUILT_IN.get(value) if isinstance(value, str) else value
    size = rates.shape[0]
    if (
        not isinstance(model, NonzeroGradientValue)
        or solver not in ("auto", "greedy")
        or type(budget) is not int
        or not 1 <= lower <= upper
        or not 0 < size * lower <= budget <= size * upper
    ):
        return None
    from knapsack_alloc.solvers._fused import point_rates_greedy

    capacity = budget - size * lower
    counts, objective = point_rates_greedy(
        rates, lower, min(upper - lower, capacity), capacity, model.p_power, model.q_power
    )
    return AllocationResult(
        counts=counts,
        objective=objective,
        upper_bound=objective,
        total_cost=float(budget),
        budget=float(budget),
        solver="greedy",
        status="optimal",
        solve_time=time.perf_counter() - started,
        value=model.name,
    )


def _estimates(success_rates: Any) -> Estimates:
    if isinstance(success_rates, BetaPosterior):
        return success_rates
    if (
        isinstance(success_rates, np.ndarray)
        and success_rates.dtype == np.float64
        and success_rates.ndim == 1
        and success_rates.flags.c_contiguous
        and (success_rates.size == 0 or 0.0 <= success_rates.min() <= success_rates.max() <= 1.0)
    ):
        return success_rates  # fast path: already valid (NaN fails the comparisons)
    rates = real_array("success_rates", success_rates)
    outside = (rates < 0.0) | (rates > 1.0)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise InvalidArgumentError(
            f"success_rates[{i}] == {float(rates[i])!r}, must be in [0, 1] (a probability)."
        )
    return rates


def _time_limit(time_limit: Any) -> float | None:
    if time_limit is None:
        return None
    seconds = real_scalar("time_limit", time_limit)
    if seconds <= 0:
        raise InvalidArgumentError(f"time_limit == {time_limit!r}, must be > 0 seconds (or None).")
    return seconds


def _is_concave(gains: GainSource, lower: NDArray[np.int64], span: NDArray[np.int64]) -> bool:
    """Whether every prompt's gains never increase with ``N``."""
    if not gains.use_table:
        # Recurrence factors are <= 1, so only the step from 0 to 1 rollout
        # (gain 0) can be followed by a larger gain.
        if lower.size == 0 or lower.min() > 0:
            return True
        first_gain = gains.term_a + gains.term_b
        return not bool(np.any((lower == 0) & (span >= 2) & (first_gain > 0)))
    table = gains.table
    if table.shape[1] < 2:
        return True
    inside = np.arange(1, table.shape[1]) < span[:, None]
    return not bool(np.any((table[:, 1:] > table[:, :-1]) & inside))

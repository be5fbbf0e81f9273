"""The one entry point: :func:`allocate`."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._problem import Problem, gains_are_concave
from knapsack_alloc._validation import (
    MAX_INTEGER,
    InvalidArgumentError,
    choice,
    integer_scalar,
    real_scalar,
    rollout_bounds,
)
from knapsack_alloc.certificates import proves_optimal, shortfall
from knapsack_alloc.costs import resolve_costs
from knapsack_alloc.result import AllocationResult
from knapsack_alloc.solvers import SOLVERS, SolverOptions
from knapsack_alloc.values import (
    BUILT_IN,
    NonzeroGradientValue,
    ValueModel,
    check_estimates,
    resolve_value,
)

#: Default memory cap of the ``'dp'`` and ``'textbook'`` tables, in bytes.
DEFAULT_MAX_TABLE_BYTES = 256 * 2**20
#: Environment variable that overrides :data:`DEFAULT_MAX_TABLE_BYTES`.
MAX_TABLE_BYTES_VARIABLE = "KNAPSACK_ALLOC_MAX_TABLE_BYTES"
# Longest time_limit OR-Tools accepts: 2**53 milliseconds.
_MAX_SECONDS = MAX_INTEGER / 1000
# Sums of non-negative int64 terms below this cannot overflow.
_EXACT_INT64 = 2**62


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
    max_table_bytes: int | None = None,
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
        Round real-valued ``costs`` up, and the budget down, to whole
        multiples of this unit, so the real spend never exceeds the budget;
        the largest relative rounding of a cost is reported as
        ``cost_rounding`` on the result (status and bound then refer to the
        rounded costs).
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
    max_table_bytes : int, optional
        Memory the ``'dp'`` and ``'textbook'`` tables may take; default the
        environment variable ``KNAPSACK_ALLOC_MAX_TABLE_BYTES``, else 256 MiB.
        A larger table is an error (``'auto'`` then returns the greedy answer
        with its bound).

    Returns
    -------
    AllocationResult
        ``counts`` per prompt in input order, ``objective``, ``upper_bound``
        (the Lagrangian bound of :func:`~knapsack_alloc.certify`, or a tighter
        one the solver proves), ``status`` (``'optimal'`` when the two agree
        within a relative ``1e-9``), ``solver``, ``total_cost``, ``solve_time``.

    Notes
    -----
    Solves ::

        maximise    sum_i Value(N_i, p_i)
        subject to  sum_i cost_i * N_i <= budget,
                    min_rollouts_i <= N_i <= max_rollouts_i,  N_i integer.

    With unit costs and ``budget <= sum(max_rollouts)`` the whole budget is
    spent. Rollouts whose gains tie are given to the prompt holding fewer
    rollouts, then to the earlier prompt, so the same input always gives the
    same output, whichever exact solver runs (the few exceptions are listed
    in ``docs/solvers.md``). The maths and the solvers are described in
    ``docs/``.

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
    estimates = check_estimates(success_rates)
    if (
        type(min_rollouts) is int
        and type(max_rollouts) is int
        and costs is None
        and cost_resolution is None
        and time_limit is None
        and max_table_bytes is None
        and isinstance(estimates, np.ndarray)
    ):
        result = _point_rates_unit_costs(estimates, budget, min_rollouts, max_rollouts, value,
                                         solver, started)  # fmt: skip
        if result is not None:
            return result
    size = len(estimates)
    solver_name = choice("solver", solver, SOLVERS)
    model = resolve_value(value)
    options = SolverOptions(_time_limit(time_limit), _table_limit(max_table_bytes))
    lower, upper = rollout_bounds(min_rollouts, max_rollouts, size)
    cost_model = resolve_costs(costs, budget, size, cost_resolution)
    units = cost_model.units
    unit_cost = cost_model.kind == "unit"
    floor = _exact_dot(units, lower)
    ceiling = _exact_dot(units, upper)
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
    concave = gains_are_concave(gains, lower, span)
    problem = Problem(
        lower=lower,
        span=span,
        costs=reduced_costs,
        capacity=capacity,
        gains=gains,
        concave=concave,
        unit_cost=unit_cost or divisor == int(units.max(initial=1)),
    )
    output = SOLVERS[solver_name](problem, options)
    counts = lower + output.extra
    objective = float(model.value(counts, estimates).sum())
    upper_bound = objective + shortfall(
        lower, span, reduced_costs.astype(np.float64), float(capacity), gains, concave,
        output.extra, output.price, output.bound,
    )  # fmt: skip
    if proves_optimal(objective, upper_bound):
        status = "optimal"
    else:
        status = "time_limit" if output.timed_out else "feasible"
    return AllocationResult(
        counts=counts,
        objective=objective,
        upper_bound=upper_bound,
        total_cost=float(counts.sum() if unit_cost else cost_model.per_rollout @ counts),
        budget=cost_model.budget,
        solver=output.solver,
        status=status,  # type: ignore[arg-type]
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
    through the general path. The kernel also evaluates the Lagrangian bound
    at the greedy's price, so the status is checked as on the general path.
    """
    model = BUILT_IN.get(value) if isinstance(value, str) else value
    size = rates.shape[0]
    if (
        not isinstance(model, NonzeroGradientValue)
        or solver not in ("auto", "greedy")
        or type(budget) is not int
        or not 1 <= lower <= upper <= MAX_INTEGER
        or not 0 < size * lower <= budget <= min(size * upper, MAX_INTEGER)
    ):
        return None
    from knapsack_alloc.solvers._fused import point_rates_greedy

    capacity = budget - size * lower
    counts, objective, upper_bound = point_rates_greedy(
        rates, lower, min(upper - lower, capacity), capacity, model.p_power, model.q_power
    )
    return AllocationResult(
        counts=counts,
        objective=objective,
        upper_bound=upper_bound,
        total_cost=float(budget),
        budget=float(budget),
        solver="greedy",
        status="optimal" if proves_optimal(objective, upper_bound) else "feasible",
        solve_time=time.perf_counter() - started,
        value=model.name,
    )


def _time_limit(time_limit: Any) -> float | None:
    if time_limit is None:
        return None
    seconds = real_scalar("time_limit", time_limit)
    if seconds <= 0:
        raise InvalidArgumentError(f"time_limit == {time_limit!r}, must be > 0 seconds (or None).")
    if seconds > _MAX_SECONDS:
        raise InvalidArgumentError(
            f"time_limit == {time_limit!r} is too large; at most 2**53 milliseconds (about "
            "9e12 seconds) is supported, pass None for no limit."
        )
    return seconds


def _table_limit(max_table_bytes: Any) -> int:
    if max_table_bytes is not None:
        return integer_scalar("max_table_bytes", max_table_bytes)
    setting = os.environ.get(MAX_TABLE_BYTES_VARIABLE)
    if setting is None:
        return DEFAULT_MAX_TABLE_BYTES
    try:
        return integer_scalar(MAX_TABLE_BYTES_VARIABLE, int(setting))
    except ValueError:
        raise InvalidArgumentError(
            f"the environment variable {MAX_TABLE_BYTES_VARIABLE} == {setting!r} must be a "
            "whole number of bytes, e.g. 1073741824 for 1 GiB."
        ) from None


def _exact_dot(units: NDArray[np.int64], rollouts: NDArray[np.int64]) -> int:
    """``sum(units * rollouts)`` exactly: in int64 when it cannot overflow, else in Python."""
    most = int(units.max(initial=0)) * int(rollouts.max(initial=0)) * units.size
    if most < _EXACT_INT64:
        return int(units @ rollouts)
    return sum(u * r for u, r in zip(units.tolist(), rollouts.tolist(), strict=True))

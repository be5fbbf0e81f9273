"""The one entry point: :func:`allocate`, and :func:`solve` behind it."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from knapsack_alloc._validation import (
    MAX_INTEGER,
    choice,
    integer_scalar,
    real_scalar,
    rollout_bounds,
)
from knapsack_alloc.certificates import proves_optimal, shortfall
from knapsack_alloc.costs import CostModel, resolve_costs
from knapsack_alloc.exceptions import IgnoredArgumentWarning, InvalidArgumentError
from knapsack_alloc.result import AllocationResult
from knapsack_alloc.solvers import SOLVERS, SolverName
from knapsack_alloc.solvers.problem import Problem, SolverOptions
from knapsack_alloc.values import (
    BUILT_IN,
    BetaPosterior,
    Estimates,
    NonzeroGradientValue,
    ValueArgument,
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
    success_rates: ArrayLike | BetaPosterior,
    budget: float,
    *,
    min_rollouts: int | ArrayLike = 2,
    max_rollouts: int | ArrayLike = 128,
    costs: ArrayLike | None = None,
    cost_resolution: float | None = None,
    value: ValueArgument = "grpo",
    solver: SolverName = "auto",
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
        gradient; or a :class:`ValueModel` / vectorised callable
        ``value(N, p)`` that does not decrease in ``N``.
    solver : {'auto', 'greedy', 'dp', 'ortools', 'textbook'}, default 'auto'
        ``'auto'`` picks the fastest exact method. ``'greedy'``: exact for
        unit costs, else feasible with a bound; ``'dp'``: exact for integer
        costs (it returns the greedy answer when that is proven optimal);
        ``'ortools'``: SCIP through OR-Tools (optional dependency);
        ``'textbook'``: the slow O(n * B * U) DP, for comparison.
    time_limit : float, optional
        Seconds allowed to the ``'ortools'`` solver; the other solvers do
        not use it and warn (:class:`~knapsack_alloc.exceptions.IgnoredArgumentWarning`).
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
        within a relative ``1e-9``), ``solver`` (the method that found the
        counts) and ``requested_solver``, ``total_cost``, ``solve_time``.

    Raises
    ------
    InvalidArgumentError, InvalidArgumentTypeError
        On a bad argument (a ``ValueError``, a ``TypeError``).
    MissingDependencyError
        When ``solver='ortools'`` and OR-Tools is not installed.

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
        and type(budget) is int
        and costs is None
        and cost_resolution is None
        and time_limit is None
        and max_table_bytes is None
        and isinstance(estimates, np.ndarray)
        and isinstance(solver, str)
        and isinstance(value, (str, NonzeroGradientValue))
    ):
        model = BUILT_IN.get(value) if isinstance(value, str) else value
        result = _one_call(estimates, budget, min_rollouts, max_rollouts, model, solver, started)
        if result is not None:
            return result
    size = len(estimates)
    name = check_solver(solver)
    model = resolve_value(value)
    options = solver_options(name, time_limit, max_table_bytes, warn_depth=3)
    lower, upper = rollout_bounds(min_rollouts, max_rollouts, size)
    cost_model = resolve_costs(costs, budget, size, cost_resolution)
    return solve(estimates, cost_model, lower, upper, model, name, options,
                 allow_unused_budget=allow_unused_budget, started=started)  # fmt: skip


def check_solver(solver: Any) -> SolverName:
    """Check the ``solver`` argument against the registry."""
    return choice("solver", solver, SOLVERS)  # type: ignore[return-value]


def check_time_limit(
    solver: SolverName, time_limit: Any, *, warn_depth: int | None
) -> float | None:
    """Check ``time_limit``; warn if ``solver`` ignores it.

    Parameters
    ----------
    solver : str
        A registered solver name.
    time_limit : float or None
        As given to :func:`allocate`.
    warn_depth : int or None
        ``stacklevel`` of the warning, counted from this function; None for
        no warning (the caller warned when it checked its parameters).

    Returns
    -------
    float or None
        The seconds the solver gets, None if it runs to the end.
    """
    seconds = _time_limit(time_limit)
    if seconds is not None and not SOLVERS[solver].uses_time_limit:
        if warn_depth is not None:
            warnings.warn(
                f"time_limit == {time_limit!r} is ignored: solver={solver!r} runs to the end; "
                "only solver='ortools' stops at a time limit.",
                IgnoredArgumentWarning,
                stacklevel=warn_depth,
            )
        return None
    return seconds


def solver_options(
    solver: SolverName, time_limit: Any, max_table_bytes: Any, *, warn_depth: int | None = 2
) -> SolverOptions:
    """Check the solver limits; warn about a ``time_limit`` that ``solver`` ignores.

    Parameters
    ----------
    solver : str
        A registered solver name.
    time_limit, max_table_bytes
        As given to :func:`allocate`.
    warn_depth : int or None, default 2
        As in :func:`check_time_limit`, counted from this function.

    Returns
    -------
    SolverOptions
    """
    depth = None if warn_depth is None else warn_depth + 1
    seconds = check_time_limit(solver, time_limit, warn_depth=depth)
    return SolverOptions(seconds, _table_limit(max_table_bytes))


@dataclass(frozen=True)
class Solve:
    """:func:`solve` with the value model, the solver and its limits bound.

    The stateful allocator builds one per plan from its parameters, and its
    rules call it on the prompts whose split they optimise.
    """

    model: ValueModel
    solver: SolverName
    options: SolverOptions
    allow_unused_budget: bool = False

    def __call__(
        self,
        estimates: Estimates,
        costs: CostModel,
        lower: int | NDArray[np.int64],
        upper: int | NDArray[np.int64],
        model: ValueModel | None = None,
    ) -> AllocationResult:
        """Solve for ``estimates`` (with ``model`` instead of the bound one, if given)."""
        return solve(estimates, costs, lower, upper, self.model if model is None else model,
                     self.solver, self.options,
                     allow_unused_budget=self.allow_unused_budget)  # fmt: skip


def solve(
    estimates: Estimates,
    costs: CostModel,
    lower: int | NDArray[np.int64],
    upper: int | NDArray[np.int64],
    model: ValueModel,
    solver: SolverName,
    options: SolverOptions,
    *,
    allow_unused_budget: bool = False,
    started: float | None = None,
) -> AllocationResult:
    """:func:`allocate` once every argument is checked: the costs already in units.

    Parameters
    ----------
    estimates : numpy.ndarray of float64 or BetaPosterior
        Checked success rates, or beliefs.
    costs : CostModel
        Costs and budget in whole units (:func:`~knapsack_alloc.costs.resolve_costs`).
    lower, upper : int or numpy.ndarray of int64
        Checked bounds, ``0 <= lower <= upper <= 2**53``.
    model : ValueModel
        The value model.
    solver : str
        A registered solver name.
    options : SolverOptions
        The solvers' limits (:func:`solver_options`).
    allow_unused_budget : bool, default False
        As in :func:`allocate`.
    started : float, optional
        ``time.perf_counter()`` when the caller started; default now.

    Returns
    -------
    AllocationResult
        Its budget and costs in the caller's scale (``costs.unit`` per unit).
    """
    started = time.perf_counter() if started is None else started
    if (
        isinstance(lower, int)
        and isinstance(upper, int)
        and costs.kind == "unit"
        and isinstance(estimates, np.ndarray)
    ):
        result = _one_call(estimates, costs.budget_units, lower, upper, model, solver, started)
        if result is not None:
            return result
    size = len(estimates)
    return _solve_general(
        estimates, costs, _per_prompt(lower, size), _per_prompt(upper, size), model, solver,
        options, allow_unused_budget, started,
    )  # fmt: skip


def _per_prompt(bound: int | NDArray[np.int64], size: int) -> NDArray[np.int64]:
    return np.full(size, bound, dtype=np.int64) if isinstance(bound, int) else bound


def _solve_general(
    estimates: Estimates,
    costs: CostModel,
    lower: NDArray[np.int64],
    upper: NDArray[np.int64],
    model: ValueModel,
    solver: SolverName,
    options: SolverOptions,
    allow_unused_budget: bool,
    started: float,
) -> AllocationResult:
    """Reduce the instance to a :class:`Problem`, run the solver and certify its answer."""
    size = len(estimates)
    units = costs.units
    unit_cost = costs.kind == "unit"
    floor = _exact_dot(units, lower)
    ceiling = _exact_dot(units, upper)
    shown = costs.shown_budget
    if costs.budget_units < floor:
        raise InvalidArgumentError(
            f"budget == {shown!r} is below the {floor} cost units that min_rollouts requires "
            f"(sum of cost * min_rollouts); raise the budget or lower min_rollouts."
        )
    if costs.budget_units > ceiling and not allow_unused_budget:
        raise InvalidArgumentError(
            f"budget == {shown!r} is above the {ceiling} cost units that max_rollouts can use "
            "(sum of cost * max_rollouts); lower the budget, raise max_rollouts, or pass "
            "allow_unused_budget=True to leave the rest unspent."
        )
    divisor = 1 if unit_cost or not size else int(np.gcd.reduce(units))
    reduced_costs = units // divisor
    capacity = (min(costs.budget_units, ceiling) - floor) // divisor
    # No prompt can take more extra rollouts than the budget pays for.
    span = np.minimum(upper - lower, capacity // reduced_costs)
    gains = model._gains(estimates, lower, span)
    concave = gains.concave(lower, span)
    problem = Problem(
        lower=lower,
        span=span,
        costs=reduced_costs,
        capacity=capacity,
        gains=gains,
        concave=concave,
        unit_cost=unit_cost or divisor == int(units.max(initial=1)),
    )
    output = SOLVERS[solver].run(problem, options)
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
        total_cost=costs.spent(counts),
        budget=costs.budget,
        solver=output.method,
        status=status,  # type: ignore[arg-type]
        solve_time=time.perf_counter() - started,
        value=model.name,
        cost_rounding=costs.rounding,
        requested_solver=solver,
    )


def _one_call(
    rates: NDArray[np.float64],
    budget: int,
    lower: int,
    upper: int,
    model: ValueModel | None,
    solver: str,
    started: float,
) -> AllocationResult | None:
    """Solve the most common case in one compiled call, or None if this is not it.

    The case: point success rates, a built-in value model, scalar bounds with
    ``1 <= min_rollouts``, unit costs, a budget the bounds can spend, and a
    solver that answers it with the greedy kernel. Anything else, errors
    included, goes the general way. The kernel also evaluates the Lagrangian
    bound at the greedy's price, so the status is checked as on the general
    path.
    """
    size = rates.shape[0]
    chosen = SOLVERS.get(solver)  # type: ignore[call-overload]
    if (
        not isinstance(model, NonzeroGradientValue)
        or chosen is None
        or not chosen.greedy_on_unit_costs
        or not 1 <= lower <= upper <= MAX_INTEGER
        or not 0 < size * lower <= budget <= min(size * upper, MAX_INTEGER)
    ):
        return None
    from knapsack_alloc.solvers.kernels.fused import point_rates_greedy

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
        requested_solver=solver,
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

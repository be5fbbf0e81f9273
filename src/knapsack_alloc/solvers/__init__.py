"""Solver registry: every way to solve a :class:`~knapsack_alloc._problem.Problem`.

``solve(problem, name, time_limit)`` runs the named solver; ``"auto"`` is
resolved here and only here. Kernel modules (and so numba) are imported on
first use, which keeps ``import knapsack_alloc`` fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._problem import Problem
from knapsack_alloc._validation import InvalidArgumentError

# Largest DP table (prompts x budget cells) that "auto" and "dp" will build:
# the choice table takes 4 bytes a cell.
DP_MAX_CELLS = 250_000_000
# Largest general (non-concave) DP that "auto" runs: prompts x budget x span.
GENERAL_DP_MAX_WORK = 2_000_000_000
# Relative widening of the Lagrangian windows, so floating-point rounding in
# the bound can never cut the optimum out.
_WINDOW_TOLERANCE = 1e-9


@dataclass(frozen=True)
class GreedyOutput:
    """The greedy kernel's answer: extra rollouts, their gain, the LP bound and dual price."""

    extra: NDArray[np.int64]
    taken: float
    bound: float
    price: float


@dataclass(frozen=True)
class SolverOutput:
    """What a solver returns: extra rollouts above the minimums and a bound."""

    extra: NDArray[np.int64]
    bound: float
    status: str
    solver: str


def _table(problem: Problem) -> NDArray[np.float64]:
    gains = problem.gains
    if gains.use_table:
        return gains.table
    from knapsack_alloc.solvers._gains import gain_table

    return gain_table(
        problem.lower, problem.span, gains.term_a, gains.term_b,
        gains.a_num, gains.b_num, gains.den, gains.step,
    )  # fmt: skip


def _shift_rows(table: NDArray[np.float64], offset: NDArray[np.int64]) -> NDArray[np.float64]:
    """Row ``i`` of ``table`` from column ``offset[i]`` on (the tail padded with its last entry)."""
    width = table.shape[1]
    columns = np.minimum(offset[:, None] + np.arange(width), max(width - 1, 0))
    return np.ascontiguousarray(np.take_along_axis(table, columns, axis=1))


def _run_greedy(problem: Problem, table: NDArray[np.float64] | None = None) -> GreedyOutput:
    from knapsack_alloc.solvers._greedy import greedy_kernel

    gains = problem.gains
    use_table = table is not None or gains.use_table
    extra, taken, bound, price = greedy_kernel(
        problem.lower, problem.span, problem.costs, problem.capacity,
        gains.term_a, gains.term_b, gains.a_num, gains.b_num, gains.den, gains.step,
        gains.table if table is None else table, use_table,
    )  # fmt: skip
    return GreedyOutput(extra, taken, bound, price)


def _spend_leftover(
    problem: Problem, table: NDArray[np.float64], extra: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Hand budget an exact solver left unspent to the greedy order.

    Gains are never negative, so this keeps the objective and makes unit
    costs spend the whole budget, with ties settled by the greedy rule.
    """
    leftover = problem.capacity - int(problem.costs @ extra)
    if leftover <= 0 or table.shape[1] == 0:
        return extra
    rest = replace(problem, lower=problem.lower + extra, span=problem.span - extra,
                   capacity=leftover)  # fmt: skip
    return extra + _run_greedy(rest, _shift_rows(table, extra)).extra


def _dp_cells(problem: Problem) -> int:
    return problem.size * (problem.capacity + 1)


def _too_large(problem: Problem, name: str) -> str:
    cells = _dp_cells(problem)
    return (
        f"solver={name!r} needs a table of {problem.size} prompts x {problem.capacity + 1} "
        f"budget units = {cells:.3g} cells, more than the {DP_MAX_CELLS:.3g} allowed; use "
        "solver='greedy' (a feasible answer with a proven bound) or a coarser cost_resolution."
    )


def solve_greedy(problem: Problem, time_limit: float | None = None) -> SolverOutput:
    """Greedy by gain per cost: exact for concave values with unit costs."""
    if not problem.concave:
        raise InvalidArgumentError(
            "solver='greedy' needs marginal gains that never increase with N, but this value "
            "model's gains increase (e.g. from N=0 to N=1 with min_rollouts=0); "
            "use solver='dp' or solver='ortools'."
        )
    greedy = _run_greedy(problem)
    status = "optimal" if greedy.bound <= greedy.taken else "feasible"
    return SolverOutput(greedy.extra, greedy.bound, status, "greedy")


def _concave_dp(problem: Problem) -> SolverOutput | None:
    """Exact answer for concave gains, or None when the reduced DP is too large.

    The greedy answer and its LP bound first; if they do not meet, the LP
    dual price fixes each prompt to a narrow window of rollout counts
    (:func:`~knapsack_alloc.solvers._dp.lagrangian_windows`) and a DP over
    the windows finishes the job.
    """
    greedy = _run_greedy(problem)
    if greedy.bound <= greedy.taken:
        return SolverOutput(greedy.extra, greedy.bound, "optimal", "greedy")
    from knapsack_alloc.solvers._dp import dp_kernel, lagrangian_windows

    table = _table(problem)
    slack = (greedy.bound - greedy.taken) * (1 + _WINDOW_TOLERANCE) + _WINDOW_TOLERANCE * max(
        abs(greedy.bound), 1e-300
    )
    lo, hi = lagrangian_windows(table, problem.span, problem.costs, greedy.price, slack)
    reduced = replace(
        problem, lower=problem.lower + lo, span=hi - lo,
        capacity=problem.capacity - int(problem.costs @ lo),
    )  # fmt: skip
    if reduced.capacity < 0:  # pragma: no cover - the optimum lies inside the windows
        reduced, lo = problem, np.zeros_like(lo)
    if _dp_cells(reduced) > DP_MAX_CELLS:
        return None
    extra, _ = dp_kernel(_shift_rows(table, lo), reduced.span, reduced.costs,
                         reduced.capacity, True)  # fmt: skip
    return SolverOutput(_spend_leftover(problem, table, lo + extra), greedy.bound, "optimal", "dp")


def solve_dp(problem: Problem, time_limit: float | None = None) -> SolverOutput:
    """Solve exactly by dynamic programming.

    Concave values: Lagrangian windows, then divide and conquer; other
    values: the general scan.
    """
    if problem.concave:
        output = _concave_dp(problem)
        if output is None:
            raise InvalidArgumentError(_too_large(problem, "dp"))
        return output
    if _dp_cells(problem) > DP_MAX_CELLS:
        raise InvalidArgumentError(_too_large(problem, "dp"))
    from knapsack_alloc.solvers._dp import dp_kernel

    table = _table(problem)
    extra, gain = dp_kernel(table, problem.span, problem.costs, problem.capacity, False)
    return SolverOutput(_spend_leftover(problem, table, extra), gain, "optimal", "dp")


def solve_textbook(problem: Problem, time_limit: float | None = None) -> SolverOutput:
    """Solve with the O(n * B * U) NumPy baseline."""
    if _dp_cells(problem) > DP_MAX_CELLS:
        raise InvalidArgumentError(_too_large(problem, "textbook"))
    from knapsack_alloc.solvers._textbook import textbook_dp

    table = _table(problem)
    extra, gain = textbook_dp(table, problem.span, problem.costs, problem.capacity)
    return SolverOutput(_spend_leftover(problem, table, extra), gain, "optimal", "textbook")


def solve_ortools(problem: Problem, time_limit: float | None = None) -> SolverOutput:
    """Mixed-integer programme solved by OR-Tools' SCIP."""
    from knapsack_alloc.solvers._ortools import ortools_mip

    table = _table(problem)
    extra, bound, status = ortools_mip(
        table, problem.span, problem.costs, problem.capacity, time_limit, problem.concave
    )
    return SolverOutput(_spend_leftover(problem, table, extra), bound, status, "ortools")


def solve_auto(problem: Problem, time_limit: float | None = None) -> SolverOutput:
    """Pick the fastest exact method for the instance.

    Concave values with unit costs: the greedy kernel (exact). Concave values
    with other costs: the greedy answer when it meets its LP bound, else the
    windowed DP, or, when even that is too large, the greedy answer with its
    bound (status ``feasible``). Non-concave values: the general DP when it
    fits, else an error that names the alternatives.
    """
    if problem.concave:
        if problem.unit_cost:
            return solve_greedy(problem)
        output = _concave_dp(problem)
        return output if output is not None else solve_greedy(problem)
    work = _dp_cells(problem) * int(problem.span.max(initial=1))
    if work > GENERAL_DP_MAX_WORK:
        raise InvalidArgumentError(
            f"this instance has gains that increase with N and needs a general DP of {work:.3g} "
            f"steps (limit {GENERAL_DP_MAX_WORK:.3g}); use solver='ortools' with a time_limit, "
            "min_rollouts >= 1, or a smaller budget."
        )
    return solve_dp(problem)


SOLVERS: dict[str, Callable[[Problem, float | None], SolverOutput]] = {
    "auto": solve_auto,
    "greedy": solve_greedy,
    "dp": solve_dp,
    "ortools": solve_ortools,
    "textbook": solve_textbook,
}

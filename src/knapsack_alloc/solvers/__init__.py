"""Solver registry: every way to solve a :class:`~knapsack_alloc._problem.Problem`.

``solve(problem, name, time_limit)`` runs the named solver; ``"auto"`` is
resolved here and only here. Kernel modules (and so numba) are imported on
first use, which keeps ``import knapsack_alloc`` fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._problem import Problem
from knapsack_alloc._validation import InvalidArgumentError

# Largest DP table (prompts x budget cells) that "auto" and "dp" will build:
# the choice table takes 4 bytes a cell.
DP_MAX_CELLS = 250_000_000
# Largest general (non-concave) DP that "auto" runs: prompts x budget x span.
GENERAL_DP_MAX_WORK = 2_000_000_000


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


def _dp_cells(problem: Problem) -> int:
    return problem.size * (problem.capacity + 1)


def _check_dp_size(problem: Problem, name: str) -> None:
    cells = _dp_cells(problem)
    if cells > DP_MAX_CELLS:
        raise InvalidArgumentError(
            f"solver={name!r} needs a table of {problem.size} prompts x {problem.capacity + 1} "
            f"budget units = {cells:.3g} cells, more than the {DP_MAX_CELLS:.3g} allowed; use "
            "solver='greedy' (a feasible answer with a proven bound) or a coarser "
            "cost_resolution."
        )


def solve_greedy(problem: Problem, time_limit: float | None = None) -> SolverOutput:
    """Greedy by gain per cost: exact for concave values with unit costs."""
    if not problem.concave:
        raise InvalidArgumentError(
            "solver='greedy' needs marginal gains that never increase with N, but this value "
            "model's gains increase (e.g. from N=0 to N=1 with min_rollouts=0); "
            "use solver='dp' or solver='ortools'."
        )
    from knapsack_alloc.solvers._greedy import greedy_kernel

    gains = problem.gains
    extra, taken, bound = greedy_kernel(
        problem.lower, problem.span, problem.costs, problem.capacity,
        gains.term_a, gains.term_b, gains.a_num, gains.b_num, gains.den, gains.step,
        gains.table, gains.use_table,
    )  # fmt: skip
    status = "optimal" if bound <= taken else "feasible"
    return SolverOutput(extra, bound, status, "greedy")


def solve_dp(problem: Problem, time_limit: float | None = None) -> SolverOutput:
    """Exact DP: divide and conquer for concave values, the general scan otherwise."""
    _check_dp_size(problem, "dp")
    from knapsack_alloc.solvers._dp import dp_concave_kernel, dp_general_kernel

    run = dp_concave_kernel if problem.concave else dp_general_kernel
    extra, gain = run(_table(problem), problem.span, problem.costs, problem.capacity)
    return SolverOutput(extra, gain, "optimal", "dp")


def solve_textbook(problem: Problem, time_limit: float | None = None) -> SolverOutput:
    """The O(n * B * U) NumPy baseline."""
    _check_dp_size(problem, "textbook")
    from knapsack_alloc.solvers._textbook import textbook_dp

    extra, gain = textbook_dp(_table(problem), problem.span, problem.costs, problem.capacity)
    return SolverOutput(extra, gain, "optimal", "textbook")


def solve_ortools(problem: Problem, time_limit: float | None = None) -> SolverOutput:
    """Mixed-integer programme solved by OR-Tools' SCIP."""
    from knapsack_alloc.solvers._ortools import ortools_mip

    extra, bound, status = ortools_mip(
        _table(problem), problem.span, problem.costs, problem.capacity, time_limit
    )
    return SolverOutput(extra, bound, status, "ortools")


def solve_auto(problem: Problem, time_limit: float | None = None) -> SolverOutput:
    """Pick the fastest exact method for the instance.

    Concave values: the greedy kernel, which is exact for unit costs and
    certifies itself when its answer meets the LP bound; otherwise the
    concave DP when its table fits, else the greedy answer with its bound
    (status ``feasible``). Non-concave values: the general DP when it fits,
    else an error that names the alternatives.
    """
    if problem.concave:
        greedy = solve_greedy(problem)
        if greedy.status == "optimal" or _dp_cells(problem) > DP_MAX_CELLS:
            return greedy
        return solve_dp(problem)
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

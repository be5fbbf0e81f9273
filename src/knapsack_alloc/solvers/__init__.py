"""Solver dispatch: every way to solve a :class:`~knapsack_alloc.solvers.problem.Problem`.

``SOLVERS[name].run(problem, options)`` runs the named solver; ``"auto"`` is
resolved here and only here. The kernels live in :mod:`.kernels` (numba,
imported on first use, which keeps ``import knapsack_alloc`` fast) and the
OR-Tools back end in :mod:`.ortools`. Solvers return rollouts and, where they
prove one, a bound; the engine compares the objective with the Lagrangian
bound (:mod:`knapsack_alloc.certificates`) to set the status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.solvers.problem import Problem, SolverOptions, SolverOutput
from knapsack_alloc.values.gains import GainSource

SolverName = Literal["auto", "greedy", "dp", "ortools", "textbook"]

#: Largest general (non-concave) DP that ``"auto"`` runs: prompts x budget x span steps.
GENERAL_DP_MAX_WORK = 2_000_000_000
# Relative widening of the Lagrangian windows, so floating-point rounding in
# the bound can never cut the optimum out.
_WINDOW_TOLERANCE = 1e-9


@dataclass(frozen=True)
class _Greedy:
    """The greedy kernel's answer: extra rollouts, their gain, the LP bound and dual price."""

    extra: NDArray[np.int64]
    taken: float
    bound: float
    price: float


class _TableTooLarge(Exception):
    """A DP would need more memory than ``max_table_bytes``."""

    def __init__(self, table_bytes: int, units: int) -> None:
        super().__init__(table_bytes, units)
        self.table_bytes = table_bytes
        self.units = units


def _table(problem: Problem) -> NDArray[np.float64]:
    return problem.gains.dense(problem.lower, problem.span)


def _shift_rows(table: NDArray[np.float64], offset: NDArray[np.int64]) -> NDArray[np.float64]:
    """Row ``i`` of ``table`` from column ``offset[i]`` on (the tail padded with its last entry)."""
    width = table.shape[1]
    columns = np.minimum(offset[:, None] + np.arange(width), max(width - 1, 0))
    return np.ascontiguousarray(np.take_along_axis(table, columns, axis=1))


def _run_greedy(problem: Problem) -> _Greedy:
    from knapsack_alloc.solvers.kernels.greedy import greedy_kernel

    extra, taken, bound, price = greedy_kernel(
        problem.lower, problem.span, problem.costs, problem.capacity,
        *problem.gains.recurrence(),
    )  # fmt: skip
    return _Greedy(extra, taken, bound, price)


def _spend_leftover(
    problem: Problem, table: NDArray[np.float64], extra: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Hand budget an exact solver left unspent out in the greedy order.

    Gains are never negative, so this keeps the objective and makes unit
    costs spend the whole budget.
    """
    leftover = problem.capacity - int(problem.costs @ extra)
    if leftover <= 0 or table.shape[1] == 0:
        return extra
    shifted = GainSource.tabulated(_shift_rows(table, extra))
    rest = replace(problem, lower=problem.lower + extra, span=problem.span - extra,
                   capacity=leftover, gains=shifted)  # fmt: skip
    return extra + _run_greedy(rest).extra


def _finish(
    problem: Problem, table: NDArray[np.float64], extra: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Bring an exact solver's answer to the one tie rule (see :mod:`.kernels.ties`)."""
    from knapsack_alloc.solvers.kernels.ties import canonical

    return canonical(
        table, problem.lower, problem.span, problem.costs, extra, problem.concave,
        lambda taken: _spend_leftover(problem, table, taken),
    )  # fmt: skip


def _gain_table_bytes(problem: Problem) -> int:
    return 8 * problem.size * int(problem.span.max(initial=0))


def _check_table(bytes_needed: int, problem: Problem, options: SolverOptions) -> None:
    if bytes_needed > options.max_table_bytes:
        raise _TableTooLarge(bytes_needed, problem.capacity + 1)


def _too_large(problem: Problem, name: str, error: _TableTooLarge, limit: int) -> str:
    return (
        f"solver={name!r} needs a table of {problem.size} prompts x {error.units} budget units, "
        f"about {_megabytes(error.table_bytes)} in all, more than max_table_bytes == {limit} "
        f"({_megabytes(limit)}); raise max_table_bytes (or the environment variable "
        "KNAPSACK_ALLOC_MAX_TABLE_BYTES), use solver='greedy' (a feasible answer with a "
        "proven bound), or a coarser cost_resolution."
    )


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.4g} MiB"


def solve_greedy(problem: Problem, options: SolverOptions) -> SolverOutput:
    """Greedy by gain per cost: exact for concave values with unit costs."""
    if not problem.concave:
        raise InvalidArgumentError(
            "solver='greedy' needs marginal gains that never increase with N, but this value "
            "model's gains increase (e.g. from N=0 to N=1 with min_rollouts=0); "
            "use solver='dp' or solver='ortools'."
        )
    greedy = _run_greedy(problem)
    return SolverOutput(greedy.extra, None, greedy.price, "greedy")


def _concave_dp(problem: Problem, options: SolverOptions) -> SolverOutput:
    """Exact answer for concave gains; raises ``_TableTooLarge`` when the tables would be.

    The greedy answer and its LP bound first; if they do not meet, the LP
    dual price fixes each prompt to a narrow window of rollout counts
    (:func:`~knapsack_alloc.solvers.kernels.dp.lagrangian_windows`) and a DP over
    the windows finishes the job. The optimum is either inside the windows
    or worth less than the greedy answer, so the DP's value over the
    windows is a proven bound.
    """
    greedy = _run_greedy(problem)
    if greedy.bound <= greedy.taken:
        return SolverOutput(greedy.extra, None, greedy.price, "greedy")
    from knapsack_alloc.solvers.kernels.dp import dp_kernel, lagrangian_windows

    gain_bytes = 2 * _gain_table_bytes(problem)  # the table and its shifted copy
    _check_table(gain_bytes, problem, options)
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
    choice_bytes = 4 * reduced.size * (reduced.capacity + 1)
    if gain_bytes + choice_bytes > options.max_table_bytes:
        raise _TableTooLarge(gain_bytes + choice_bytes, reduced.capacity + 1)
    extra, gain = dp_kernel(_shift_rows(table, lo), reduced.span, reduced.costs,
                            reduced.capacity, True)  # fmt: skip
    below = float(table[np.arange(table.shape[1]) < lo[:, None]].sum())
    extra = _finish(problem, table, lo + extra)
    return SolverOutput(extra, below + gain, greedy.price, "dp")


def solve_dp(problem: Problem, options: SolverOptions) -> SolverOutput:
    """Solve exactly by dynamic programming.

    Concave values: Lagrangian windows, then divide and conquer; other
    values: the general scan.
    """
    try:
        if problem.concave:
            return _concave_dp(problem, options)
        table_bytes = _gain_table_bytes(problem) + 4 * problem.size * (problem.capacity + 1)
        _check_table(table_bytes, problem, options)
    except _TableTooLarge as error:
        raise InvalidArgumentError(
            _too_large(problem, "dp", error, options.max_table_bytes)
        ) from None
    from knapsack_alloc.solvers.kernels.dp import dp_kernel

    table = _table(problem)
    extra, gain = dp_kernel(table, problem.span, problem.costs, problem.capacity, False)
    return SolverOutput(_finish(problem, table, extra), gain, None, "dp")


def solve_textbook(problem: Problem, options: SolverOptions) -> SolverOutput:
    """Solve with the O(n * B * U) NumPy baseline."""
    # The int64 choice table, and the gain table.
    table_bytes = _gain_table_bytes(problem) + 8 * problem.size * (problem.capacity + 1)
    try:
        _check_table(table_bytes, problem, options)
    except _TableTooLarge as error:
        raise InvalidArgumentError(
            _too_large(problem, "textbook", error, options.max_table_bytes)
        ) from None
    from knapsack_alloc.solvers.kernels.textbook import textbook_dp

    table = _table(problem)
    extra, gain = textbook_dp(table, problem.span, problem.costs, problem.capacity)
    return SolverOutput(_finish(problem, table, extra), gain, None, "textbook")


def solve_ortools(problem: Problem, options: SolverOptions) -> SolverOutput:
    """Mixed-integer programme solved by OR-Tools' SCIP."""
    from knapsack_alloc.solvers.ortools import ortools_mip

    table = _table(problem)
    extra, bound, status = ortools_mip(
        table, problem.span, problem.costs, problem.capacity, options.time_limit,
        problem.concave,
    )  # fmt: skip
    return SolverOutput(
        _finish(problem, table, extra), bound, None, "ortools", timed_out=status == "time_limit"
    )


def solve_auto(problem: Problem, options: SolverOptions) -> SolverOutput:
    """Pick the fastest exact method for the instance.

    Concave values with unit costs: the greedy kernel (exact). Concave values
    with other costs: the greedy answer when it meets its LP bound, else the
    windowed DP, or, when even that is too large, the greedy answer with its
    bound (status ``feasible``). Non-concave values: the general DP when it
    fits, else an error that names the alternatives.
    """
    if problem.concave:
        if problem.unit_cost:
            return solve_greedy(problem, options)
        try:
            return _concave_dp(problem, options)
        except _TableTooLarge:
            return solve_greedy(problem, options)
    work = problem.size * (problem.capacity + 1) * int(problem.span.max(initial=1))
    if work > GENERAL_DP_MAX_WORK:
        raise InvalidArgumentError(
            f"this instance has gains that increase with N and needs a general DP of {work:.3g} "
            f"steps (limit {GENERAL_DP_MAX_WORK:.3g}); use solver='ortools' with a time_limit, "
            "min_rollouts >= 1, or a smaller budget."
        )
    return solve_dp(problem, options)


@dataclass(frozen=True)
class Solver:
    """A registered solver.

    Attributes
    ----------
    run : callable
        ``run(problem, options) -> SolverOutput``.
    uses_time_limit : bool
        Whether ``time_limit`` bounds it (else giving one is warned about).
    greedy_on_unit_costs : bool
        Whether it answers a concave, unit-cost problem with the greedy
        kernel alone (exact there), as :func:`~knapsack_alloc.allocate`'s
        one-call path does.
    """

    run: Callable[[Problem, SolverOptions], SolverOutput]
    uses_time_limit: bool = False
    greedy_on_unit_costs: bool = False


SOLVERS: dict[SolverName, Solver] = {
    "auto": Solver(solve_auto, greedy_on_unit_costs=True),
    "greedy": Solver(solve_greedy, greedy_on_unit_costs=True),
    "dp": Solver(solve_dp, greedy_on_unit_costs=True),
    "ortools": Solver(solve_ortools, uses_time_limit=True),
    "textbook": Solver(solve_textbook),
}

"""OR-Tools back end: the problem as a mixed-integer programme solved by SCIP.

One binary ``x[i, k]`` per possible extra rollout (``k``-th above the
minimum) with objective coefficient its gain, the budget row
``sum cost_i x[i, k] <= capacity``, and, when gains are not concave,
``x[i, k] >= x[i, k + 1]`` so that rollouts are taken in order (with
concave gains an optimum never needs it: a prompt's first rollouts are
worth the most). The
solver's dual bound is reported as the upper bound, so a caller gets a
certificate from an independent code base. Gains are scaled so the largest
is 1 and those below 1e-12 of it are dropped (their sum is added to the
bound); differences below SCIP's tolerances (about 1e-9 of the largest
gain) are not resolved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import MissingDependencyError, SolverError

INSTALL_HINT = (
    "solver='ortools' needs the optional dependency OR-Tools: "
    "pip install 'knapsack-alloc[ortools]' (or pip install ortools)."
)


# Gains below this fraction of the largest are dropped from the objective:
# SCIP's tolerances cannot tell them from zero anyway.
_RESOLVED = 1e-12
# Below this largest gain (the smallest normal double) 1 / gain overflows: nothing to scale.
_NEGLIGIBLE_PEAK = float(np.finfo(np.float64).tiny)


def _total_gain(table: NDArray[np.float64], span: NDArray[np.int64]) -> float:
    inside = np.arange(table.shape[1]) < span[:, None]
    return float(table[inside].sum())


def _pywraplp() -> Any:
    try:
        from ortools.linear_solver import pywraplp
    except ImportError as error:
        raise MissingDependencyError(INSTALL_HINT) from error
    return pywraplp


def ortools_mip(
    table: NDArray[np.float64],
    span: NDArray[np.int64],
    costs: NDArray[np.int64],
    capacity: int,
    time_limit: float | None,
    concave: bool,
) -> tuple[NDArray[np.int64], float, str]:
    """Solve the reduced problem with SCIP.

    Returns
    -------
    extra : numpy.ndarray of int64
        Extra rollouts per prompt.
    bound : float
        Proven upper bound on the summed gain of any feasible allocation.
    status : str
        ``"optimal"``, or ``"time_limit"`` when stopped early with a solution.
    """
    pywraplp = _pywraplp()
    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:  # pragma: no cover - SCIP ships with the OR-Tools wheels
        raise MissingDependencyError("This OR-Tools build has no SCIP solver. " + INSTALL_HINT)
    if time_limit is not None:
        solver.SetTimeLimit(int(time_limit * 1000))
    peak = float(table.max(initial=0.0))
    if peak < _NEGLIGIBLE_PEAK:  # nothing to gain that SCIP could resolve
        return np.zeros(table.shape[0], dtype=np.int64), _total_gain(table, span), "optimal"
    scale = 1.0 / peak
    coefficients = np.where(table * scale >= _RESOLVED, table * scale, 0.0)
    budget_row = solver.RowConstraint(0, float(capacity), "budget")
    objective = solver.Objective()
    objective.SetMaximization()
    variables: list[list[Any]] = []
    for i in range(table.shape[0]):
        row = [solver.BoolVar(f"x_{i}_{k}") for k in range(int(span[i]))]
        for k, variable in enumerate(row):
            budget_row.SetCoefficient(variable, float(costs[i]))
            objective.SetCoefficient(variable, float(coefficients[i, k]))
            if k and not concave:
                solver.Add(row[k - 1] >= variable)
        variables.append(row)
    parameters = pywraplp.MPSolverParameters()
    parameters.SetDoubleParam(parameters.RELATIVE_MIP_GAP, 0.0)
    result = solver.Solve(parameters)
    if result == pywraplp.Solver.OPTIMAL:
        status = "optimal"
    elif result == pywraplp.Solver.FEASIBLE:
        status = "time_limit"
    else:
        raise SolverError(
            f"OR-Tools stopped without an allocation (status {result}); "
            "raise time_limit or use solver='dp'."
        )
    extra = np.array(
        [sum(round(v.solution_value()) for v in row) for row in variables], dtype=np.int64
    )
    dropped = _total_gain(np.where(coefficients > 0, 0.0, table), span)
    return extra, float(objective.BestBound()) / scale + dropped, status

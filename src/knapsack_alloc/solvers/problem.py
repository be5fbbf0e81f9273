"""What every solver takes and returns: the problem as the kernels see it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.values.gains import GainSource


@dataclass(frozen=True)
class Problem:
    """A validated instance: rollouts ``lower + extra`` with ``0 <= extra <= span``.

    The budget is already reduced to ``capacity``: what is left after every
    prompt's minimum, in units of the greatest common divisor of the costs;
    ``unit_cost`` says whether every rollout then costs one unit.
    """

    lower: NDArray[np.int64]
    span: NDArray[np.int64]
    costs: NDArray[np.int64]
    capacity: int
    gains: GainSource
    concave: bool
    unit_cost: bool

    @property
    def size(self) -> int:
        """Number of prompts."""
        return int(self.lower.shape[0])


@dataclass(frozen=True)
class SolverOptions:
    """Limits a caller sets on the solvers.

    Attributes
    ----------
    time_limit : float or None
        Seconds allowed to ``'ortools'``.
    max_table_bytes : int
        Largest memory the DP tables of ``'dp'`` and ``'textbook'`` may take.
    """

    time_limit: float | None
    max_table_bytes: int


@dataclass(frozen=True)
class SolverOutput:
    """What a solver returns.

    Attributes
    ----------
    extra : numpy.ndarray of int64
        Rollouts above each prompt's minimum.
    bound : float or None
        A bound on the summed gains of any feasible allocation that the
        solver itself proves (the DP's table, SCIP's dual bound), if any.
    price : float or None
        A price of one cost unit that makes the Lagrangian bound tight or
        nearly so, if the solver found one (else the engine searches).
    method : str
        The method that produced ``extra``: a solver's name, which differs
        from the one asked for when ``'auto'`` chose it or when the exact
        DP found the greedy answer already proven optimal.
    timed_out : bool
        Whether the solver stopped at its time limit.
    """

    extra: NDArray[np.int64]
    bound: float | None
    price: float | None
    method: str
    timed_out: bool = False

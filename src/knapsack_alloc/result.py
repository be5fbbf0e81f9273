"""The result of :func:`knapsack_alloc.allocate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Status = Literal["optimal", "feasible", "time_limit"]


@dataclass(frozen=True, repr=False)
class AllocationResult:
    """Rollouts per prompt and the evidence of how good they are.

    Attributes
    ----------
    counts : numpy.ndarray of int64
        Rollouts per prompt, in input order (read-only).
    objective : float
        Total value ``sum_i Value(counts[i], p_i)``.
    upper_bound : float
        Proven upper bound on the optimal objective: the Lagrangian dual bound
        of :func:`~knapsack_alloc.certify`, or the tighter bound the solver
        proves (the exact DP's optimum, SCIP's dual bound). Computed in floating
        point, so it can sit a rounding error below ``objective``.
    total_cost : float
        ``sum_i cost_i * counts[i]`` with the caller's (unrounded) costs.
    budget : float
        The budget that was asked for.
    unused_budget : float
        ``budget - total_cost``.
    solver : str
        The method that found ``counts``: ``'greedy'``, ``'dp'``,
        ``'ortools'`` or ``'textbook'``. It differs from ``requested_solver``
        when ``'auto'`` chose it, or when ``'dp'`` found the greedy answer
        already proven optimal (the bound shows it, see ``status``).
    status : {'optimal', 'feasible', 'time_limit'}
        ``optimal``: ``objective`` and ``upper_bound`` agree within a relative
        ``1e-9`` (checked, never assumed); ``feasible``: within budget, at most
        ``gap`` below the optimum; ``time_limit``: a solver stopped early.
    solve_time : float
        Seconds spent in :func:`allocate`, validation included.
    value : str
        Name of the value model.
    cost_rounding : float or None
        Largest relative amount by which a cost was rounded up when
        ``cost_resolution`` was used, else None.
    requested_solver : str
        The ``solver`` argument: ``'auto'`` or a solver's name.
    """

    counts: NDArray[np.int64]
    objective: float
    upper_bound: float
    total_cost: float
    budget: float
    solver: str
    status: Status
    solve_time: float
    value: str
    cost_rounding: float | None = None
    requested_solver: str = "auto"
    unused_budget: float = field(init=False)

    def __post_init__(self) -> None:
        self.counts.flags.writeable = False
        object.__setattr__(self, "unused_budget", self.budget - self.total_cost)

    @property
    def gap(self) -> float:
        """``upper_bound - objective``: how far from optimal the answer can be."""
        return max(self.upper_bound - self.objective, 0.0)

    def _asked(self) -> str:
        if self.requested_solver in ("auto", self.solver):
            return ""
        return f" (asked {self.requested_solver!r})"

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        return np.array(self.counts, dtype=dtype, copy=True)

    def __repr__(self) -> str:
        return (
            f"AllocationResult(n={len(self)}, total_cost={self.total_cost:g}, "
            f"objective={self.objective:.6g}, status={self.status!r}, gap={self.gap:.2g}, "
            f"solver={self.solver!r}{self._asked()}, solve_time={self.solve_time * 1e3:.3g} ms)"
        )

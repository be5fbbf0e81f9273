"""Cost models: what one rollout of each prompt costs, in integer units.

Three cases (see ``docs/costs.md``):

* unit costs (``costs=None``): one unit per rollout, the budget counts rollouts;
* integer costs: e.g. expected response tokens per rollout in units of 64
  tokens; the budget is in the same units; solved exactly;
* real costs with ``cost_resolution=r``: each cost is rounded to a whole
  number of ``r`` units and the budget is floored to whole units; the
  largest relative rounding error is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import InvalidArgumentError, real_array, real_scalar

# Slack for floating-point division when converting a budget to whole units
# (0.3 / 0.1 is 2.9999999999999996).
_UNIT_SLACK = 1e-9


@dataclass(frozen=True)
class CostModel:
    """Per-rollout costs and the budget, both in whole units.

    Attributes
    ----------
    units : numpy.ndarray of int64
        Cost of one rollout of each prompt, in units.
    budget : float
        The budget as given.
    budget_units : int
        The budget in units.
    per_rollout : numpy.ndarray of float64
        The caller's costs, unrounded.
    kind : {'unit', 'integer', 'rounded'}
        Which cost model applies.
    rounding : float or None
        Largest relative error ``|cost - unit * units| / cost`` when costs
        were rounded, else None.
    """

    units: NDArray[np.int64]
    budget: float
    budget_units: int
    per_rollout: NDArray[np.float64]
    kind: Literal["unit", "integer", "rounded"]
    rounding: float | None


def resolve_costs(costs: Any, budget: Any, size: int, cost_resolution: Any) -> CostModel:
    """Validate ``costs``, ``budget`` and ``cost_resolution`` and express them in units.

    Parameters
    ----------
    costs : None or array_like
        Per-rollout cost of each prompt; None means 1 each.
    budget : int or float
        Total budget in the costs' scale.
    size : int
        Number of prompts.
    cost_resolution : None or float
        Unit to round real costs to.

    Returns
    -------
    CostModel
    """
    budget_value = real_scalar("budget", budget)
    if budget_value < 0:
        raise InvalidArgumentError(f"budget == {budget!r}, must be >= 0.")
    if costs is None:
        per_rollout = np.ones(size, dtype=np.float64)
        if cost_resolution is None:
            return _unit(per_rollout, budget, budget_value)
    else:
        per_rollout = real_array("costs", costs, length=size)
        not_positive = per_rollout <= 0
        if not_positive.any():
            index = int(np.flatnonzero(not_positive)[0])
            raise InvalidArgumentError(
                f"costs[{index}] == {float(per_rollout[index])!r}, "
                "must be > 0 (cost of one rollout)."
            )
    if cost_resolution is not None:
        return _rounded(per_rollout, budget_value, cost_resolution)

    fractional = np.floor(per_rollout) != per_rollout
    if costs is not None and fractional.any():
        index = int(np.flatnonzero(fractional)[0])
        raise InvalidArgumentError(
            f"costs[{index}] == {float(per_rollout[index])!r} is not a whole number; pass "
            "cost_resolution (e.g. cost_resolution=0.01) to round costs to that unit, "
            "or give costs in whole units."
        )
    return CostModel(
        units=per_rollout.astype(np.int64),
        budget=budget_value,
        budget_units=_whole_budget(budget, budget_value),
        per_rollout=per_rollout,
        kind="integer",
        rounding=None,
    )


def _unit(per_rollout: NDArray[np.float64], budget: Any, budget_value: float) -> CostModel:
    whole = _whole_budget(budget, budget_value)
    units = per_rollout.astype(np.int64)
    return CostModel(units, budget_value, whole, per_rollout, "unit", None)


def _whole_budget(budget: Any, budget_value: float) -> int:
    if budget_value != math.floor(budget_value):
        raise InvalidArgumentError(
            f"budget == {budget!r}, must be a whole number of cost units "
            "(or pass cost_resolution to work in fractional units)."
        )
    return int(budget) if isinstance(budget, (int, np.integer)) else int(budget_value)


def _rounded(per_rollout: NDArray[np.float64], budget: float, resolution: Any) -> CostModel:
    unit = real_scalar("cost_resolution", resolution)
    if unit <= 0:
        raise InvalidArgumentError(f"cost_resolution == {resolution!r}, must be > 0.")
    units = np.rint(per_rollout / unit)
    too_small = units < 1
    if too_small.any():
        index = int(np.flatnonzero(too_small)[0])
        raise InvalidArgumentError(
            f"costs[{index}] == {float(per_rollout[index])!r} rounds to 0 units of "
            f"cost_resolution == {unit!r}; use a finer cost_resolution."
        )
    error = np.abs(per_rollout - units * unit) / per_rollout
    return CostModel(
        units=units.astype(np.int64),
        budget=budget,
        budget_units=math.floor(budget / unit + _UNIT_SLACK),
        per_rollout=per_rollout,
        kind="rounded",
        rounding=float(error.max(initial=0.0)),
    )

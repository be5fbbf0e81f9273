"""Cost models: what one rollout of each prompt costs, in integer units.

Three cases (see ``docs/costs.md``):

* unit costs (``costs=None``): one unit per rollout, the budget counts rollouts;
* integer costs: e.g. expected response tokens per rollout in units of 64
  tokens; the budget is in the same units; solved exactly;
* real costs with ``cost_resolution=r``: each cost is rounded *up* to a whole
  number of ``r`` units and the budget *down*, so an allocation within the
  rounded budget never spends more than the real one (up to the
  representation error of the inputs, :data:`SPEND_TOLERANCE`); the largest
  relative rounding of a cost is reported.

Every number is range-checked before it is converted to an integer: costs
and budgets up to ``2**53`` units are supported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import MAX_INTEGER, positive_costs, real_scalar
from knapsack_alloc.exceptions import InvalidArgumentError

#: Relative amount by which the real spend may exceed the budget with rounded
#: costs: the representation error of decimal inputs in binary floating point.
SPEND_TOLERANCE = 1e-14
# A quotient this many units in the last place from a whole number counts as it.
_SNAP_ULPS = 4

_BUDGET_TOO_LARGE = (
    "budget == {budget!r} is too large; budgets up to 2**53 cost units are supported."
)


@dataclass(frozen=True)
class CostModel:
    """Per-rollout costs and the budget, both in whole units.

    Attributes
    ----------
    units : numpy.ndarray of int64
        Cost of one rollout of each prompt, in units.
    budget : float
        The budget in the caller's scale.
    budget_units : int
        The budget in units.
    per_rollout : numpy.ndarray of float64
        The caller's costs, unrounded.
    kind : {'unit', 'integer', 'rounded'}
        Which cost model applies.
    rounding : float or None
        Largest relative rounding ``(unit * units - cost) / cost >= 0`` when
        costs were rounded up, else None.
    unit : float
        Size of one unit in the caller's scale: ``cost_resolution`` for
        rounded costs, else 1.
    shown_budget : object
        The budget as the caller wrote it, for error messages.
    """

    units: NDArray[np.int64]
    budget: float
    budget_units: int
    per_rollout: NDArray[np.float64]
    kind: Literal["unit", "integer", "rounded"]
    rounding: float | None
    unit: float = 1.0
    shown_budget: Any = None

    def with_budget(self, budget_units: int) -> CostModel:
        """Return the same costs with a budget of ``budget_units``, e.g. one round's."""
        budget = budget_units * self.unit
        shown = budget_units if self.unit == 1.0 else budget
        return replace(self, budget=budget, budget_units=budget_units, shown_budget=shown)

    def share(self, prompts: NDArray[np.bool_], budget_units: int) -> CostModel:
        """Return the costs of some ``prompts`` with a budget of ``budget_units``, same units."""
        per_rollout = self.per_rollout[prompts]
        units = self.units[prompts]
        budget = budget_units * self.unit
        rounding = (
            None if self.rounding is None else _largest_rounding(units, self.unit, per_rollout)
        )
        shown = budget_units if self.unit == 1.0 else budget
        # Built directly: dataclasses.replace is several times slower, and this runs every plan.
        return CostModel(
            units, budget, budget_units, per_rollout, self.kind, rounding, self.unit, shown
        )

    def spent(self, counts: NDArray[np.int64]) -> float:
        """Cost of ``counts`` rollouts per prompt in the caller's scale (unrounded costs)."""
        if self.kind == "unit":
            return float(counts.sum())
        return float(self.per_rollout @ counts)


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
    model = _resolve(costs, budget, size, cost_resolution)
    if size == 0 and model.budget_units > 0:
        raise InvalidArgumentError(
            f"budget == {budget!r} but there are no prompts; pass budget=0 for an empty batch."
        )
    return model


def _resolve(costs: Any, budget: Any, size: int, cost_resolution: Any) -> CostModel:
    budget_value = real_scalar("budget", budget)
    if budget_value < 0:
        raise InvalidArgumentError(f"budget == {budget!r}, must be >= 0.")
    if costs is None:
        per_rollout = np.ones(size, dtype=np.float64)
        if cost_resolution is None:
            return _unit(per_rollout, budget, budget_value)
    else:
        per_rollout = positive_costs("costs", costs, length=size)
    if cost_resolution is not None:
        return _rounded(per_rollout, budget, budget_value, cost_resolution)

    fractional = np.floor(per_rollout) != per_rollout
    if costs is not None and fractional.any():
        index = int(np.flatnonzero(fractional)[0])
        raise InvalidArgumentError(
            f"costs[{index}] == {float(per_rollout[index])!r} is not a whole number; pass "
            "cost_resolution (e.g. cost_resolution=0.01) to round costs to that unit, "
            "or give costs in whole units."
        )
    too_large = per_rollout > MAX_INTEGER
    if too_large.any():
        index = int(np.flatnonzero(too_large)[0])
        raise InvalidArgumentError(
            f"costs[{index}] == {float(per_rollout[index])!r} is too large; costs up to 2**53 "
            "units are supported: give costs and budget in a coarser unit, or pass "
            "cost_resolution."
        )
    return CostModel(
        units=per_rollout.astype(np.int64),
        budget=budget_value,
        budget_units=_whole_budget(budget, budget_value),
        per_rollout=per_rollout,
        kind="integer",
        rounding=None,
        shown_budget=budget,
    )


def _unit(per_rollout: NDArray[np.float64], budget: Any, budget_value: float) -> CostModel:
    whole = _whole_budget(budget, budget_value)
    units = per_rollout.astype(np.int64)
    return CostModel(units, budget_value, whole, per_rollout, "unit", None, shown_budget=budget)


def _whole_budget(budget: Any, budget_value: float) -> int:
    if budget_value != math.floor(budget_value):
        raise InvalidArgumentError(
            f"budget == {budget!r}, must be a whole number of cost units "
            "(or pass cost_resolution to work in fractional units)."
        )
    whole = int(budget) if isinstance(budget, (int, np.integer)) else int(budget_value)
    if whole > MAX_INTEGER:
        raise InvalidArgumentError(_BUDGET_TOO_LARGE.format(budget=budget))
    return whole


def _rounded(
    per_rollout: NDArray[np.float64], budget: Any, budget_value: float, resolution: Any
) -> CostModel:
    """Round costs up and the budget down to whole units of ``resolution``.

    Quotients within a few units in the last place of a whole number count
    as that number, so that decimal inputs behave as written (``1.0 / 0.01``
    is ``99.99999999999999`` in binary floating point, and is 100 units).
    The real spend of an allocation within the units then exceeds the budget
    by at most a relative :data:`SPEND_TOLERANCE`, the representation error
    of the inputs.
    """
    unit = real_scalar("cost_resolution", resolution)
    if unit <= 0:
        raise InvalidArgumentError(f"cost_resolution == {resolution!r}, must be > 0.")
    budget_units = _whole_units(np.array([budget_value / unit]), np.floor)[0]
    if budget_units > MAX_INTEGER:
        raise InvalidArgumentError(
            f"budget == {budget!r} is {budget_units:.3g} units of cost_resolution == {unit!r}; "
            "budgets up to 2**53 cost units are supported, use a coarser cost_resolution."
        )
    units = np.maximum(_whole_units(per_rollout / unit, np.ceil), 1.0)
    too_large = units > MAX_INTEGER
    if too_large.any():
        index = int(np.flatnonzero(too_large)[0])
        raise InvalidArgumentError(
            f"costs[{index}] == {float(per_rollout[index])!r} is {float(units[index]):.3g} units "
            f"of cost_resolution == {unit!r}; at most 2**53 units are supported, use a coarser "
            "cost_resolution."
        )
    whole = units.astype(np.int64)
    return CostModel(
        units=whole,
        budget=budget_value,
        budget_units=int(budget_units),
        per_rollout=per_rollout,
        kind="rounded",
        rounding=_largest_rounding(whole, unit, per_rollout),
        unit=unit,
        shown_budget=budget,
    )


def _largest_rounding(
    units: NDArray[np.int64], unit: float, per_rollout: NDArray[np.float64]
) -> float:
    """Largest relative amount ``(unit * units - cost) / cost`` a cost was rounded up by."""
    rounding = (units * unit - per_rollout) / per_rollout
    return float(np.maximum(rounding, 0.0).max(initial=0.0))


def _whole_units(
    quotients: NDArray[np.float64], direction: Callable[[NDArray[np.float64]], Any]
) -> NDArray[np.float64]:
    """Round ``quotients`` with ``direction`` (floor or ceil), snapping near-whole ones first."""
    nearest = np.rint(quotients)
    near = np.abs(quotients - nearest) <= _SNAP_ULPS * np.spacing(np.abs(nearest))
    rounded: NDArray[np.float64] = np.where(near, nearest, direction(quotients))
    return rounded

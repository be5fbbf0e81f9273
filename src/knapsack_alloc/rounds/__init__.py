"""Allocation in rounds within a step: spend part of the budget, look, re-plan the rest.

* :class:`StepRounds` (from :meth:`KnapsackAllocator.start_step
  <knapsack_alloc.KnapsackAllocator.start_step>`): plan, record and finish
  one step's rounds;
* :class:`RoundPlan`: one round's rollouts per prompt and its metrics;
* :func:`round_shares`: the budget schedule;
* :class:`StepGroupValue`: the value of a group that already holds rollouts,
  which lets :func:`~knapsack_alloc.allocate` plan a later round exactly.

The maths and the evidence are in ``docs/rounds.md``.
"""

from __future__ import annotations

from knapsack_alloc.rounds.plan import RoundPlan
from knapsack_alloc.rounds.schedule import round_shares
from knapsack_alloc.rounds.step import StepRounds
from knapsack_alloc.values.step_group import StepGroupValue

__all__ = ["RoundPlan", "StepGroupValue", "StepRounds", "round_shares"]

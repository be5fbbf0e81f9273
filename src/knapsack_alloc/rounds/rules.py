"""Each preset's rule for a round after the first, given the step's rewards so far.

Pure functions from reward counts to final group sizes, the round-aware
counterparts of :func:`~knapsack_alloc.allocator.presets.bayes_counts` and
:func:`~knapsack_alloc.allocator.presets.paper_counts` (which plan the first round).
Budgets and costs are whole cost units (a :class:`~knapsack_alloc.costs.CostModel`);
sizes are the groups' sizes once the round is generated, so a round's rollouts are the sizes minus
:attr:`StepEvidence.held`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.allocator.history import WindowCounts
from knapsack_alloc.allocator.presets import (
    EFFECTIVE,
    UNSEEN,
    WARMUP,
    ZERO,
    PresetPlan,
    _split_equally,
    classify,
)
from knapsack_alloc.costs import CostModel
from knapsack_alloc.engine import Solve
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.result import AllocationResult
from knapsack_alloc.values import NonzeroGradientValue
from knapsack_alloc.values.step_group import StepGroupValue


@dataclass(frozen=True)
class StepEvidence:
    """What the step's earlier rounds gave each prompt of the batch.

    Attributes
    ----------
    held, wins : numpy.ndarray of int64
        Rollouts and successes in each prompt's group (one group per batch
        position, as in :meth:`~knapsack_alloc.KnapsackAllocator.plan`).
    successes, trials : numpy.ndarray of int64
        Successes and rollouts of each position's prompt id this step, summed
        over the positions that repeat it: the evidence its belief uses.
    """

    held: NDArray[np.int64]
    wins: NDArray[np.int64]
    successes: NDArray[np.int64]
    trials: NDArray[np.int64]

    @property
    def mixed(self) -> NDArray[np.bool_]:
        """Groups that already hold a success and a failure (a GRPO gradient)."""
        return (self.wins > 0) & (self.wins < self.held)

    def updated(self, window: WindowCounts) -> WindowCounts:
        """Return the window's counts with the step's rewards added (none dropped)."""
        return WindowCounts(
            successes=window.successes + self.successes,
            trials=window.trials + self.trials,
            total=window.total + self.trials,
        )


def bayes_round(
    updated: WindowCounts,
    evidence: StepEvidence,
    prior: tuple[float, float],
    costs: CostModel,
    *,
    min_rollouts: int,
    max_rollouts: int,
    value: NonzeroGradientValue,
    solve: Solve,
) -> AllocationResult:
    """Maximise the expected value of the whole step under the updated posteriors.

    Parameters
    ----------
    updated : WindowCounts
        Each prompt's window with the step's rewards so far added
        (:meth:`StepEvidence.updated`).
    evidence : StepEvidence
        The step's rewards so far.
    prior : tuple of float
        ``(a, b)``: prompt ``i``'s belief is ``Beta(a + s, b + f)`` with ``s``
        and ``f`` its window's and the step's successes and failures.
    costs : CostModel
        Cost of one rollout of each prompt, and the round's budget, in whole units.
    min_rollouts, max_rollouts : int
        Bounds on each group's final size (a group already larger than
        ``max_rollouts`` gets nothing more).
    value : NonzeroGradientValue
        Value of a fresh group; see :class:`StepGroupValue`.
    solve : Solve
        Runs the optimisation, with :class:`StepGroupValue` as the value model.

    Returns
    -------
    AllocationResult
        ``counts`` are the groups' final sizes.
    """
    held = evidence.held
    return solve(
        updated.beliefs(prior), costs.with_budget(int(costs.units @ held) + costs.budget_units),
        np.maximum(held, min_rollouts), np.maximum(held, max_rollouts),
        StepGroupValue(value, held, evidence.wins),
    )  # fmt: skip


def paper_round(
    updated: WindowCounts,
    evidence: StepEvidence,
    costs: CostModel,
    *,
    min_rollouts: int,
    max_rollouts: int,
    min_history: int,
    alpha: float,
    value: NonzeroGradientValue,
    solve: Solve,
) -> PresetPlan:
    """Apply the paper's rules to the groups the step has not yet made useful.

    Parameters
    ----------
    updated : WindowCounts
        Each prompt's window with the step's rewards so far added
        (:meth:`StepEvidence.updated`).
    evidence : StepEvidence
        The step's rewards so far.
    costs : CostModel
        Cost of one rollout of each prompt, and the round's budget, in whole units.
    min_rollouts, max_rollouts, min_history, alpha
        As in :func:`~knapsack_alloc.allocator.presets.paper_counts`.
    value : NonzeroGradientValue
        Value of a fresh group; see :class:`StepGroupValue`.
    solve : Solve
        Splits the effective groups' share (a budget it cannot spend is
        spread over every group, never left unused).

    Returns
    -------
    PresetPlan
        ``counts`` are the groups' final sizes; ``rule`` is each prompt's
        category under the estimate updated with the step's rewards.

    Notes
    -----
    Estimates are the window means with the step's rewards added. A group
    already holding a success and a failure is *closed*. Among the open
    groups, those whose updated estimate is strictly between 0 and 1 and
    valid are effective; their need is the rollouts that give a group that
    has only failed (only succeeded) a probability ``alpha`` of its first
    success (failure), ``floor(min(room, ln(1 - alpha) / ln(1 - p)))``
    (``ln(p)`` for the second), with the paper's ``max(p, 1 - p)`` for a
    group not sampled yet. The surplus beyond the need goes in equal shares
    to the open groups that are not valid or estimated at 0, else to every
    open non-effective group; what no candidate takes goes to the effective
    groups, and what they cannot take under ``max_rollouts`` is spread over
    every group, so the whole budget is spent. The effective share is split
    by :func:`~knapsack_alloc.allocate` with :class:`StepGroupValue`.
    """
    held, wins = evidence.held, evidence.wins
    units, budget = costs.units, costs.budget_units
    rule = classify(updated.successes, updated.trials, updated.total, min_history)
    open_group = ~evidence.mixed
    lower = np.maximum(held, min_rollouts)
    upper = np.maximum(held, max_rollouts)
    counts = lower.copy()
    remaining = budget - int(units @ (lower - held))
    if remaining < 0:
        raise InvalidArgumentError(
            f"the round's budget of {budget} cost units is below the {budget - remaining} its "
            f"groups need to reach min_rollouts == {min_rollouts}; give the first round more."
        )
    effective = open_group & (rule == EFFECTIVE)
    eff_units = units[effective]
    room = upper[effective] - lower[effective]
    capacity = int(eff_units @ room)
    p = updated.rates[effective]
    if effective.any():
        need = int(eff_units @ _need(p, held[effective], wins[effective], room, alpha))
        share = min(need, remaining, capacity)
    else:
        share = 0
    surplus = remaining - share

    fallback = np.zeros(held.size, dtype=np.bool_)
    unsolved = (rule == ZERO) | (rule == WARMUP) | (rule == UNSEEN)
    candidates = np.flatnonzero(open_group & unsolved)
    if candidates.size == 0:
        candidates = np.flatnonzero(open_group & ~effective)
    surplus = _give_equally(surplus, candidates, units, counts, fallback)
    moved = min(surplus, capacity - share)
    share += moved
    surplus -= moved
    allocation = None
    if effective.any():
        allocation = replace(solve, allow_unused_budget=False)(
            p, costs.share(effective, int(eff_units @ lower[effective]) + share),
            lower[effective], upper[effective],
            StepGroupValue(value, held[effective], wins[effective]),
        )  # fmt: skip
        counts[effective] = allocation.counts
    _give_equally(surplus, np.arange(held.size), units, counts, fallback)
    return PresetPlan(counts=counts, rule=rule, fallback=fallback, allocation=allocation)


def _need(
    p: NDArray[np.float64],
    held: NDArray[np.int64],
    wins: NDArray[np.int64],
    room: NDArray[np.int64],
    alpha: float,
) -> NDArray[np.int64]:
    """Rollouts more each open group needs for a gradient with probability ``alpha``."""
    missing = np.where(wins == 0, 1.0 - p, p)  # chance that one more rollout misses again
    missing = np.where(held == 0, np.maximum(p, 1.0 - p), missing)
    ratio = np.log(1.0 - alpha) / np.log(missing)
    need: NDArray[np.int64] = np.floor(np.minimum(room, ratio)).astype(np.int64)
    return need


def _give_equally(
    surplus: int,
    candidates: NDArray[np.int64],
    units: NDArray[np.int64],
    counts: NDArray[np.int64],
    fallback: NDArray[np.bool_],
) -> int:
    """Add equal shares of ``surplus`` to the candidates' counts; return what is left."""
    if candidates.size == 0 or surplus <= 0:
        return surplus
    extra, rest = _split_equally(surplus, units[candidates])
    counts[candidates] += extra
    fallback[candidates] |= extra > 0
    return rest

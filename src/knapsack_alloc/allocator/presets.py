"""The presets of :class:`~knapsack_alloc.KnapsackAllocator`: their rules and defaults.

Pure functions from per-prompt reward counts to rollout counts:

* :func:`paper_counts`: the Knapsack RL paper's rules (base budgets, the
  ``alpha`` estimated need, the fallback to unsolved prompts), with the
  effective prompts' share split exactly optimally;
* :func:`bayes_counts`: the exact posterior expected value under per-prompt
  Beta posteriors, with no special cases.

Budgets and costs are whole cost units (:class:`~knapsack_alloc.costs.CostModel`);
with unit costs a unit is one rollout. :data:`PRESETS` holds each preset's
own defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.allocator.history import WindowCounts
from knapsack_alloc.costs import CostModel
from knapsack_alloc.engine import Solve
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.result import AllocationResult

PresetName = Literal["paper", "bayes"]

#: Each preset's defaults of the parameters whose default depends on the
#: preset; a preset takes only the preset-dependent parameters listed here.
#: The other parameters' defaults are in the signature of ``KnapsackAllocator``.
PRESETS: dict[PresetName, dict[str, Any]] = {
    "paper": {"default_rollouts": 8, "window": 16, "alpha": 0.9},
    # A longer window for the posterior: see docs/allocator.md (the "bayes" preset).
    "bayes": {"window": 64},
}

#: Rule names, indexed by the codes in :attr:`PresetPlan.rule` and :func:`classify`.
RULES = ("unseen", "warmup", "zero", "one", "effective")
_RULE_NAMES = np.array(RULES)
UNSEEN, WARMUP, ZERO, ONE, EFFECTIVE = range(5)


@dataclass(frozen=True)
class PresetPlan:
    """Counts a preset chose for one batch, and how they were reached.

    Attributes
    ----------
    counts : numpy.ndarray of int64
        Rollouts per prompt.
    rule : numpy.ndarray of int8
        Rule code of each prompt (see :data:`RULES`).
    fallback : numpy.ndarray of bool
        Prompts that received a share of the paper's fallback surplus.
    allocation : AllocationResult or None
        The optimal split behind the counts (the effective prompts only for
        ``"paper"``); None when no prompt took part.
    """

    counts: NDArray[np.int64]
    rule: NDArray[np.int8]
    fallback: NDArray[np.bool_]
    allocation: AllocationResult | None


def rule_names(rule: NDArray[np.int8]) -> NDArray[np.str_]:
    """Name of each prompt's rule (``rule`` holds codes, as :func:`classify` returns)."""
    names: NDArray[np.str_] = _RULE_NAMES[rule]
    return names


def classify(
    successes: NDArray[np.int64],
    trials: NDArray[np.int64],
    total: NDArray[np.int64],
    min_history: int,
) -> NDArray[np.int8]:
    """Rule code of each prompt (an index into :data:`RULES`).

    Parameters
    ----------
    successes, trials : numpy.ndarray of int64
        Successes and rewards in each prompt's estimation window.
    total : numpy.ndarray of int64
        Rewards seen in total for each prompt.
    min_history : int
        Rewards needed before a prompt's estimate is trusted ("valid").

    Returns
    -------
    numpy.ndarray of int8
        ``unseen`` (no reward yet), ``warmup`` (fewer than ``min_history``),
        ``zero`` (valid, estimate 0), ``one`` (valid, estimate 1) or
        ``effective`` (valid, estimate strictly between 0 and 1).
    """
    rule = np.full(total.shape, EFFECTIVE, dtype=np.int8)
    rule[successes == trials] = ONE
    rule[successes == 0] = ZERO
    rule[total < min_history] = WARMUP
    rule[total == 0] = UNSEEN
    return rule


def paper_counts(
    window: WindowCounts,
    costs: CostModel,
    *,
    default_rollouts: int,
    min_rollouts: int,
    max_rollouts: int,
    min_history: int,
    alpha: float,
    solve: Solve,
) -> PresetPlan:
    """Apply the paper's allocation rules to one batch.

    Parameters
    ----------
    window : WindowCounts
        Window successes, window rewards and total rewards of each prompt.
    costs : CostModel
        Cost of one rollout of each prompt and the budget, in whole units.
    default_rollouts : int
        Rollouts of a prompt with fewer than ``min_history`` rewards.
    min_rollouts, max_rollouts : int
        Base of every valid prompt, and bounds of the effective prompts.
    min_history : int
        Rewards after which an estimate is valid.
    alpha : float
        Target probability of a non-zero gradient in the estimated need.
    solve : Solve
        Splits the effective prompts' share; its ``allow_unused_budget``
        says whether a budget no rule can spend is allowed (else an error).

    Returns
    -------
    PresetPlan

    Notes
    -----
    With ``p`` the window mean of a valid prompt: base budgets are
    ``default_rollouts`` for prompts not valid yet and ``min_rollouts`` for
    the others; ``remaining = budget - sum(cost * base)``; the effective
    prompts' need is ``sum(cost * floor(min(U, ln(1 - alpha) / ln(max(p, 1 - p)))))``.
    If the need is below ``remaining`` the surplus goes to the fallback
    candidates (valid prompts with ``p == 0`` and prompts not valid yet, or
    else every non-effective prompt) and the effective prompts share the
    need; otherwise they share all of ``remaining`` (all of it goes to the
    candidates when no prompt is effective). The surplus is split in equal
    shares, ``surplus // k`` each, the first ``surplus % k`` candidates in
    batch order getting one more; with costs, each candidate gets
    ``(surplus // k) // cost`` rollouts and the candidates in batch order
    then take one more while the rest covers their cost. Two completions of
    the rules keep the whole budget spent: the effective share beyond what
    ``max_rollouts`` lets effective prompts take goes to the candidates, and
    a surplus with no candidate goes to the effective prompts. The effective
    share is split by :func:`~knapsack_alloc.allocate`, which is exactly
    optimal with unit costs.
    """
    units, budget = costs.units, costs.budget_units
    size = units.size
    rule = classify(window.successes, window.trials, window.total, min_history)
    valid = rule >= ZERO
    effective = rule == EFFECTIVE
    counts = np.where(valid, min_rollouts, default_rollouts).astype(np.int64)
    remaining = budget - int(units @ counts)
    if remaining < 0:
        raise InvalidArgumentError(
            f"budget == {_shown(costs)} is below the {budget - remaining} cost units the paper "
            f"rules give before optimising ({default_rollouts} rollouts per prompt with fewer "
            f"than {min_history} rewards, {min_rollouts} per other prompt); raise the budget or "
            "lower default_rollouts / min_rollouts."
        )
    eff_units = units[effective]
    capacity = int(eff_units.sum()) * (max_rollouts - min_rollouts)
    if effective.any():
        p = window.rates[effective]
        ratio = np.log(1.0 - alpha) / np.log(np.maximum(p, 1.0 - p))
        need = int(eff_units @ np.floor(np.minimum(max_rollouts, ratio)).astype(np.int64))
        share = need if need < remaining else remaining
    else:
        share = 0
    share = min(share, capacity)
    surplus = remaining - share

    candidates = np.flatnonzero(valid & (rule == ZERO) | ~valid)
    if candidates.size == 0:
        candidates = np.flatnonzero(~effective)
    fallback = np.zeros(size, dtype=np.bool_)
    if candidates.size and surplus:
        extra, rest = _split_equally(surplus, units[candidates])
        counts[candidates] += extra
        fallback[candidates] = True
        surplus = rest
    moved = min(surplus, capacity - share)
    share += moved
    surplus -= moved
    # With candidates, what is left is the remainder of the equal shares under costs.
    if surplus and candidates.size == 0 and not solve.allow_unused_budget:
        raise InvalidArgumentError(_unspendable(costs, surplus, remaining, capacity, max_rollouts))
    allocation = None
    if effective.any():
        allocation = solve(
            p, costs.share(effective, int(eff_units.sum()) * min_rollouts + share),
            min_rollouts, max_rollouts,
        )  # fmt: skip
        counts[effective] = allocation.counts
    return PresetPlan(counts=counts, rule=rule, fallback=fallback, allocation=allocation)


def _shown(costs: CostModel) -> str:
    """Show the budget as the caller gave it, with its whole units when they differ."""
    if costs.unit == 1.0:
        return f"{costs.budget_units}"
    return f"{costs.shown_budget!r} ({costs.budget_units} units of {costs.unit:g})"


def _unspendable(
    costs: CostModel, surplus: int, remaining: int, capacity: int, max_rollouts: int
) -> str:
    """Say why every prompt is effective and ``surplus`` cost units are left."""
    cheapest = int(costs.units.min())
    if surplus < cheapest:
        why = (
            f"less than one more rollout of any prompt (the cheapest costs {cheapest}): whole "
            "rollouts cannot add up to the budget exactly. Pass allow_unused_budget=True to "
            "leave it unspent, or lower the budget."
        )
    else:
        why = (
            f"every prompt is effective and capped at max_rollouts == {max_rollouts}, which "
            f"lets them take {capacity} of the {remaining} cost units left after "
            "min_rollouts. Lower the budget, raise max_rollouts, or pass "
            "allow_unused_budget=True."
        )
    return f"budget == {_shown(costs)} leaves {surplus} cost units that no rule can spend: {why}"


def _split_equally(surplus: int, units: NDArray[np.int64]) -> tuple[NDArray[np.int64], int]:
    """Split ``surplus`` cost units in equal shares; return rollouts and what is left."""
    extra = (surplus // units.size) // units
    rest = surplus - int(units @ extra)
    if (units == 1).all():
        extra[:rest] += 1
        return extra, 0
    for i, cost in enumerate(units.tolist()):
        if cost <= rest:
            extra[i] += 1
            rest -= cost
    return extra, rest


def bayes_counts(
    window: WindowCounts,
    prior: tuple[float, float],
    costs: CostModel,
    *,
    min_rollouts: int,
    max_rollouts: int,
    min_history: int,
    solve: Solve,
) -> PresetPlan:
    """Maximise the posterior expected value under Beta beliefs.

    Parameters
    ----------
    window : WindowCounts
        Window successes and window rewards of each prompt (0 and 0 if unseen).
    prior : tuple of float
        ``(a, b)``: each prompt's belief is ``Beta(a + successes, b + failures)``.
    costs : CostModel
        Cost of one rollout of each prompt and the budget, in whole units.
    min_rollouts, max_rollouts : int
        Bounds on every prompt's rollouts.
    min_history : int
        Rewards after which a prompt counts as valid in :attr:`PresetPlan.rule`.
    solve : Solve
        Runs the optimisation.

    Returns
    -------
    PresetPlan
    """
    allocation = solve(window.beliefs(prior), costs, min_rollouts, max_rollouts)
    return PresetPlan(
        counts=allocation.counts.copy(),
        rule=classify(window.successes, window.trials, window.total, min_history),
        fallback=np.zeros(allocation.counts.size, dtype=np.bool_),
        allocation=allocation,
    )

"""The allocation rules behind :class:`~knapsack_alloc.allocator.KnapsackAllocator`.

Pure functions from per-prompt reward counts to rollout counts:

* :func:`paper_counts`: the Knapsack RL paper's rules (base budgets, the
  ``alpha`` estimated need, the fallback to unsolved prompts), with the
  effective prompts' share split exactly optimally by
  :func:`~knapsack_alloc.allocate`;
* :func:`bayes_counts`: the exact posterior expected value under per-prompt
  Beta posteriors, with no special cases;
* :func:`fit_beta_prior`: the empirical-Bayes prior of the ``"bayes"`` preset.

All budgets and costs here are whole cost units (see
:mod:`knapsack_alloc.costs`); with unit costs a unit is one rollout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.engine import allocate
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.result import AllocationResult
from knapsack_alloc.values.posterior import BetaPosterior

#: Rule names, indexed by the codes in :attr:`PaperPlan.rule` and :func:`classify`.
RULES = ("unseen", "warmup", "zero", "one", "effective")
UNSEEN, WARMUP, ZERO, ONE, EFFECTIVE = range(5)

#: Prior used when too few prompts are tracked to fit one.
FALLBACK_PRIOR = (1.0, 1.0)
#: Prompts with enough rewards needed before the prior is fitted.
MIN_PRIOR_PROMPTS = 32
#: Range the fitted prior mean ``a / (a + b)`` is clipped to.
PRIOR_MEAN_RANGE = (0.01, 0.99)
#: Smallest fitted prior concentration ``a + b``; the largest is the window size.
MIN_PRIOR_CONCENTRATION = 1.0


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


@dataclass(frozen=True)
class PaperPlan:
    """Counts chosen by :func:`paper_counts` and how they were reached.

    Attributes
    ----------
    counts : numpy.ndarray of int64
        Rollouts per prompt.
    rule : numpy.ndarray of int8
        Rule code of each prompt (see :data:`RULES`).
    fallback : numpy.ndarray of bool
        Prompts that received a share of the fallback surplus.
    allocation : AllocationResult or None
        The optimal split among effective prompts; None when there are none.
    """

    counts: NDArray[np.int64]
    rule: NDArray[np.int8]
    fallback: NDArray[np.bool_]
    allocation: AllocationResult | None


def paper_counts(
    successes: NDArray[np.int64],
    trials: NDArray[np.int64],
    total: NDArray[np.int64],
    units: NDArray[np.int64],
    budget: int,
    *,
    default_rollouts: int,
    min_rollouts: int,
    max_rollouts: int,
    min_history: int,
    alpha: float,
    value: Any,
    solver: str,
    time_limit: float | None,
    allow_unused_budget: bool,
) -> PaperPlan:
    """Apply the paper's allocation rules to one batch.

    Parameters
    ----------
    successes, trials, total : numpy.ndarray of int64
        Window successes, window rewards and total rewards of each prompt.
    units : numpy.ndarray of int64
        Cost of one rollout of each prompt, in whole units (1 for rollouts).
    budget : int
        Budget in the same units.
    default_rollouts : int
        Rollouts of a prompt with fewer than ``min_history`` rewards.
    min_rollouts, max_rollouts : int
        Base of every valid prompt, and bounds of the effective prompts.
    min_history : int
        Rewards after which an estimate is valid.
    alpha : float
        Target probability of a non-zero gradient in the estimated need.
    value, solver, time_limit
        Passed to :func:`~knapsack_alloc.allocate` for the effective prompts.
    allow_unused_budget : bool
        Whether a budget no rule can spend is allowed (else an error).

    Returns
    -------
    PaperPlan

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
    size = total.size
    rule = classify(successes, trials, total, min_history)
    valid = rule >= ZERO
    effective = rule == EFFECTIVE
    counts = np.where(valid, min_rollouts, default_rollouts).astype(np.int64)
    remaining = budget - int(units @ counts)
    if remaining < 0:
        raise InvalidArgumentError(
            f"budget == {budget} is below the {budget - remaining} cost units the paper rules "
            f"give before optimising ({default_rollouts} rollouts per prompt with fewer than "
            f"{min_history} rewards, {min_rollouts} per other prompt); raise the budget or "
            "lower default_rollouts / min_rollouts."
        )
    eff_units = units[effective]
    p = successes[effective] / trials[effective]
    capacity = int(eff_units.sum()) * (max_rollouts - min_rollouts)
    if effective.any():
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
    if surplus and candidates.size == 0 and not allow_unused_budget:
        raise InvalidArgumentError(
            f"budget == {budget} leaves {surplus} cost units that no rule can spend: every "
            f"prompt is effective and capped at max_rollouts == {max_rollouts}. Lower the "
            "budget, raise max_rollouts, or pass allow_unused_budget=True."
        )
    allocation = None
    if effective.any():
        allocation = allocate(
            p,
            int(eff_units.sum()) * min_rollouts + share,
            min_rollouts=min_rollouts,
            max_rollouts=max_rollouts,
            costs=None if (eff_units == 1).all() else eff_units,
            value=value,
            solver=solver,
            time_limit=time_limit,
        )
        counts[effective] = allocation.counts
    return PaperPlan(counts=counts, rule=rule, fallback=fallback, allocation=allocation)


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
    successes: NDArray[np.int64],
    trials: NDArray[np.int64],
    prior: tuple[float, float],
    units: NDArray[np.int64],
    budget: int,
    *,
    min_rollouts: int,
    max_rollouts: int,
    value: Any,
    solver: str,
    time_limit: float | None,
    allow_unused_budget: bool,
) -> AllocationResult:
    """Maximise the posterior expected value under Beta beliefs.

    Parameters
    ----------
    successes, trials : numpy.ndarray of int64
        Window successes and window rewards of each prompt (0 and 0 if unseen).
    prior : tuple of float
        ``(a, b)``: each prompt's belief is ``Beta(a + successes, b + failures)``.
    units : numpy.ndarray of int64
        Cost of one rollout of each prompt, in whole units.
    budget : int
        Budget in the same units.
    min_rollouts, max_rollouts : int
        Bounds on every prompt's rollouts.
    value, solver, time_limit, allow_unused_budget
        Passed to :func:`~knapsack_alloc.allocate`.

    Returns
    -------
    AllocationResult
    """
    return allocate(
        BetaPosterior(successes, trials - successes, prior=prior),
        budget,
        min_rollouts=min_rollouts,
        max_rollouts=max_rollouts,
        costs=None if (units == 1).all() else units,
        value=value,
        solver=solver,
        time_limit=time_limit,
        allow_unused_budget=allow_unused_budget,
    )


def fit_beta_prior(histogram: NDArray[np.int64], min_trials: int) -> tuple[float, float]:
    """Fit a Beta prior to tracked prompts' window means by the method of moments.

    Parameters
    ----------
    histogram : numpy.ndarray of int64, shape (W + 1, W + 1)
        ``histogram[n, s]``: prompts whose window holds ``n`` rewards with
        ``s`` successes (see :meth:`RewardHistory.window_histogram`).
    min_trials : int
        Only prompts with at least this many rewards in their window count.

    Returns
    -------
    tuple of float
        ``(a, b)``; :data:`FALLBACK_PRIOR` when fewer than
        :data:`MIN_PRIOR_PROMPTS` prompts count.

    Notes
    -----
    With ``p_hat = s / n`` per prompt, ``m`` the mean of ``p_hat``, ``h`` the
    mean of ``1 / n`` and ``m2`` the mean of ``p_hat**2``, binomial noise
    gives ``E[p**2] = (m2 - m h) / (1 - h)``, so the spread of the true
    success rates is ``v = E[p**2] - m**2`` with the sampling noise removed.
    Matching a Beta's mean and variance gives the concentration
    ``a + b = m (1 - m) / v - 1``. The mean is clipped to
    :data:`PRIOR_MEAN_RANGE` and the concentration to
    ``[MIN_PRIOR_CONCENTRATION, W]``, so a full window always weighs at
    least as much as the prior.
    """
    window = histogram.shape[0] - 1
    grid = np.indices(histogram.shape, dtype=np.int64)
    n, s = grid[0], grid[1]
    use = (n >= max(min_trials, 1)) & (s <= n) & (histogram > 0)
    weight = histogram[use].astype(np.float64)
    prompts = weight.sum()
    if prompts < MIN_PRIOR_PROMPTS:
        return FALLBACK_PRIOR
    trials = n[use].astype(np.float64)
    p_hat = s[use] / trials
    m = float(weight @ p_hat / prompts)
    m2 = float(weight @ p_hat**2 / prompts)
    h = float(weight @ (1.0 / trials) / prompts)
    mean = min(max(m, PRIOR_MEAN_RANGE[0]), PRIOR_MEAN_RANGE[1])
    spread = (m2 - m * h) / (1.0 - h) - m * m if h < 1.0 else 0.0
    concentration = mean * (1.0 - mean) / spread - 1.0 if spread > 0 else float(window)
    concentration = min(max(concentration, MIN_PRIOR_CONCENTRATION), float(window))
    return (mean * concentration, (1.0 - mean) * concentration)

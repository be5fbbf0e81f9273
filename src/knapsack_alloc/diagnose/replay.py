"""The counterfactual: the run's steps replayed with :class:`KnapsackAllocator`.

The model: every prompt succeeds with a fixed probability, its observed
rate over the run (see :class:`~knapsack_alloc.diagnose.figures.RewardScale`).
Each step is planned from the history of the replay before it, with the
step's own prompts and rollout budget; the planned rollouts' rewards are
then drawn from the model (seeded) and recorded, and the step's expected
share of rollouts in groups with a gradient,
``sum_i N_i * P_nz(N_i, p_i) / sum_i N_i``, is its projected effective ratio.
The run as it happened is scored by the same formula, so the projection and
the run compare within one model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.diagnose.groups import GroupTable
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.values import NONZERO

if TYPE_CHECKING:
    from knapsack_alloc.allocator.presets import PresetName

#: Probability of a gradient the suggested upper bound aims at.
TARGET_GRADIENT_PROBABILITY = 0.9
#: Groups, hardest first, whose need the suggested upper bound covers.
HARD_QUANTILE = 0.1
#: The paper's rollouts per prompt without enough history (capped by the run's share).
PAPER_DEFAULT_ROLLOUTS = 8
#: Percentiles of the planned rollouts per prompt that are reported.
PERCENTILES = (0, 10, 50, 90, 100)


@dataclass(frozen=True)
class StepLayout:
    """Where each step's groups lie in a :class:`GroupTable`, and its budget."""

    starts: NDArray[np.int64]
    stops: NDArray[np.int64]
    budgets: NDArray[np.int64]

    @classmethod
    def of(cls, table: GroupTable) -> StepLayout:
        """Layout of ``table`` (sorted by step)."""
        starts = np.flatnonzero(np.concatenate(([True], table.step[1:] != table.step[:-1])))
        stops = np.append(starts[1:], len(table))
        return cls(starts, stops, np.add.reduceat(table.size, starts))

    @property
    def groups(self) -> NDArray[np.int64]:
        """Groups per step."""
        return self.stops - self.starts


@dataclass(frozen=True)
class Bounds:
    """Rollouts per prompt allowed in the replay.

    Attributes
    ----------
    min_rollouts, max_rollouts : int
    default_rollouts : int
        The ``paper`` preset's rollouts for a prompt with little history.
    reason : str
        How they were chosen.
    """

    min_rollouts: int
    max_rollouts: int
    default_rollouts: int
    reason: str


def suggest_bounds(table: GroupTable, layout: StepLayout, rates: NDArray[np.float64]) -> Bounds:
    """Bounds suited to the run, from its budgets and its prompts' observed rates.

    Parameters
    ----------
    table : GroupTable
    layout : StepLayout
    rates : numpy.ndarray of float64
        Success rate of each prompt.

    Returns
    -------
    Bounds

    Notes
    -----
    The lower bound is 2, the fewest rollouts that can show a gradient (1
    if a step had fewer than two rollouts per group). The upper bound is the
    smallest power of two at least the rollouts that give a gradient with
    probability 0.9 to the hardest tenth of the groups whose prompt was
    neither always nor never solved: ``ln(0.1) / ln(1 - q)`` with ``q`` the
    10th percentile of ``min(p, 1 - p)``. It is lowered to the most one
    prompt can get in any step while the others get the lower bound, and
    raised to the largest mean group size of a step (so that every step's
    budget can be spent).
    """
    share = layout.budgets // layout.groups
    lower = 2 if share.min() >= 2 else 1
    even = int(np.max(-(-layout.budgets // layout.groups)))
    ceiling = int(np.max(layout.budgets - lower * (layout.groups - 1)))
    q = np.minimum(rates, 1.0 - rates)[table.prompt]
    mixed = q[q > 0]
    if mixed.size:
        hard = float(np.quantile(mixed, HARD_QUANTILE))
        need = math.ceil(math.log(1 - TARGET_GRADIENT_PROBABILITY) / math.log1p(-hard))
        because = (
            f"{need} rollouts give a gradient with probability {TARGET_GRADIENT_PROBABILITY:g} "
            f"to the hardest tenth of the groups of prompts neither always nor never solved "
            f"(success rate {hard:.3g} or {1 - hard:.3g})"
        )
    else:
        need = even
        because = "no prompt was both solved and failed, so no rate calls for more rollouts"
    upper = 1 << max(need - 1, 0).bit_length()
    if upper > ceiling:
        upper, because = ceiling, because + f"; lowered to {ceiling}, the most any step can give"
    if upper < even:
        upper, because = even, because + f"; raised to {even}, a step's mean rollouts per group"
    upper = max(upper, lower)
    default = max(lower, min(PAPER_DEFAULT_ROLLOUTS, int(share.min())))
    return Bounds(lower, upper, default, because)


def given_bounds(
    layout: StepLayout, steps: NDArray[np.int64], suggested: Bounds,
    min_rollouts: int | None, max_rollouts: int | None,
) -> Bounds:  # fmt: skip
    """Bounds from the user, checked against every step's budget."""
    lower = suggested.min_rollouts if min_rollouts is None else min_rollouts
    upper = suggested.max_rollouts if max_rollouts is None else max_rollouts
    if lower < 1:
        raise InvalidArgumentError(f"--min-rollouts == {lower}, must be >= 1.")
    if upper < lower:
        raise InvalidArgumentError(f"--max-rollouts == {upper} is below --min-rollouts == {lower}.")
    too_few = np.flatnonzero(layout.budgets < lower * layout.groups)
    if too_few.size:
        i = int(too_few[0])
        raise InvalidArgumentError(
            f"--min-rollouts == {lower} is too high for step {int(steps[i])}: it had "
            f"{int(layout.budgets[i])} rollouts for {int(layout.groups[i])} groups; the replay "
            f"spends each step's budget, so use at most "
            f"{int(layout.budgets[i] // layout.groups[i])}."
        )
    too_many = np.flatnonzero(layout.budgets > upper * layout.groups)
    if too_many.size:
        i = int(too_many[0])
        need = -(-int(layout.budgets[i]) // int(layout.groups[i]))
        raise InvalidArgumentError(
            f"--max-rollouts == {upper} is too low for step {int(steps[i])}: it had "
            f"{int(layout.budgets[i])} rollouts for {int(layout.groups[i])} groups; the replay "
            f"spends each step's budget, so use at least {need}."
        )
    if min_rollouts is None and max_rollouts is None:
        return suggested
    default = max(
        lower, min(suggested.default_rollouts, int(np.min(layout.budgets // layout.groups)))
    )
    return Bounds(lower, upper, default, "given on the command line")


@dataclass(frozen=True)
class Projection:
    """Expected figures of one allocation of the run under the model.

    Attributes
    ----------
    name : str
        ``'as run'``, ``'paper'`` or ``'bayes'``.
    step_ratio : numpy.ndarray of float64
        Expected effective-gradient ratio of each step.
    budgets : numpy.ndarray of int64
        Rollouts of each step.
    rollouts_percentiles : dict of str to float
        ``p0`` (min), ``p10``, ``p50``, ``p90``, ``p100`` (max) of the
        rollouts given to a prompt in a step.
    at_max_share : float or None
        Share of the planned groups that got ``max_rollouts`` or more (the
        ``paper`` preset's fallback is not bounded); None for the run.
    prompt_rollouts : numpy.ndarray of float64
        Mean rollouts per step each prompt was given (indexed by prompt id).
    """

    name: str
    step_ratio: NDArray[np.float64]
    budgets: NDArray[np.int64]
    rollouts_percentiles: dict[str, float]
    at_max_share: float | None
    prompt_rollouts: NDArray[np.float64]

    @property
    def effective_gradient_ratio(self) -> float:
        """Expected share of the run's rollouts in groups with a gradient."""
        return float(self.step_ratio @ self.budgets) / float(self.budgets.sum())

    @property
    def wasted_rollouts(self) -> float:
        """Expected rollouts in groups without a gradient."""
        return float(self.budgets.sum()) * (1.0 - self.effective_gradient_ratio)


def as_run(table: GroupTable, layout: StepLayout, rates: NDArray[np.float64]) -> Projection:
    """Score the run's own group sizes under the model."""
    p = rates[table.prompt]
    gradient = table.size * NONZERO.value(table.size, p)
    ratio = np.add.reduceat(gradient, layout.starts) / layout.budgets
    return _projection("as run", table, layout, ratio, table.size, None)


def replay(
    table: GroupTable,
    layout: StepLayout,
    rates: NDArray[np.float64],
    preset: PresetName,
    bounds: Bounds,
    seed: int,
) -> Projection:
    """Replay the run's steps with a :class:`KnapsackAllocator` of ``preset`` (see the module)."""
    from knapsack_alloc import KnapsackAllocator

    params: dict[str, Any] = {
        "min_rollouts": bounds.min_rollouts,
        "max_rollouts": bounds.max_rollouts,
    }
    if preset == "paper":
        params["default_rollouts"] = bounds.default_rollouts
    allocator = KnapsackAllocator(preset, **params)
    rng = np.random.default_rng(seed)
    counts = np.empty(len(table), dtype=np.int64)
    ratio = np.empty(layout.starts.size)
    for t, (start, stop) in enumerate(
        zip(layout.starts.tolist(), layout.stops.tolist(), strict=True)
    ):
        prompts = table.prompt[start:stop]
        budget = int(layout.budgets[t])
        planned = allocator.plan(prompts, budget).counts
        p = rates[prompts]
        ratio[t] = float(planned @ NONZERO.value(planned, p)) / budget
        counts[start:stop] = planned
        wins = rng.binomial(planned, p)
        firsts = np.repeat(np.cumsum(planned) - planned, planned)
        rewards = (np.arange(budget) - firsts) < np.repeat(wins, planned)
        allocator.update(np.repeat(prompts, planned), rewards)
    return _projection(preset, table, layout, ratio, counts, bounds.max_rollouts)


def _projection(
    name: str,
    table: GroupTable,
    layout: StepLayout,
    ratio: NDArray[np.float64],
    counts: NDArray[np.int64],
    upper: int | None,
) -> Projection:
    prompts = int(table.prompt.max()) + 1
    given = np.bincount(table.prompt, weights=counts, minlength=prompts)
    sampled = np.bincount(table.prompt, minlength=prompts)
    values = np.percentile(counts, PERCENTILES)
    return Projection(
        name=name,
        step_ratio=ratio,
        budgets=layout.budgets,
        rollouts_percentiles={f"p{q}": float(v) for q, v in zip(PERCENTILES, values, strict=True)},
        at_max_share=None if upper is None else float(np.mean(counts >= upper)),
        prompt_rollouts=given / np.maximum(sampled, 1),
    )

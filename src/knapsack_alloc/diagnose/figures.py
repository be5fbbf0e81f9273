"""Figures of a run: per step, in total and per prompt, from its group table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.diagnose.groups import GroupTable


@dataclass(frozen=True)
class RewardScale:
    """What counts as a success in a run.

    Attributes
    ----------
    kind : {'binary', 'threshold', 'real'}
        ``binary``: at most two distinct rewards, the higher one a success
        (a single reward value is a success when it is positive);
        ``threshold``: a reward at least ``threshold`` is a success;
        ``real``: more than two distinct rewards and no threshold, so no
        successes are counted and a prompt's rate is its mean reward
        rescaled to [0, 1] by the run's lowest and highest reward.
    low, high : float
        The run's lowest and highest reward.
    values : tuple of float or None
        The distinct rewards of a binary run.
    threshold : float or None
    """

    kind: Literal["binary", "threshold", "real"]
    low: float
    high: float
    values: tuple[float, ...] | None
    threshold: float | None

    @classmethod
    def of(cls, table: GroupTable, threshold: float | None) -> RewardScale:
        """Return the scale of the rewards in ``table``."""
        low, high = float(table.low.min()), float(table.high.max())
        if threshold is not None:
            return cls("threshold", low, high, table.values, threshold)
        if table.values is not None:
            return cls("binary", low, high, table.values, None)
        return cls("real", low, high, None, None)

    @property
    def counts_successes(self) -> bool:
        """Whether each rollout is a success or a failure (not so for real rewards)."""
        return self.kind != "real"

    def describe(self) -> str:
        """One line for the report."""
        if self.kind == "binary":
            assert self.values is not None
            shown = ", ".join(f"{v:g}" for v in self.values)
            if len(self.values) == 1:
                verdict = "a success" if self.values[0] > 0 else "a failure"
                return f"constant reward {shown} (every rollout counts as {verdict})"
            return f"binary {{{shown}}}, {self.high:g} is a success"
        if self.kind == "threshold":
            return (
                f"in [{self.low:g}, {self.high:g}], a success when >= {self.threshold:g} "
                "(--success-threshold)"
            )
        return (
            f"real-valued in [{self.low:g}, {self.high:g}]; a prompt's rate is its mean reward "
            "rescaled to [0, 1] (pass --success-threshold to count successes)"
        )

    def is_success(self, rewards: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Whether each reward is a success (for binary and threshold scales)."""
        if self.kind == "threshold":
            assert self.threshold is not None
            return np.greater_equal(rewards, self.threshold)
        assert self.values is not None
        if len(self.values) == 1:
            return np.full(rewards.shape, self.values[0] > 0)
        return np.equal(rewards, self.high)

    def wins(self, table: GroupTable) -> NDArray[np.int64] | None:
        """Successes per group, or None for real-valued rewards."""
        if self.kind == "threshold":
            return table.wins
        if self.kind == "real":
            return None
        if self.low == self.high:
            return np.where(self.is_success(table.low), table.size, 0)
        # Two values: the sum fixes the count of the higher one.
        share = (table.total - table.size * self.low) / (self.high - self.low)
        return np.rint(share).astype(np.int64)

    def rates(self, size: NDArray[np.int64], wins: NDArray[np.int64] | None,
              total: NDArray[np.float64]) -> NDArray[np.float64]:  # fmt: skip
        """Success rate (or rescaled mean reward) of groups or prompts."""
        if wins is not None:
            return wins / size
        return np.clip((total / size - self.low) / (self.high - self.low), 0.0, 1.0)


@dataclass(frozen=True)
class StepFigures:
    """One entry per step, in step order.

    Attributes
    ----------
    step, rollouts, groups : numpy.ndarray of int64
    homogeneous_groups : numpy.ndarray of int64
        Groups whose rewards are all equal (no GRPO gradient); a group of
        one rollout is one.
    wasted_rollouts : numpy.ndarray of int64
        Rollouts in homogeneous groups.
    all_correct_groups, all_wrong_groups : numpy.ndarray of int64 or None
        Homogeneous groups of successes / of failures (None for real rewards).
    """

    step: NDArray[np.int64]
    rollouts: NDArray[np.int64]
    groups: NDArray[np.int64]
    homogeneous_groups: NDArray[np.int64]
    wasted_rollouts: NDArray[np.int64]
    all_correct_groups: NDArray[np.int64] | None
    all_wrong_groups: NDArray[np.int64] | None

    @property
    def effective_gradient_ratio(self) -> NDArray[np.float64]:
        """``1 - wasted / rollouts`` per step."""
        return 1.0 - self.wasted_rollouts / self.rollouts


@dataclass(frozen=True)
class PromptFigures:
    """One entry per prompt (indexed by dense prompt id).

    Attributes
    ----------
    sampled : numpy.ndarray of int64
        Groups of the prompt in the run (steps it was sampled in, once per group).
    rollouts, wasted_rollouts : numpy.ndarray of int64
    wins : numpy.ndarray of int64 or None
        Successes over the run (None for real rewards).
    mean_reward, rate : numpy.ndarray of float64
        Mean reward, and success rate (or rescaled mean reward): the
        projection's model draws the prompt's rewards with this rate.
    always_solved, never_solved : numpy.ndarray of bool or None
        Every rollout a success / none (None for real rewards).
    first_step, last_step : numpy.ndarray of int64
    """

    sampled: NDArray[np.int64]
    rollouts: NDArray[np.int64]
    wasted_rollouts: NDArray[np.int64]
    wins: NDArray[np.int64] | None
    mean_reward: NDArray[np.float64]
    rate: NDArray[np.float64]
    always_solved: NDArray[np.bool_] | None
    never_solved: NDArray[np.bool_] | None
    first_step: NDArray[np.int64]
    last_step: NDArray[np.int64]


def homogeneous(table: GroupTable) -> NDArray[np.bool_]:
    """Flag the groups whose rewards are all equal."""
    return np.equal(table.low, table.high)


def step_figures(table: GroupTable, scale: RewardScale) -> StepFigures:
    """Figures of every step (``table`` is sorted by step)."""
    starts = np.flatnonzero(np.concatenate(([True], table.step[1:] != table.step[:-1])))
    same = homogeneous(table)
    wasted = np.where(same, table.size, 0)
    correct = wrong = None
    if scale.counts_successes:
        success = scale.is_success(table.low)
        correct = np.add.reduceat((same & success).astype(np.int64), starts)
        wrong = np.add.reduceat((same & ~success).astype(np.int64), starts)
    return StepFigures(
        step=table.step[starts],
        rollouts=np.add.reduceat(table.size, starts),
        groups=np.diff(np.append(starts, len(table))),
        homogeneous_groups=np.add.reduceat(same.astype(np.int64), starts),
        wasted_rollouts=np.add.reduceat(wasted, starts),
        all_correct_groups=correct,
        all_wrong_groups=wrong,
    )


def prompt_figures(table: GroupTable, scale: RewardScale, prompts: int) -> PromptFigures:
    """Figures of every prompt over the run."""

    def per_prompt(values: NDArray[np.float64] | NDArray[np.int64]) -> NDArray[np.float64]:
        return np.bincount(table.prompt, weights=values, minlength=prompts).astype(np.float64)

    sampled = np.bincount(table.prompt, minlength=prompts)
    rollouts = per_prompt(table.size).astype(np.int64)
    total = per_prompt(table.total)
    wasted = per_prompt(np.where(homogeneous(table), table.size, 0)).astype(np.int64)
    group_wins = scale.wins(table)
    wins = None if group_wins is None else per_prompt(group_wins).astype(np.int64)
    first = np.full(prompts, np.iinfo(np.int64).max)
    last = np.full(prompts, np.iinfo(np.int64).min)
    np.minimum.at(first, table.prompt, table.step)
    np.maximum.at(last, table.prompt, table.step)
    return PromptFigures(
        sampled=sampled,
        rollouts=rollouts,
        wasted_rollouts=wasted,
        wins=wins,
        mean_reward=total / rollouts,
        rate=scale.rates(rollouts, wins, total),
        always_solved=None if wins is None else wins == rollouts,
        never_solved=None if wins is None else wins == 0,
        first_step=first,
        last_step=last,
    )

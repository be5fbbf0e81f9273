"""Streaming statistics of GRPO groups: a group is the rollouts of one prompt in one step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.diagnose.prompts import RolloutBatch

#: Partial group rows kept before they are merged (a few tens of MB).
COMPACT_ROWS = 1 << 21


@dataclass(frozen=True)
class GroupTable:
    """One row per group, sorted by step, prompt and group key.

    Attributes
    ----------
    step, prompt, key : numpy.ndarray of int64
        The group's step, dense prompt id and key within them (0 unless
        the input names groups, as verl's ``uid`` does).
    size : numpy.ndarray of int64
        Rollouts in the group.
    total, low, high : numpy.ndarray of float64
        Sum, smallest and largest reward.
    wins : numpy.ndarray of int64 or None
        Rollouts whose reward is at least the success threshold, when one
        was given.
    values : tuple of float or None
        The run's distinct rewards while there are at most two, else None.
    """

    step: NDArray[np.int64]
    prompt: NDArray[np.int64]
    key: NDArray[np.int64]
    size: NDArray[np.int64]
    total: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    wins: NDArray[np.int64] | None
    values: tuple[float, ...] | None

    def __len__(self) -> int:
        return int(self.size.size)


class GroupAccumulator:
    """Fold batches of rollouts into per-group sums, in memory that grows with groups only.

    Parameters
    ----------
    success_threshold : float, optional
        Also count, per group, the rollouts with a reward at least this.
    """

    def __init__(self, success_threshold: float | None = None) -> None:
        self.success_threshold = success_threshold
        self._parts: list[tuple[NDArray[np.float64] | NDArray[np.int64], ...]] = []
        self._rows = 0
        self._merged_rows = 0
        self._values: NDArray[np.float64] | None = np.empty(0)

    def add(self, batch: RolloutBatch) -> None:
        """Fold one batch in."""
        if not len(batch):
            return
        rewards = batch.rewards
        ones = np.ones(rewards.size, dtype=np.int64)
        wins = (
            (rewards >= self.success_threshold).astype(np.int64)
            if self.success_threshold is not None
            else ones
        )
        part = _reduce(
            (batch.steps, batch.prompts, batch.groups, ones, rewards, rewards, rewards, wins)
        )
        self._parts.append(part)
        self._rows += part[0].size
        if self._values is not None:
            values = np.unique(np.concatenate([self._values, np.unique(rewards)]))
            self._values = values if values.size <= 2 else None
        if self._rows > max(COMPACT_ROWS, 2 * self._merged_rows):
            self._compact()

    def _compact(self) -> None:
        if len(self._parts) > 1:
            merged = tuple(np.concatenate(column) for column in zip(*self._parts, strict=True))
            self._parts = [_reduce(merged)]
        self._rows = self._merged_rows = self._parts[0][0].size if self._parts else 0

    def table(self) -> GroupTable:
        """Return the groups seen so far."""
        self._compact()
        if self._parts:
            step, prompt, key, size, total, low, high, wins = self._parts[0]
        else:
            empty_i, empty_f = np.empty(0, dtype=np.int64), np.empty(0)
            step = prompt = key = size = wins = empty_i
            total = low = high = empty_f
        return GroupTable(
            step=step.astype(np.int64),
            prompt=prompt.astype(np.int64),
            key=key.astype(np.int64),
            size=size.astype(np.int64),
            total=total.astype(np.float64),
            low=low.astype(np.float64),
            high=high.astype(np.float64),
            wins=wins.astype(np.int64) if self.success_threshold is not None else None,
            values=None if self._values is None else tuple(self._values.tolist()),
        )


def _reduce(
    columns: tuple[NDArray[np.float64] | NDArray[np.int64], ...],
) -> tuple[NDArray[np.float64] | NDArray[np.int64], ...]:
    """Merge rows with the same (step, prompt, key): add sizes, sums and wins, keep extremes."""
    step, prompt, key, size, total, low, high, wins = columns
    order = np.lexsort((key, prompt, step))
    step, prompt, key = step[order], prompt[order], key[order]
    starts = np.flatnonzero(
        np.concatenate(
            ([True], (step[1:] != step[:-1]) | (prompt[1:] != prompt[:-1]) | (key[1:] != key[:-1]))
        )
    )
    return (
        step[starts],
        prompt[starts],
        key[starts],
        np.add.reduceat(size[order], starts),
        np.add.reduceat(total[order], starts),
        np.minimum.reduceat(low[order], starts),
        np.maximum.reduceat(high[order], starts),
        np.add.reduceat(wins[order], starts),
    )

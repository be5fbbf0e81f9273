"""One round's plan: rollouts per prompt, what the step already holds, and what to log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.batching import Partition, balance
from knapsack_alloc.result import AllocationResult


@dataclass(frozen=True, repr=False)
class RoundPlan:
    """Rollouts per prompt for one round of a step, with what a trainer logs.

    Attributes
    ----------
    round : int
        The round's index, from 0.
    prompt_ids : numpy.ndarray
        The step's prompt ids, as given to ``start_step``.
    counts : numpy.ndarray of int64
        Rollouts to generate in this round for each prompt, in input order.
    sizes : numpy.ndarray of int64
        Each prompt's group size once this round is generated (all rounds).
    open : numpy.ndarray of bool
        Groups that held no success and failure together before this round.
    rules : numpy.ndarray of str
        Each prompt's category (see :class:`~knapsack_alloc.StepPlan`) under
        its estimate updated with the step's rewards so far.
    fallback : numpy.ndarray of bool
        Prompts that received the ``"paper"`` preset's fallback surplus.
    estimates : numpy.ndarray of float64
        Window success rates with the step's rewards added (NaN if none).
    metrics : dict of str to float
        See :meth:`StepRounds.plan_round`.
    allocation : AllocationResult or None
        The :func:`~knapsack_alloc.allocate` result behind the round (final
        group sizes; the effective prompts only for ``"paper"``).
    """

    round: int
    prompt_ids: NDArray[Any]
    counts: NDArray[np.int64]
    sizes: NDArray[np.int64]
    open: NDArray[np.bool_]
    rules: NDArray[np.str_]
    fallback: NDArray[np.bool_]
    estimates: NDArray[np.float64]
    metrics: dict[str, float]
    allocation: AllocationResult | None

    def __post_init__(self) -> None:
        for array in (
            self.prompt_ids, self.counts, self.sizes, self.open, self.rules, self.fallback,
            self.estimates,
        ):  # fmt: skip
            array.flags.writeable = False

    def __len__(self) -> int:
        return int(self.counts.size)

    def __repr__(self) -> str:
        return (
            f"RoundPlan(round={self.round}, prompts={len(self)}, "
            f"rollouts={int(self.counts.sum())}, open={int(self.open.sum())}, "
            f"max_group={int(self.sizes.max(initial=0))})"
        )

    def rollout_index(self) -> NDArray[np.int64]:
        """Batch position of each rollout of this round: prompt ``i`` repeated ``counts[i]`` times.

        A rollout's GRPO group is its prompt's batch position, the same in
        every round of the step. :meth:`StepRounds.record` expects the
        round's rewards in this order unless given an ``index``.

        Returns
        -------
        numpy.ndarray of int64
        """
        return np.repeat(np.arange(self.counts.size, dtype=np.int64), self.counts)

    def balance(self, workers: int, *, equal_size: bool = False) -> Partition:
        """Split this round's prompts across ``workers`` with equal rollout totals.

        Parameters
        ----------
        workers : int
            Number of data-parallel workers.
        equal_size : bool, default False
            Give every worker the same number of prompts.

        Returns
        -------
        Partition
            See :func:`~knapsack_alloc.batching.balance`.
        """
        return balance(self.counts, workers, equal_size=equal_size)

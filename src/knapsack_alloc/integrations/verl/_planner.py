"""`VerlKnapsackPlanner`: plan, expand and learn verl rollout batches.

The building block of the verl trainer (:mod:`knapsack_alloc.integrations.verl`)
and the programmatic API for custom trainers. Importing it needs neither verl
nor PyTorch; both are needed only when a batch is planned or expanded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["ROLLOUT_N_KEY", "RolloutPlan", "VerlKnapsackPlanner"]

ROLLOUT_N_KEY = "__rollout_n__"
"""Batch field that verl's v1 agent loop reads as the rollout count of a prompt."""


@dataclass(frozen=True, repr=False)
class RolloutPlan:
    """One step's rollouts, in the batch order that balances the workers.

    Attributes
    ----------
    order : numpy.ndarray of int64
        Row of the original prompt batch at each position of the reordered
        batch; worker ``j`` receives the ``j``-th contiguous chunk.
    counts : numpy.ndarray of int64
        Rollouts of each prompt, in the reordered batch's order.
    rollout_index : numpy.ndarray of int64
        Row of the original prompt batch of each rollout of the expanded batch
        (``order`` with row ``order[i]`` repeated ``counts[i]`` times).
    worker_rollouts : numpy.ndarray of float64
        Rollouts (or cost units) each worker receives.
    metrics : dict of str to float
        The allocator's plan metrics plus ``balance_gap`` (how far the busiest
        worker can be from the best split, as a fraction).
    """

    order: NDArray[np.int64]
    counts: NDArray[np.int64]
    rollout_index: NDArray[np.int64]
    worker_rollouts: NDArray[np.float64]
    metrics: dict[str, float]

    def __repr__(self) -> str:
        return (
            f"RolloutPlan(prompts={self.order.size}, rollouts={self.rollout_index.size}, "
            f"workers={self.worker_rollouts.size}, balance_gap={self.metrics['balance_gap']:.3g})"
        )


class VerlKnapsackPlanner:
    """Plan, expand and learn verl rollout batches with a `KnapsackAllocator`.

    Parameters
    ----------
    allocator : KnapsackAllocator
        Plans each batch and is updated with its rewards.
    rollout_n : int
        verl's ``actor_rollout_ref.rollout.n``. A batch of ``m`` prompts gets
        a budget of ``m * rollout_n`` rollouts, so the mini-batch arithmetic of
        the trainer (``ppo_mini_batch_size * rollout.n``) still holds.
    num_workers : int, default 1
        Agent-loop workers (v1) or rollout chunks (legacy) the batch is split
        into; the prompts are ordered so each contiguous chunk gets an equal
        share of the rollouts.
    prompt_key : str, default "index"
        Batch field that identifies a prompt across epochs (verl's datasets
        copy ``extra_info.index`` there).
    min_group_size : int, default 2
        Smallest group a plan may contain. verl gives a group of one rollout
        its raw score as GRPO advantage, so keep this at 2 or more.
    keep_uids : bool, default True
        Remember which prompt each planned ``uid`` is, for :meth:`update`.
        Callers that read prompt ids from the scored batch themselves turn
        this off, so nothing accumulates for groups that never come back.

    Attributes
    ----------
    last_plan : RolloutPlan or None
        The latest plan.
    """

    def __init__(
        self,
        allocator: Any,
        rollout_n: int,
        *,
        num_workers: int = 1,
        prompt_key: str = "index",
        min_group_size: int = 2,
        keep_uids: bool = True,
    ) -> None:
        for name, value in (("rollout_n", rollout_n), ("num_workers", num_workers)):
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} == {value!r}, must be an int >= 1.")
        self.allocator = allocator
        self.rollout_n = int(rollout_n)
        self.num_workers = int(num_workers)
        self.prompt_key = prompt_key
        self.min_group_size = min_group_size
        self.keep_uids = keep_uids
        self.last_plan: RolloutPlan | None = None
        self._uid_prompt: dict[str, Any] = {}

    def plan(
        self,
        prompt_ids: Sequence[Any],
        uids: Sequence[Any],
        *,
        equal_size: bool,
        costs: Any = None,
    ) -> RolloutPlan:
        """Plan one batch of prompts and remember which prompt each uid is.

        Parameters
        ----------
        prompt_ids : sequence of int or str
            Prompt of each row of the batch.
        uids : sequence of str
            verl's per-row ``uid`` (the GRPO group key).
        equal_size : bool
            Give every worker the same number of prompts (the v1 agent loop
            splits the prompt batch into chunks of equal length); otherwise
            the rollout totals alone are balanced (the legacy path splits the
            expanded batch).
        costs : array_like, optional
            Cost of one rollout of each prompt, passed to the allocator and
            used for balancing.

        Returns
        -------
        RolloutPlan
        """
        ids = [plain(p) for p in prompt_ids]
        keys = [str(u) for u in uids]
        if len(keys) != len(ids):
            raise ValueError(
                f"{len(ids)} prompt ids but {len(keys)} uids; give one of each per row."
            )
        step = self.allocator.plan(ids, len(ids) * self.rollout_n, costs=costs)
        counts = np.asarray(step.counts, dtype=np.int64)
        if counts.size and counts.min() < self.min_group_size:
            raise ValueError(
                f"The plan gives a prompt {int(counts.min())} rollouts, fewer than "
                f"min_group_size == {self.min_group_size}. Raise the allocator's minimum "
                "rollouts per prompt."
            )
        split = step.balance(self.num_workers, costs=costs, equal_size=equal_size)
        order = split.order
        rollout_index, _ = step.expand(order)
        metrics = {**step.metrics, "balance_gap": split.gap}
        if self.keep_uids:
            self._uid_prompt.update(zip(keys, ids, strict=True))
        self.last_plan = RolloutPlan(
            order=order,
            counts=counts[order],
            rollout_index=rollout_index,
            worker_rollouts=split.loads,
            metrics=metrics,
        )
        return self.last_plan

    def prepare_v1_batch(self, batch: Any, costs: Any = None) -> Any:
        """Reorder a v1 prompt batch and set each prompt's ``__rollout_n__``.

        Parameters
        ----------
        batch : tensordict.TensorDict
            One prompt per row, with ``uid`` and ``prompt_key`` fields, as
            ``PPOTrainer._next_train_batch`` returns it.
        costs : array_like, optional
            Cost of one rollout of each prompt.

        Returns
        -------
        tensordict.TensorDict
            The prompts in balanced order, with an int64 ``__rollout_n__``.
        """
        import torch

        plan = self.plan(
            list(batch[self.prompt_key]), list(batch["uid"]), equal_size=True, costs=costs
        )
        reordered = batch[torch.as_tensor(plan.order)]
        reordered[ROLLOUT_N_KEY] = torch.as_tensor(plan.counts, dtype=torch.int64)
        return reordered

    def plan_data_proto(self, batch: Any, costs: Any = None) -> RolloutPlan:
        """Plan a legacy-path prompt batch (one row per prompt, before repetition).

        Parameters
        ----------
        batch : verl.DataProto
            With ``uid`` and ``prompt_key`` in ``non_tensor_batch``.
        costs : array_like, optional
            Cost of one rollout of each prompt.

        Returns
        -------
        RolloutPlan
        """
        rows = batch.non_tensor_batch
        return self.plan(
            list(rows[self.prompt_key]), list(rows["uid"]), equal_size=False, costs=costs
        )

    def expand(self, data: Any, plan: RolloutPlan | None = None) -> Any:
        """Repeat each prompt row by its planned count, in balanced order.

        Parameters
        ----------
        data : verl.DataProto
            The prompt batch that was planned, or a batch derived from it row
            for row (e.g. ``gen_batch``).
        plan : RolloutPlan, optional
            Default :attr:`last_plan`.

        Returns
        -------
        verl.DataProto
            ``sum(counts)`` rows; the rollouts of one prompt are adjacent.
        """
        plan = plan if plan is not None else self.last_plan
        if plan is None:
            raise ValueError("No plan yet; call plan_data_proto(batch) first.")
        if len(data) != plan.order.size:
            raise ValueError(
                f"data has {len(data)} rows but the plan has {plan.order.size} prompts; "
                "expand the batch that was planned, before any repetition."
            )
        return data.select_idxs(plan.rollout_index)

    def update(self, uids: Sequence[Any], scores: Any) -> dict[str, float]:
        """Feed one step's rewards to the allocator.

        Parameters
        ----------
        uids : sequence of str
            ``uid`` of each rollout.
        scores : array_like
            Outcome reward of each rollout, in a form the allocator accepts
            (0/1, -1/1, bools, or floats in ``[0, 1]``).

        Returns
        -------
        dict of str to float
            What ``allocator.update`` returns.
        """
        keys = [str(u) for u in uids]
        unknown = sorted({k for k in keys if k not in self._uid_prompt})
        if unknown:
            hint = "" if self.keep_uids else " (it was created with keep_uids=False)"
            raise KeyError(f"uid {unknown[0]!r} was not planned by this planner{hint}.")
        metrics = self.allocator.update([self._uid_prompt[k] for k in keys], np.asarray(scores))
        for key in set(keys):
            del self._uid_prompt[key]
        return dict(metrics)

    def update_from_data(
        self, data: Any, batch_keys: Sequence[str] | None = None
    ) -> dict[str, float]:
        """Feed the rewards of a scored ``DataProto`` to the allocator.

        Parameters
        ----------
        data : verl.DataProto
            With ``uid`` in ``non_tensor_batch`` and ``token_level_scores``
            (else ``rm_scores``) in ``batch``; a rollout's score is the sum
            over its tokens.
        batch_keys : sequence of str, optional
            The v1 TransferQueue keys of the rows (``{uid}_{session}_{i}``).
            A session that produced several outputs then counts once, with
            its last output, as verl's v1 advantage does.

        Returns
        -------
        dict of str to float
            What ``allocator.update`` returns.
        """
        fields = data.batch
        name = "token_level_scores" if "token_level_scores" in fields else "rm_scores"
        scores = fields[name].sum(dim=-1).double().cpu().numpy()
        uids = np.asarray(data.non_tensor_batch["uid"], dtype=object)
        if batch_keys is not None:
            rows = final_session_rows(batch_keys)
            scores, uids = scores[rows], uids[rows]
        return self.update(list(uids), scores)


def final_session_rows(batch_keys: Sequence[str]) -> NDArray[np.int64]:
    """Row of the last output of each ``{uid}_{session}`` in v1 TransferQueue keys.

    Parameters
    ----------
    batch_keys : sequence of str
        Keys ``{uid}_{session}_{index}``.

    Returns
    -------
    numpy.ndarray of int64
        Ascending rows, one per session: the output verl scores.
    """
    last: dict[str, tuple[int, int]] = {}
    for row, key in enumerate(batch_keys):
        session, _, index = key.rpartition("_")
        if session not in last or last[session][0] < int(index):
            last[session] = (int(index), row)
    return np.array(sorted(row for _, row in last.values()), dtype=np.int64)


def plain(value: Any) -> Any:
    """Return a NumPy or PyTorch scalar as a Python int or str, other values unchanged."""
    item = getattr(value, "item", None)
    return item() if callable(item) and np.ndim(value) == 0 else value

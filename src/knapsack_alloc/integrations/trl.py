"""TRL adapter: a ``GRPOTrainer`` whose group sizes come from a `KnapsackAllocator`.

``KnapsackGRPOTrainer`` is built on first access, so importing this module needs
neither TRL nor PyTorch::

    from knapsack_alloc.allocator import KnapsackAllocator
    from knapsack_alloc.integrations.trl import KnapsackGRPOTrainer

    trainer = KnapsackGRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=GRPOConfig(...),
        train_dataset=dataset,  # with a "prompt_id" column
        allocator=KnapsackAllocator(preset="paper"),
    )

What the subclass changes in TRL's ``GRPOTrainer`` (written against TRL 1.16):

* ``_get_train_sampler`` / ``get_train_dataloader``: the dataloader yields each
  prompt once (``RepeatSampler`` with ``mini_repeat_count=1``), so a generation
  batch holds ``generation_batch_size // num_generations`` unique prompts.
* ``_generate_and_score_completions``: gathers the prompts of all processes,
  asks the allocator for a plan on the main process (a budget of
  ``prompts * num_generations`` rollouts, or ``token_budget`` completion
  tokens), broadcasts it, repeats prompt ``i`` ``counts[i]`` times and hands
  each process its slice of the expanded batch. The stock method then runs
  with one completion per row (``num_generations`` is 1 while it runs), which
  is what transformers generation and both vLLM modes need to follow the plan.
  Afterwards the advantages are recomputed per group (TRL reshapes rewards to
  ``(-1, num_generations)``, which is wrong for unequal groups), optionally
  clipped and weighted per prompt (:class:`~knapsack_alloc.integrations.groups.GroupStability`),
  and the allocator is updated with the step's rewards and completion lengths.
* With ``rounds > 1``, ``_generate_and_score_completions`` calls the stock
  method once per round (:meth:`KnapsackAllocator.start_step
  <knapsack_alloc.KnapsackAllocator.start_step>`), concatenates the rounds'
  outputs, and normalises each prompt's rewards over all its rounds.
* ``_calculate_rewards``: keeps the gathered rewards of the step.
* ``_save_checkpoint`` / ``_load_optimizer_and_scheduler``: the allocator's
  state is saved in and restored from each checkpoint folder.

Evaluation is unchanged (uniform ``num_generations_eval``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

_LAZY = ("KnapsackGRPOTrainer",)  # built on first access; needs TRL

__all__ = [
    "ALLOCATOR_STATE_FILE",
    "concat_round_outputs",
    "group_advantages",
    "process_aligned_shares",
    "trim_to_multiple",
    *_LAZY,
]

ALLOCATOR_STATE_FILE = "knapsack_allocator.ckpt"
"""Name of the allocator's state file inside a trainer checkpoint folder."""

_EPS = 1e-4  # TRL's constant in ``advantages / (std + 1e-4)``


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _trainer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


def _prompt_key(prompt: Any) -> str:
    """Return a stable id for a prompt (a string or a list of chat messages)."""
    text = json.dumps(prompt, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def group_advantages(
    rewards_per_func: Any,
    weights: Any,
    group_ids: Any,
    scale_rewards: str = "group",
    aggregation: str = "sum_then_normalize",
) -> tuple[Any, Any]:
    """GRPO advantages with groups of any size, as TRL computes them for equal groups.

    Parameters
    ----------
    rewards_per_func : torch.Tensor
        Rewards of shape ``(n_rollouts, n_funcs)``; ``NaN`` marks a reward
        function that gave no reward for that rollout.
    weights : torch.Tensor
        Weight of each reward function, shape ``(n_funcs,)``.
    group_ids : torch.Tensor
        Integer group (prompt) of each rollout, shape ``(n_rollouts,)``, values
        in ``0 .. n_groups - 1``.
    scale_rewards : {"group", "batch", "none"}
        ``GRPOConfig.scale_rewards``: divide by the group's standard deviation,
        by the batch's, or not at all.
    aggregation : {"sum_then_normalize", "normalize_then_sum"}
        ``GRPOConfig.multi_objective_aggregation``.

    Returns
    -------
    advantages : torch.Tensor
        Shape ``(n_rollouts,)``; rollouts without any reward get 0.
    std_is_zero : torch.Tensor
        Boolean, shape ``(n_rollouts,)``: the rollout's group (or, with
        ``scale_rewards="batch"``, the batch) has zero reward spread, so the
        rollout carries no gradient.

    Notes
    -----
    With ``sum_then_normalize`` the reward ``r`` is the weighted sum over
    functions and ``A = (r - mean_g(r)) / (std_g(r) + 1e-4)``, where ``mean_g``
    and ``std_g`` (Bessel-corrected) run over the rollout's group and ignore
    missing rewards. A group of one rollout has an undefined standard deviation
    and gets advantage 0, as in TRL. With ``normalize_then_sum`` each function
    is normalised within the group first, the weighted sum is then normalised
    over the batch.
    """
    import torch

    group_ids = group_ids.to(device=rewards_per_func.device, dtype=torch.long)
    unscorable = torch.isnan(rewards_per_func).all(dim=1)
    weights = weights.to(rewards_per_func.device)
    if aggregation == "sum_then_normalize":
        rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        rewards[unscorable] = torch.nan
        mean, std = _group_mean_std(rewards, group_ids)
        if scale_rewards == "batch":
            std = _batch_std(rewards)
        elif scale_rewards not in ("group", "none"):
            raise ValueError(
                f"The 'scale_rewards' parameter must be a str among {{'batch', 'group', 'none'}}. "
                f"Got {scale_rewards!r} instead."
            )
        advantages = rewards - mean
        if scale_rewards != "none":
            advantages = advantages / (std + _EPS)
    elif aggregation == "normalize_then_sum":
        mean_k, std_k = _group_mean_std(rewards_per_func, group_ids)
        reward_k = (rewards_per_func - mean_k) / (std_k + _EPS)
        rewards = (reward_k * weights.unsqueeze(0)).nansum(dim=1)
        rewards[unscorable] = torch.nan
        std = _batch_std(rewards)
        advantages = (rewards - torch.nanmean(rewards)) / (std + _EPS)
    else:
        raise ValueError(
            "The 'aggregation' parameter must be a str among "
            f"{{'normalize_then_sum', 'sum_then_normalize'}}. Got {aggregation!r} instead."
        )
    std_is_zero = torch.isclose(std, torch.zeros_like(std))
    return torch.nan_to_num(advantages, nan=0.0), std_is_zero


def _batch_std(rewards: Any) -> Any:
    """Bessel-corrected std of the whole batch ignoring ``NaN``, per rollout (0 for one rollout)."""
    import torch
    from trl.trainer.utils import nanstd

    if rewards.numel() > 1:
        return nanstd(rewards).expand_as(rewards)
    return torch.zeros_like(rewards)


def _group_mean_std(values: Any, group_ids: Any) -> tuple[Any, Any]:
    """Per-rollout mean and Bessel-corrected std of its group, ignoring ``NaN``."""
    import torch

    n_groups = int(group_ids.max().item()) + 1
    valid = ~torch.isnan(values)
    shape = (n_groups, *values.shape[1:])
    count = values.new_zeros(shape).index_add_(0, group_ids, valid.to(values.dtype))
    total = values.new_zeros(shape).index_add_(0, group_ids, torch.where(valid, values, 0.0))
    mean = (total / count)[group_ids]
    squares = torch.where(valid, (values - mean) ** 2, 0.0)
    variance = values.new_zeros(shape).index_add_(0, group_ids, squares) / (count - 1)
    variance = torch.where(count > 1, variance, torch.nan)
    return mean, torch.sqrt(variance)[group_ids]


def process_aligned_shares(budget: int, shares: Any, multiple: int) -> list[float]:
    """Round shares whose rollout totals are multiples of ``multiple`` (the processes).

    Parameters
    ----------
    budget : int
        Rollouts of the whole step, a multiple of ``multiple``.
    shares : sequence of float
        The wanted shares (see :func:`~knapsack_alloc.rounds.round_shares`).
    multiple : int
        Every round's rollouts must divide evenly among this many processes.

    Returns
    -------
    list of float
        Shares whose cumulative targets ``floor(budget * (s_1 + ... + s_r))``
        are the wanted ones rounded to the nearest multiple; rounds that
        would get no rollout are merged into the next.

    Examples
    --------
    >>> process_aligned_shares(32, [0.5, 0.5], 4), process_aligned_shares(24, [1 / 3] * 3, 8)
    ([0.5, 0.5], [0.3333333333333333, 0.3333333333333333, 0.3333333333333333])
    """
    import numpy as np

    if budget % multiple:
        raise ValueError(f"budget == {budget} is not a multiple of {multiple} processes.")
    wanted = np.cumsum(np.asarray(shares, dtype=np.float64)) * budget / multiple
    targets = [int(t) * multiple for t in np.rint(wanted[:-1])] + [budget]
    kept = sorted({t for t in targets if t > 0})
    shares_kept: list[float] = (np.diff([0, *kept]) / budget).tolist()
    return shares_kept


#: How each TRL output field is padded when rounds are concatenated: the
#: side and the value (``None``: the pad token id).
_ROUND_PADDING: dict[str, tuple[str, float | None]] = {
    "prompt_ids": ("left", None),
    "prompt_mask": ("left", 0),
    "completion_ids": ("right", None),
    "completion_mask": ("right", 0),
    "old_per_token_logps": ("right", 0.0),
    "ref_per_token_logps": ("right", 0.0),
    "sampling_per_token_logps": ("right", 0.0),
    "importance_sampling_ratio": ("right", 1.0),
    "tool_mask": ("right", 1),
}


def concat_round_outputs(outputs: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Join the outputs of several ``_generate_and_score_completions`` calls into one batch.

    Parameters
    ----------
    outputs : list of dict
        One output per round, each holding one process's rows of that round.
    pad_token_id : int
        Token used to pad prompt ids (on the left) and completion ids (on the
        right) to the widest round.

    Returns
    -------
    dict
        Rows of every round, round after round; ``num_items_in_batch`` (the
        loss tokens of the whole generation batch) is the sum over rounds;
        ``advantages`` is left out (recompute it over all rounds).

    Raises
    ------
    ValueError
        On a field it does not know how to join (multimodal inputs).
    """
    import torch
    import torch.nn.functional as functional

    merged: dict[str, Any] = {}  # in the stock order: TRL sizes the batch by its first field
    for key in outputs[0]:
        if key == "advantages":
            continue
        if key == "num_items_in_batch":
            merged[key] = sum(output[key] for output in outputs)
            continue
        if key not in _ROUND_PADDING:
            raise ValueError(
                f"KnapsackGRPOTrainer cannot join the field {key!r} across rounds (multimodal "
                "inputs are not supported with rounds > 1); use rounds=1."
            )
        side, value = _ROUND_PADDING[key]
        parts = [output[key] for output in outputs]
        width = max(part.shape[1] for part in parts)
        fill = pad_token_id if value is None else value
        padded = [
            functional.pad(
                part,
                (width - part.shape[1], 0) if side == "left" else (0, width - part.shape[1]),
                value=fill,
            )
            for part in parts
        ]
        merged[key] = torch.cat(padded, dim=0)
    return merged


def trim_to_multiple(counts: Any, multiple: int, floor: int) -> Any:
    """Remove rollouts so that their total is a multiple of ``multiple``.

    Parameters
    ----------
    counts : numpy.ndarray of int64
        Rollouts per prompt.
    multiple : int
        The total must become a multiple of this (processes times
        ``steps_per_generation``: TRL splits a generation batch into equal
        per-process and per-step slices).
    floor : int
        No prompt is cut below this many rollouts.

    Returns
    -------
    numpy.ndarray of int64
        A copy with ``sum(counts) % multiple`` fewer rollouts, one fewer for
        each of the largest groups (ties by batch order).

    Raises
    ------
    ValueError
        If fewer groups than that are above ``floor``.
    """
    import numpy as np

    trimmed = np.array(counts, dtype=np.int64)
    excess = int(trimmed.sum()) % multiple
    if excess == 0:
        return trimmed
    largest = np.argsort(-trimmed, kind="stable")[:excess]
    if largest.size < excess or trimmed[largest].min() <= floor:
        raise ValueError(
            f"The plan holds {int(trimmed.sum())} rollouts; making it a multiple of {multiple} "
            f"(processes x steps_per_generation) would cut groups below {floor} rollouts. Raise "
            "token_budget or use fewer processes / steps_per_generation."
        )
    trimmed[largest] -= 1
    return trimmed


@functools.cache
def _trainer_class() -> type:
    """Import TRL and build ``KnapsackGRPOTrainer`` (once)."""
    import contextlib
    import numbers
    import os

    import numpy as np
    import torch
    from accelerate.utils import broadcast_object_list, gather_object
    from datasets import IterableDataset
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
    from trl.trainer.grpo_trainer import GRPOTrainer
    from trl.trainer.utils import RepeatSampler, nanstd

    from knapsack_alloc.batching import expand_counts
    from knapsack_alloc.exceptions import InvalidArgumentError
    from knapsack_alloc.integrations.groups import GroupStability

    # TRL's internals are typed loosely and change between versions; checking
    # against them would tie this module to one TRL release.
    base: Any = GRPOTrainer

    class KnapsackGRPOTrainer(base):  # type: ignore[misc]
        """``GRPOTrainer`` that gives each prompt the rollouts a `KnapsackAllocator` plans.

        Parameters
        ----------
        *args, **kwargs
            Passed to ``trl.GRPOTrainer``.
        allocator : KnapsackAllocator
            Plans the rollouts of every generation batch and is updated with
            its rewards (and, as costs, the completion lengths).
        prompt_id_column : str or None, default "prompt_id"
            Dataset column that identifies a prompt across epochs (an int or a
            string). ``None`` hashes the prompt itself.
        allocator_reward : str or None, default None
            Name of the reward function (as in ``reward_func_names``) whose
            rewards update the allocator, e.g. a 0/1 correctness reward next
            to a format reward. ``None`` uses the weighted sum of all reward
            functions.
        token_budget : int or None, default None
            Completion tokens a generation batch may spend, instead of
            ``generation_batch_size`` rollouts. A prompt's rollout then costs
            its tracked mean completion length, so the allocator must use
            ``cost_model="tracked"``, a ``cost_resolution`` (tokens per cost
            unit, e.g. 64) and ``allow_unused_budget=True``. Until any length
            is known, a rollout is
            assumed to cost ``token_budget / generation_batch_size`` tokens.
            The rollouts per step then vary; their total is trimmed to a
            multiple of ``num_processes * steps_per_generation``.
        advantage_clip : float or None, default None
            Clip every advantage to ``[-advantage_clip, advantage_clip]``
            (the Knapsack RL reference run uses 5).
        group_weighting : {"none", "sqrt", "equal"}, default "none"
            Per-prompt loss weighting of groups of unequal size (see
            :class:`~knapsack_alloc.integrations.groups.GroupStability`).
        rounds : int, default 1
            Generate each batch in this many rounds: every round after the
            first is planned with the rewards of the earlier ones (see
            ``docs/rounds.md``), and a prompt's rollouts of all rounds form
            one group. Each round is one more generation call per step.
        first_share : float or None, default None
            Share of the rollouts of the first round (default ``1 / rounds``).


        Notes
        -----
        With the rollout budget (the default), a generation batch spends
        ``generation_batch_size`` rollouts (unique prompts times
        ``num_generations``), the same as the stock trainer.
        ``per_device_train_batch_size * steps_per_generation`` must be a
        multiple of ``num_generations``, so that every process receives a
        whole number of unique prompts. The plan is made on the main process
        and broadcast; every process then updates its copy of the allocator
        with the same gathered rewards.
        """

        num_generations: int  # set by GRPOTrainer.__init__

        def __init__(
            self,
            *args: Any,
            allocator: Any,
            prompt_id_column: str | None = "prompt_id",
            allocator_reward: str | None = None,
            token_budget: float | None = None,
            advantage_clip: float | None = None,
            group_weighting: str = "none",
            rounds: int = 1,
            first_share: float | None = None,
            **kwargs: Any,
        ) -> None:
            from knapsack_alloc.rounds import round_shares

            self.round_shares = round_shares(rounds, first_share)
            self.stability = GroupStability(advantage_clip, group_weighting)
            if token_budget is not None and len(self.round_shares) > 1:
                raise ValueError(
                    f"token_budget with rounds == {rounds}: a step in rounds is planned in "
                    "rollouts; use one of the two."
                )
            if token_budget is not None:
                if isinstance(token_budget, bool) or not isinstance(token_budget, numbers.Real):
                    kind = type(token_budget).__name__
                    raise TypeError(f"token_budget must be a number of tokens, got {kind}.")
                if not token_budget > 0:
                    raise ValueError(f"token_budget == {token_budget!r}, must be > 0 (or None).")
                settings = {
                    name: getattr(allocator, name, None)
                    for name in ("cost_model", "cost_resolution", "allow_unused_budget")
                }
                if (
                    settings["cost_model"] != "tracked"
                    or settings["allow_unused_budget"] is not True
                ):
                    raise ValueError(
                        "token_budget needs an allocator that charges each prompt its tracked "
                        "mean completion length (cost_model='tracked'), rounded to a resolution "
                        "(mean lengths are not whole numbers), and that may leave a few tokens "
                        "unspent (whole rollouts rarely add up to the budget exactly); got "
                        f"{settings}. Create it with KnapsackAllocator(..., "
                        'cost_model="tracked", cost_resolution=64, allow_unused_budget=True).'
                    )
            elif getattr(allocator, "cost_model", None) == "tracked":
                raise ValueError(
                    "The allocator charges tracked costs (cost_model='tracked') but the budget "
                    "counts rollouts; pass token_budget= to budget completion tokens, or create "
                    "the allocator with cost_model='unit'."
                )
            super().__init__(*args, **kwargs)
            self.allocator = allocator
            self.prompt_id_column = prompt_id_column
            self.allocator_reward = allocator_reward
            self.token_budget = token_budget
            self._step_rewards_per_func: torch.Tensor | None = None
            local_rollouts = self.args.per_device_train_batch_size * self.args.steps_per_generation
            if local_rollouts % self.num_generations != 0:
                raise ValueError(
                    "`per_device_train_batch_size * steps_per_generation == "
                    f"{local_rollouts}`, must be a multiple of `num_generations == "
                    f"{self.num_generations}` so that each process gets whole prompts."
                )
            if isinstance(self.train_dataset, IterableDataset):
                raise ValueError(
                    "KnapsackGRPOTrainer needs a map-style `datasets.Dataset`; iterable "
                    "datasets are not supported."
                )
            if allocator_reward is not None and allocator_reward not in self.reward_func_names:
                raise ValueError(
                    f"The 'allocator_reward' parameter must be a str among "
                    f"{set(self.reward_func_names)}. Got {allocator_reward!r} instead."
                )

        def _get_train_sampler(self, dataset: Any = None) -> RepeatSampler:
            return RepeatSampler(
                data_source=self.train_dataset if dataset is None else dataset,
                mini_repeat_count=1,
                batch_size=self.args.generation_batch_size // self.num_generations,
                repeat_count=self.num_iterations * self.args.steps_per_generation,
                shuffle=self.shuffle_dataset,
                seed=self.args.seed,
            )

        def get_train_dataloader(self) -> Any:
            prompts_per_process = (
                self._train_batch_size * self.args.steps_per_generation // self.num_generations
            )
            return self._get_dataloader(
                dataset=self.train_dataset,
                description="Training",
                batch_size=prompts_per_process,
                sampler_fn=self._get_train_sampler,
                is_training=True,
            )

        def _calculate_rewards(self, *args: Any, **kwargs: Any) -> torch.Tensor:
            rewards_per_func: torch.Tensor = super()._calculate_rewards(*args, **kwargs)
            self._step_rewards_per_func = rewards_per_func
            return rewards_per_func

        def _prompt_id(self, row: dict[str, Any]) -> Any:
            if self.prompt_id_column is None:
                return _prompt_key(row["prompt"])
            if self.prompt_id_column not in row:
                raise KeyError(
                    f"Column {self.prompt_id_column!r} is missing from the training batch. Add "
                    "it to the dataset (and keep `remove_unused_columns=False`), or pass "
                    "`prompt_id_column=None` to identify prompts by their text."
                )
            return row[self.prompt_id_column]

        def _plan(self, prompt_ids: list[Any]) -> tuple[Any, dict[str, float]]:
            """Plan one generation batch (main process only): counts and metrics."""
            if self.token_budget is None:
                plan = self.allocator.plan(prompt_ids, len(prompt_ids) * self.num_generations)
                return np.asarray(plan.counts, dtype=np.int64), dict(plan.metrics)
            costs = None
            if self.allocator.history_.mean_cost() is None:
                per_rollout = self.token_budget / (len(prompt_ids) * self.num_generations)
                costs = np.full(len(prompt_ids), per_rollout)
            try:
                plan = self.allocator.plan(prompt_ids, self.token_budget, costs=costs)
            except InvalidArgumentError as error:
                raise ValueError(
                    f"Planning {len(prompt_ids)} prompts with token_budget == "
                    f"{self.token_budget!r} failed: {error} With a token budget, the "
                    "allocator's minimum rollouts (preset 'paper': default_rollouts per prompt "
                    "with fewer than min_history rewards, min_rollouts per other prompt; "
                    "'bayes': min_rollouts) must fit the budget at the prompts' tracked "
                    "completion lengths, which tend to grow during training: leave headroom."
                ) from error
            multiple = self.accelerator.num_processes * self.args.steps_per_generation
            counts = trim_to_multiple(plan.counts, multiple, floor=self.allocator.min_rollouts)
            metrics = dict(plan.metrics)
            metrics["trimmed"] = float(np.sum(plan.counts) - counts.sum())
            return counts, metrics

        @contextlib.contextmanager
        def _one_completion_per_row(self) -> Any:
            # The stock method reads num_generations to ask vLLM for that many
            # completions of every num_generations-th row (server mode) and to group
            # rewards; the expanded batch already repeats each prompt, so each row
            # needs exactly one completion, and the groups are redone afterwards.
            planned = self.num_generations
            self.num_generations = 1
            try:
                yield
            finally:
                self.num_generations = planned

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            if not self.model.training:
                evaluated: dict[str, Any] = super()._generate_and_score_completions(inputs)
                return evaluated
            if len(self.round_shares) > 1:
                return self._generate_in_rounds(inputs)
            rows = gather_object(inputs)
            prompt_ids = [self._prompt_id(row) for row in rows]
            payload: list[Any] = [None]
            if self.accelerator.is_main_process:
                payload = [self._plan(prompt_ids)]
            broadcast_object_list(payload, from_process=0)
            counts, plan_metrics = payload[0]
            rollout_index, group_ids = expand_counts(counts)

            local = rollout_index.size // self.accelerator.num_processes
            start = self.accelerator.process_index * local
            local_rows = [dict(rows[i]) for i in rollout_index[start : start + local]]
            with self._one_completion_per_row():
                output: dict[str, Any] = super()._generate_and_score_completions(local_rows)

            rewards_per_func = self._step_rewards_per_func
            if rewards_per_func is None:
                raise RuntimeError("GRPOTrainer scored completions without `_calculate_rewards`.")
            groups = torch.as_tensor(group_ids)
            advantages, std_is_zero = group_advantages(
                rewards_per_func,
                self.reward_weights,
                groups,
                scale_rewards=self.scale_rewards,
                aggregation=self.multi_objective_aggregation,
            )
            advantages, group_metrics = self.stability.apply(advantages, groups)
            output["advantages"] = advantages[start : start + local]
            # TRL logged advantages and zero-spread counts for groups of one row. Its log is
            # a bounded deque: it holds at most that many of this step's entries.
            logged = self._logs["advantages"]
            for _ in range(min(len(advantages), len(logged))):
                logged.pop()
            logged.extend(advantages.tolist())
            metrics = self._metrics["train"]
            metrics["frac_reward_zero_std"][-1] = std_is_zero.float().mean().item()

            rewards_np = self._allocator_rewards(rewards_per_func)
            lengths = self.accelerator.gather(output["completion_mask"].sum(dim=1))
            lengths_np = lengths.detach().cpu().numpy().astype(np.float64).clip(min=1.0)
            scored = ~np.isnan(rewards_np)
            rollout_ids = [prompt_ids[i] for i in rollout_index[scored]]
            update_metrics = self.allocator.update(
                rollout_ids, rewards_np[scored], costs=lengths_np[scored]
            )
            for prefix, values in (
                ("plan", plan_metrics),
                ("update", update_metrics),
                ("groups", group_metrics),
            ):
                for name, value in values.items():
                    metrics[f"knapsack/{prefix}/{name}"].append(float(value))
            return output

        def _allocator_rewards(self, rewards_per_func: torch.Tensor) -> Any:
            """Rewards that update the allocator, NaN where no function gave one."""
            if self.allocator_reward is None:
                weights = self.reward_weights.to(rewards_per_func.device)
                rewards = (rewards_per_func * weights).nansum(dim=1)
                rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
            else:
                rewards = rewards_per_func[:, self.reward_func_names.index(self.allocator_reward)]
            return rewards.detach().cpu().numpy().astype(np.float64)

        def _generate_in_rounds(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            """Generate the batch in rounds, each planned with the rewards of the earlier ones.

            Round ``r`` generates the plan's rollouts of every process, each
            process an equal contiguous slice, with one stock call; the rows
            of every round are then joined, and the advantages computed over
            each prompt's rollouts of all rounds.
            """
            rows = gather_object(inputs)
            prompt_ids = [self._prompt_id(row) for row in rows]
            processes = self.accelerator.num_processes
            budget = len(rows) * self.num_generations
            step = None
            if self.accelerator.is_main_process:
                shares = process_aligned_shares(budget, self.round_shares, processes)
                step = self.allocator.start_step(prompt_ids, budget, shares=shares)
            metrics = self._metrics["train"]
            logged_before = {name: len(values) for name, values in metrics.items()}
            outputs, rewards, groups, mine, plans = [], [], [], [], []
            offset = 0
            while True:
                payload: list[Any] = [None]
                if step is not None:
                    payload = [self._next_round(step)]
                broadcast_object_list(payload, from_process=0)
                if payload[0] is None:
                    break
                counts, round_metrics = payload[0]
                index = np.repeat(np.arange(len(rows)), counts)
                local = index.size // processes
                start = self.accelerator.process_index * local
                with self._one_completion_per_row():
                    outputs.append(
                        super()._generate_and_score_completions(
                            [dict(rows[i]) for i in index[start : start + local]]
                        )
                    )
                rewards_per_func = self._step_rewards_per_func
                if rewards_per_func is None:
                    raise RuntimeError(
                        "GRPOTrainer scored completions without `_calculate_rewards`."
                    )
                if step is not None:
                    step.record(self._allocator_rewards(rewards_per_func))
                rewards.append(rewards_per_func)
                groups.append(index)
                mine.append(offset + start + np.arange(local))
                plans.append(round_metrics)
                offset += index.size

            output = concat_round_outputs(outputs, self._tokenizer.pad_token_id)
            rewards_per_func = torch.cat(rewards)
            group_ids = np.concatenate(groups)
            advantages, std_is_zero = group_advantages(
                rewards_per_func,
                self.reward_weights,
                torch.as_tensor(group_ids),
                scale_rewards=self.scale_rewards,
                aggregation=self.multi_objective_aggregation,
            )
            advantages, group_metrics = self.stability.apply(advantages, torch.as_tensor(group_ids))
            output["advantages"] = advantages[torch.as_tensor(np.concatenate(mine))]
            self._log_rounds(metrics, logged_before, [g.size for g in groups], rewards_per_func,
                             advantages, std_is_zero)  # fmt: skip

            allocator_rewards = self._allocator_rewards(rewards_per_func)
            scored = ~np.isnan(allocator_rewards)
            if step is not None:
                update_metrics = step.finish()
            else:
                rollout_ids = [prompt_ids[i] for i in group_ids[scored]]
                update_metrics = self.allocator.update(rollout_ids, allocator_rewards[scored])
            for name, value in plans[0].items():
                metrics[f"knapsack/plan/{name}"].append(float(value))
            for r, plan in enumerate(plans[1:], start=1):
                for name in ("rollouts", "prompts_open", "pred_prompts_with_gradient"):
                    metrics[f"knapsack/round{r}/{name}"].append(float(plan[name]))
            for name in ("rollouts", "prompts", "new_prompts", "tracked_prompts", "success_rate",
                         "effective_ratio", "prompts_with_gradient", "prompts_all_correct",
                         "prompts_all_wrong"):  # fmt: skip
                metrics[f"knapsack/update/{name}"].append(float(update_metrics[name]))
            for name, value in group_metrics.items():
                metrics[f"knapsack/groups/{name}"].append(float(value))
            return output

        def _next_round(self, step: Any) -> tuple[Any, dict[str, float]] | None:
            """Plan the step's next round (main process), or None when all are done."""
            if step.rounds_planned == step.rounds:
                return None
            plan = step.plan_round()
            return np.asarray(plan.counts, dtype=np.int64), dict(plan.metrics)

        def _log_rounds(
            self,
            metrics: Any,
            logged_before: dict[str, int],
            sizes: list[int],
            rewards_per_func: torch.Tensor,
            advantages: torch.Tensor,
            std_is_zero: torch.Tensor,
        ) -> None:
            """Make the step's logs describe the whole step, not each round."""
            for name, values in metrics.items():
                added = len(values) - logged_before.get(name, 0)
                if added < 2:
                    continue
                per_round = values[-added:]
                del values[-added:]
                if "max" in name:
                    values.append(max(per_round))
                elif "min" in name:
                    values.append(min(per_round))
                elif added == len(sizes):  # a mean per round: weigh it by the round's rollouts
                    values.append(float(np.average(per_round, weights=sizes)))
                else:
                    values.append(float(np.mean(per_round)))
            rewards = (rewards_per_func * self.reward_weights.to(rewards_per_func.device)).nansum(1)
            rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
            metrics["reward"][-1] = torch.nanmean(rewards).item()
            metrics["reward_std"][-1] = nanstd(rewards).item()
            for i, name in enumerate(self.reward_func_names):
                metrics[f"rewards/{name}/mean"][-1] = torch.nanmean(rewards_per_func[:, i]).item()
                metrics[f"rewards/{name}/std"][-1] = nanstd(rewards_per_func[:, i]).item()
            metrics["frac_reward_zero_std"][-1] = std_is_zero.float().mean().item()
            logged = self._logs["advantages"]
            for _ in range(min(len(advantages), len(logged))):
                logged.pop()
            logged.extend(advantages.tolist())

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            super()._save_checkpoint(model, trial)
            if self.args.should_save:
                folder = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
                path = os.path.join(self._get_output_dir(trial=trial), folder, ALLOCATOR_STATE_FILE)
                self.allocator.save(path)

        def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
            super()._load_optimizer_and_scheduler(checkpoint)
            if checkpoint is not None:
                path = os.path.join(checkpoint, ALLOCATOR_STATE_FILE)
                if os.path.exists(path):
                    self.allocator.load_state_dict(type(self.allocator).load(path).state_dict())

    KnapsackGRPOTrainer.__module__ = __name__
    return KnapsackGRPOTrainer

"""One training run: a policy, a seed, real GRPO through TRL, measured after every step."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from benchmarks.learning.design import SERIES, Policy, Settings, build_model
from benchmarks.learning.task import Population, Reward, build_tokenizer, success_rates
from numpy.typing import NDArray
from transformers import TrainerCallback

from knapsack_alloc.allocator import KnapsackAllocator


class RecordingAllocator(KnapsackAllocator):
    """The library's allocator, keeping every plan and the seconds spent in it."""

    def __init__(self, preset: str) -> None:
        super().__init__(preset)
        self.plans: list[tuple[NDArray[np.int64], NDArray[np.int64], int]] = []
        self.seconds = 0.0

    def plan(self, prompt_ids: Any, budget: Any, costs: Any = None) -> Any:
        started = time.perf_counter()
        result = super().plan(prompt_ids, budget, costs)
        self.seconds += time.perf_counter() - started
        self.plans.append((np.asarray(prompt_ids, dtype=np.int64), result.counts.copy(), budget))
        return result

    def update(self, rollout_prompt_ids: Any, rewards: Any, costs: Any = None) -> Any:
        started = time.perf_counter()
        metrics = super().update(rollout_prompt_ids, rewards, costs)
        self.seconds += time.perf_counter() - started
        return metrics


@dataclass
class RunRecord:
    """What one run measured.

    Attributes
    ----------
    policy, seed
        Which run.
    initial_success, final_success : numpy.ndarray
        Exact success of every prompt (training prompts first, then held
        out) before the first step and after the last.
    batches : list of numpy.ndarray
        The unique prompt ids of each step's batch, in batch order.
    series : dict of str to list of float
        One value per step for every name in `SERIES`. ``rewards``,
        ``expected_rewards`` and ``reward_variance`` are the step's sums over
        rollouts of the reward, of its exact success probability when it was
        sampled, and of ``p (1 - p)``: a check that the exact success rates
        are the sampling probabilities. ``allocator_s`` is the time spent in
        the allocator's ``plan`` and ``update``. ``advantage_abs_max`` is the
        largest absolute advantage the step trained on (after clipping and
        weighting), ``advantage_abs_max_unclipped`` the same before them, and
        ``advantages_clipped`` the share of rollouts whose advantage was clipped.
    set_sizes : list of int
        Answer-set size of every prompt (training prompts first).
    setup_s : float
        Seconds to build the trainer.
    """

    policy: str
    seed: int
    initial_success: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    final_success: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    batches: list[NDArray[np.int64]] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in SERIES})
    set_sizes: list[int] = field(default_factory=list)
    setup_s: float = 0.0

    @property
    def success_z(self) -> float:
        """``(rewards - expected) / sd``: near 0 when the exact rates are the sampling rates."""
        excess = sum(self.series["rewards"]) - sum(self.series["expected_rewards"])
        return float(excess / max(sum(self.series["reward_variance"]), 1e-12) ** 0.5)


class BudgetError(AssertionError):
    """A run spent a different number of rollouts than its policy's budget."""


def _groups(ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Unique prompt ids in order of first appearance, and the rollouts of each."""
    unique, first, counts = np.unique(ids, return_index=True, return_counts=True)
    order = np.argsort(first)
    return unique[order], counts[order]


def _nonzero_probability(counts: NDArray[np.int64], p: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 - p**counts - (1.0 - p) ** counts, dtype=np.float64)


class _Measure(TrainerCallback):  # type: ignore[misc]
    """Trainer callback: after every optimiser step, read the step's rollouts and the new rates."""

    def __init__(
        self,
        record: RunRecord,
        reward: Reward,
        population: Population,
        tokenizer: Any,
        budget: int,
        allocator: RecordingAllocator | None,
        trainer: Any,
    ) -> None:
        self.record, self.reward, self.population = record, reward, population
        self.tokenizer, self.budget, self.allocator = tokenizer, budget, allocator
        self.trainer = trainer
        self.allocator_seconds = 0.0
        self.before = record.initial_success
        self.started = 0.0

    def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any, **kwargs: Any) -> None:
        wall = time.perf_counter() - self.started
        if len(self.reward.calls) != state.global_step:
            raise RuntimeError(
                f"step {state.global_step} scored {len(self.reward.calls)} generation batches; "
                "the harness needs exactly one per optimiser step."
            )
        ids, rewards = self.reward.calls[-1]
        if ids.size != self.budget:
            raise BudgetError(
                f"{self.record.policy} spent {ids.size} rollouts at step {state.global_step}, "
                f"its budget is {self.budget}."
            )
        prompts, counts = _groups(ids)
        mixed = np.array([np.ptp(rewards[ids == pid]) > 0 for pid in prompts])
        p_before = self.before[prompts]
        after, special = success_rates(model, self.tokenizer, self.population)
        train = self.population.train
        in_batch = np.zeros(train, dtype=np.bool_)
        in_batch[prompts] = True
        delta = after[:train] - self.before[:train]
        p_rollouts = self.before[ids]
        spent = 0.0 if self.allocator is None else self.allocator.seconds
        advantages = self._advantages(ids.size)
        row = {
            "rollouts": float(ids.size),
            "effective_ratio": float(counts[mixed].sum() / ids.size),
            "expected_effective_ratio": float(
                counts @ _nonzero_probability(counts, p_before) / ids.size
            ),
            "prompts_with_gradient": float(mixed.sum()),
            "largest_group": float(counts.max()),
            "mean_success": float(after[:train].mean()),
            "solved": float((after[:train] > 0.5).sum()),
            "heldout_success": float(after[train:].mean()) if after.size > train else np.nan,
            "special_mass": float(special.mean()),
            "batch_delta": float(delta[in_batch].mean()),
            "offbatch_delta": float(delta[~in_batch].mean()) if (~in_batch).any() else np.nan,
            "rewards": float(rewards.sum()),
            "expected_rewards": float(p_rollouts.sum()),
            "reward_variance": float((p_rollouts * (1.0 - p_rollouts)).sum()),
            "allocator_s": spent - self.allocator_seconds,
            "wall_s": wall,
            **advantages,
        }
        for name, value in row.items():
            self.record.series[name].append(value)
        # The whole batch: a knapsack plan may give a prompt of the batch no rollout.
        self.record.batches.append(
            prompts if self.allocator is None else self.allocator.plans[-1][0]
        )
        self.before = after
        self.allocator_seconds = spent

    def _advantages(self, rollouts: int) -> dict[str, float]:
        """The step's largest absolute advantage, after and before the adapter's clip.

        Read from the trainer's own logs of the step (TRL keeps the advantages
        it trained on; ``KnapsackGRPOTrainer`` logs them after clipping and
        weighting, and its ``knapsack/groups`` metrics before), so nothing is
        recomputed here.
        """
        trained = np.abs(np.asarray(self.trainer._logs["advantages"], dtype=np.float64))
        if trained.size != rollouts:
            raise RuntimeError(
                f"the trainer logged {trained.size} advantages for a step of {rollouts} rollouts."
            )
        largest = float(trained.max())
        if self.allocator is None:  # stock TRL: nothing is clipped
            return {
                "advantage_abs_max": largest,
                "advantage_abs_max_unclipped": largest,
                "advantages_clipped": 0.0,
            }
        metrics = self.trainer._metrics["train"]
        return {
            "advantage_abs_max": largest,
            "advantage_abs_max_unclipped": metrics["knapsack/groups/advantage_abs_max"][-1],
            "advantages_clipped": metrics["knapsack/groups/advantages_clipped"][-1],
        }


def _config(settings: Settings, policy: Policy, seed: int, output_dir: str) -> Any:
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=output_dir,
        per_device_train_batch_size=policy.budget(settings),
        num_generations=policy.group_size,
        max_completion_length=1,
        max_steps=settings.steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",
        temperature=1.0,
        bf16=False,
        use_cpu=settings.device == "cpu",
        report_to="none",
        logging_steps=settings.steps,
        save_strategy="no",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
    )


def train(settings: Settings, policy: Policy, seed: int, population: Population) -> RunRecord:
    """Train one run and return its measurements.

    The model's initial weights, the prompts, the batches and TRL's seed
    depend only on ``seed``, so every policy starts from the same state and
    sees the same prompts in the same steps.

    Raises
    ------
    BudgetError
        If a step spent a different number of rollouts than the policy's budget.
    """
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    from knapsack_alloc.integrations.trl import KnapsackGRPOTrainer

    started = time.perf_counter()
    tokenizer = build_tokenizer()
    model = build_model(
        settings, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed
    )
    record = RunRecord(policy.name, seed, set_sizes=population.sizes.tolist())
    record.initial_success = success_rates(model, tokenizer, population)[0]
    reward = Reward()
    with tempfile.TemporaryDirectory(prefix="knapsack-learning-") as scratch:
        kwargs: dict[str, Any] = {
            "model": model,
            "reward_funcs": reward,
            "args": _config(settings, policy, seed, scratch),
            "train_dataset": population.dataset(),
            "processing_class": tokenizer,
        }
        allocator = None
        if policy.preset is None:
            trainer = GRPOTrainer(**kwargs)
        else:
            allocator = RecordingAllocator(policy.preset)
            trainer = KnapsackGRPOTrainer(
                **kwargs,
                allocator=allocator,
                advantage_clip=policy.advantage_clip,
                group_weighting=policy.group_weighting,
            )
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(
            _Measure(
                record, reward, population, tokenizer, policy.budget(settings), allocator, trainer
            )
        )
        record.setup_s = time.perf_counter() - started
        trainer.train()
    record.final_success = success_rates(model, tokenizer, population)[0]
    _check_batches(reward, allocator, policy, settings)
    return record


def _check_batches(
    reward: Reward,
    allocator: RecordingAllocator | None,
    policy: Policy,
    settings: Settings,
) -> None:
    """Every step spent the budget on the planned groups (or on equal groups for uniform)."""
    budget = policy.budget(settings)
    for step, (ids, _) in enumerate(reward.calls, 1):
        if allocator is None:
            _, counts = _groups(ids)
            if set(counts.tolist()) != {policy.group_size}:
                raise BudgetError(f"{policy.name}: unequal groups at step {step}: {counts}.")
            continue
        planned_ids, counts, planned_budget = allocator.plans[step - 1]
        if planned_budget != budget or int(counts.sum()) != budget:
            raise BudgetError(
                f"{policy.name}: step {step} planned {int(counts.sum())} rollouts for a "
                f"budget of {planned_budget}; the policy's budget is {budget}."
            )
        got = dict(zip(*_groups(ids), strict=True))
        want = {int(p): int(n) for p, n in zip(planned_ids, counts, strict=True) if n > 0}
        if got != want:
            raise BudgetError(f"{policy.name}: step {step} did not follow its plan.")

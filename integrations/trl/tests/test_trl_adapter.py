"""The TRL adapter against the real ``trl.GRPOTrainer`` on CPU.

A random two-layer Llama (hidden size 32) and a character-level tokenizer are
built locally by ``examples/trl_grpo.py``; its synthetic task has prompts of
graded difficulty. The same rollout budget is trained once with stock
(uniform) GRPO and once with ``KnapsackGRPOTrainer``.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")

from trl_shared import (  # noqa: E402
    BUDGET,
    DEPRECATIONS,
    DIFFICULTY,
    NUM_GENERATIONS,
    PROMPTS_PER_STEP,
    STEPS,
    AdvantageRecorder,
    Recorder,
    RecordingAllocator,
    example,
    grpo_reference,
    train,
)

from knapsack_alloc.allocator import KnapsackAllocator  # noqa: E402
from knapsack_alloc.integrations.trl import (  # noqa: E402
    ALLOCATOR_STATE_FILE,
    KnapsackGRPOTrainer,
    group_advantages,
)

pytestmark = pytest.mark.filterwarnings(DEPRECATIONS)


@dataclass
class Run:
    """One training run and what was recorded during it."""

    trainer: Any
    reward: Recorder
    allocator: Any = None
    plans: list = field(default_factory=list)
    updates: list = field(default_factory=list)


@pytest.fixture(scope="module")
def knapsack_run(tmp_path_factory):
    reward = Recorder()
    allocator = RecordingAllocator(preset="paper")
    trainer = train(
        AdvantageRecorder,
        reward,
        tmp_path_factory.mktemp("knapsack"),
        allocator=allocator,
        config={"save_strategy": "steps", "save_steps": STEPS},
    )
    # Snapshots: later tests call plan() on the same allocator.
    return Run(trainer, reward, allocator, list(allocator.plans), list(allocator.updates))


@pytest.fixture(scope="module")
def uniform_run(tmp_path_factory):
    reward = Recorder()
    return Run(train(trl.GRPOTrainer, reward, tmp_path_factory.mktemp("uniform")), reward)


def test_group_sizes_follow_the_plan_each_step(knapsack_run):
    assert len(knapsack_run.plans) == STEPS
    assert len(knapsack_run.reward.calls) == STEPS
    steps = zip(knapsack_run.plans, knapsack_run.reward.calls, strict=True)
    for (ids, budget, plan), (rollout_ids, _, _) in steps:
        assert budget == BUDGET
        assert len(set(ids)) == PROMPTS_PER_STEP  # the dataloader yields each prompt once
        assert int(np.sum(plan.counts)) == BUDGET
        planned = {pid: int(n) for pid, n in zip(ids, plan.counts, strict=True) if n > 0}
        assert Counter(rollout_ids) == planned
    # After the first epoch the plans are no longer uniform: the allocator acted.
    later = [
        plan.counts for _, _, plan in knapsack_run.plans[len(DIFFICULTY) // PROMPTS_PER_STEP :]
    ]
    assert any(len(set(np.asarray(counts).tolist())) > 1 for counts in later)


def test_advantages_are_normalised_per_group(knapsack_run):
    recorded = knapsack_run.trainer.recorded_advantages
    assert len(recorded) == STEPS
    for (rollout_ids, rewards, _), advantages in zip(
        knapsack_run.reward.calls, recorded, strict=True
    ):
        expected = grpo_reference(rewards, rollout_ids)
        np.testing.assert_allclose(advantages, expected, rtol=1e-5, atol=1e-5)


def test_allocator_state_updates_with_each_steps_rewards(knapsack_run):
    assert len(knapsack_run.updates) == STEPS
    replay = KnapsackAllocator(preset="paper")
    for (ids, rewards, costs), (rollout_ids, scored, lengths) in zip(
        knapsack_run.updates, knapsack_run.reward.calls, strict=True
    ):
        assert ids == rollout_ids
        np.testing.assert_array_equal(rewards, scored)
        # completion lengths ride along as costs (an EOS-only completion counts 1 token)
        np.testing.assert_array_equal(costs, np.maximum(lengths, 1))
        replay.update(rollout_ids, scored)
    every_prompt = list(range(len(DIFFICULTY)))
    np.testing.assert_array_equal(
        replay.plan(every_prompt, 8 * len(every_prompt)).counts,
        knapsack_run.allocator.plan(every_prompt, 8 * len(every_prompt)).counts,
    )


def test_metrics_are_logged(knapsack_run):
    logged = knapsack_run.trainer.state.log_history[0]
    assert any(name.startswith("knapsack/plan/") for name in logged)
    assert any(name.startswith("knapsack/update/") for name in logged)


def test_uniform_and_knapsack_spend_the_same_budget(knapsack_run, uniform_run):
    pairs = zip(uniform_run.reward.calls, knapsack_run.reward.calls, strict=True)
    for (uniform_ids, _, _), (knapsack_ids, _, _) in pairs:
        assert len(uniform_ids) == len(knapsack_ids) == BUDGET
        assert set(Counter(uniform_ids).values()) == {NUM_GENERATIONS}
    for run in (uniform_run, knapsack_run):
        ratio = example.effective_gradient_ratio(run.trainer.state.log_history)
        assert 0.0 <= ratio <= 1.0


def test_group_advantages_match_trl_for_equal_groups(uniform_run):
    trainer, reward = uniform_run.trainer, uniform_run.reward
    rewards = torch.tensor(np.concatenate([r for _, r, _ in reward.calls]), dtype=torch.float32)
    groups = torch.arange(rewards.numel()) // NUM_GENERATIONS
    advantages, std_is_zero = group_advantages(rewards[:, None], torch.ones(1), groups)
    trl_logged = [
        entry["frac_reward_zero_std"]
        for entry in trainer.state.log_history
        if "frac_reward_zero_std" in entry
    ]
    per_step = std_is_zero.float().view(len(reward.calls), -1).mean(dim=1)
    np.testing.assert_allclose(per_step.numpy(), trl_logged, rtol=1e-6)
    grouped = rewards.view(-1, NUM_GENERATIONS)
    stock = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)
    np.testing.assert_allclose(advantages.numpy(), stock.flatten().numpy(), rtol=1e-5, atol=1e-6)


def test_allocator_state_rides_in_the_checkpoint(knapsack_run, tmp_path):
    checkpoint = Path(knapsack_run.trainer.args.output_dir) / f"checkpoint-{STEPS}"
    assert (checkpoint / ALLOCATOR_STATE_FILE).is_file()
    resumed = KnapsackAllocator(preset="paper")
    tokenizer = example.build_tokenizer()
    again = KnapsackGRPOTrainer(
        model=example.build_model(tokenizer),
        reward_funcs=example.first_letter_reward,
        args=example.make_config(str(tmp_path), STEPS, PROMPTS_PER_STEP),
        train_dataset=example.build_dataset(DIFFICULTY),
        processing_class=tokenizer,
        allocator=resumed,
    )
    again.train(
        resume_from_checkpoint=str(checkpoint)
    )  # already at max_steps: loads, trains nothing
    every_prompt = list(range(len(DIFFICULTY)))
    np.testing.assert_array_equal(
        resumed.plan(every_prompt, 8 * len(every_prompt)).counts,
        knapsack_run.allocator.plan(every_prompt, 8 * len(every_prompt)).counts,
    )


def test_unknown_allocator_reward_is_rejected(tmp_path):
    tokenizer = example.build_tokenizer()
    with pytest.raises(ValueError, match="The 'allocator_reward' parameter must be a str among"):
        KnapsackGRPOTrainer(
            model=example.build_model(tokenizer),
            reward_funcs=example.first_letter_reward,
            args=example.make_config(str(tmp_path), 1, PROMPTS_PER_STEP),
            train_dataset=example.build_dataset(DIFFICULTY),
            processing_class=tokenizer,
            allocator=KnapsackAllocator(preset="paper"),
            allocator_reward="nope",
        )


def test_prompts_without_an_id_column_are_identified_by_their_text(tmp_path):
    tokenizer = example.build_tokenizer()
    trainer = KnapsackGRPOTrainer(
        model=example.build_model(tokenizer),
        reward_funcs=example.first_letter_reward,
        args=example.make_config(str(tmp_path), 1, PROMPTS_PER_STEP),
        train_dataset=example.build_dataset(DIFFICULTY),
        processing_class=tokenizer,
        allocator=KnapsackAllocator(preset="paper"),
        prompt_id_column=None,
    )
    chat = [{"role": "user", "content": "a:"}]
    assert trainer._prompt_id({"prompt": "a:", "k": 1}) == trainer._prompt_id({"prompt": "a:"})
    assert trainer._prompt_id({"prompt": "a:"}) != trainer._prompt_id({"prompt": "b:"})
    assert trainer._prompt_id({"prompt": chat}) == trainer._prompt_id({"prompt": list(chat)})


def test_module_imports_without_trl():
    code = (
        "import sys; sys.modules['trl'] = None; sys.modules['torch'] = None\n"
        "import knapsack_alloc.integrations.trl as adapter\n"
        "try:\n    adapter.KnapsackGRPOTrainer\nexcept ImportError:\n    print('lazy')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "lazy"

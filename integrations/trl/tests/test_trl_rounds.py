"""The TRL adapter generating each batch in rounds, against the real ``trl.GRPOTrainer`` on CPU.

The same tiny model and task as ``test_trl_adapter.py`` (built by
``examples/trl_grpo.py``). With ``rounds=2`` the stock generation runs twice
per step; what is checked is how the rounds are assembled into one batch:
every prompt's rollouts of both rounds form one group for the advantages, the
second round follows a plan made with the first round's rewards, and the
allocator is updated once per step with every round's rewards.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")

from trl_shared import (  # noqa: E402
    BUDGET,
    DEPRECATIONS,
    DIFFICULTY,
    PROMPTS_PER_STEP,
    STEPS,
    example,
)

from knapsack_alloc.allocator import KnapsackAllocator  # noqa: E402
from knapsack_alloc.integrations.trl import (  # noqa: E402
    KnapsackGRPOTrainer,
    concat_round_outputs,
    process_aligned_shares,
)

pytestmark = pytest.mark.filterwarnings(DEPRECATIONS)


class RecordingAllocator(KnapsackAllocator):
    """The real allocator, keeping every step it starts and every update it gets."""

    def start_step(self, prompt_ids, budget, **kwargs):
        step = super().start_step(prompt_ids, budget, **kwargs)
        self.steps = [*getattr(self, "steps", []), (list(prompt_ids), budget, step)]
        original = step.plan_round
        step.plans = []

        def plan_round():
            plan = original()
            step.plans.append(plan)
            return plan

        step.plan_round = plan_round
        return step

    def update(self, rollout_prompt_ids, rewards, *args, **kwargs):
        self.updates = [
            *getattr(self, "updates", []),
            (list(rollout_prompt_ids), np.asarray(rewards, dtype=float)),
        ]
        return super().update(rollout_prompt_ids, rewards, *args, **kwargs)


class Recorder:
    """Reward function that records which prompt each scored rollout belongs to."""

    def __init__(self):
        self.__name__ = "first_letter_reward"
        self.calls = []

    def __call__(self, completions, k, prompt_id, **kwargs):
        rewards = example.first_letter_reward(completions, k)
        self.calls.append((list(prompt_id), np.asarray(rewards)))
        return rewards


class OutputRecorder(KnapsackGRPOTrainer):
    """Keeps the batch the trainer hands to the loss."""

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        self.recorded = [*getattr(self, "recorded", []), output]
        return output


@pytest.fixture(scope="module")
def rounds_run(tmp_path_factory):
    reward = Recorder()
    allocator = RecordingAllocator(preset="bayes")
    tokenizer = example.build_tokenizer()
    trainer = OutputRecorder(
        model=example.build_model(tokenizer),
        reward_funcs=reward,
        args=example.make_config(str(tmp_path_factory.mktemp("rounds")), STEPS, PROMPTS_PER_STEP),
        train_dataset=example.build_dataset(DIFFICULTY),
        processing_class=tokenizer,
        allocator=allocator,
        rounds=2,
    )
    trainer.train()
    return trainer, reward, allocator


def test_each_step_generates_its_budget_in_two_rounds(rounds_run):
    _, reward, allocator = rounds_run
    assert len(allocator.steps) == STEPS
    assert len(reward.calls) == 2 * STEPS  # one generation (and scoring) call per round
    for s, (ids, budget, step) in enumerate(allocator.steps):
        assert budget == BUDGET and len(set(ids)) == PROMPTS_PER_STEP
        first, second = step.plans
        assert int(first.counts.sum()) == int(second.counts.sum()) == BUDGET // 2
        for plan, (rollout_ids, _) in zip(step.plans, reward.calls[2 * s : 2 * s + 2], strict=True):
            planned = {pid: int(n) for pid, n in zip(ids, plan.counts, strict=True) if n > 0}
            assert Counter(rollout_ids) == planned


def test_second_round_follows_the_first_rounds_rewards(rounds_run):
    _, reward, allocator = rounds_run
    for s, (ids, _, step) in enumerate(allocator.steps):
        second = step.plans[1]
        rollout_ids, rewards = reward.calls[2 * s]
        for i, pid in enumerate(ids):
            mine = rewards[np.array(rollout_ids) == pid]
            mixed = 0 < mine.sum() < mine.size
            assert second.open[i] == (not mixed)
        # A group that already has a gradient gets nothing more while an open one can take it.
        if second.open.any():
            assert (second.counts[~second.open] == 0).all()


def test_advantages_are_normalised_over_each_prompts_rollouts_of_both_rounds(rounds_run):
    trainer, reward, _ = rounds_run
    assert len(trainer.recorded) == STEPS
    for s, output in enumerate(trainer.recorded):
        ids = reward.calls[2 * s][0] + reward.calls[2 * s + 1][0]
        rewards = np.concatenate([reward.calls[2 * s][1], reward.calls[2 * s + 1][1]])
        expected = np.zeros(rewards.size)
        for pid in set(ids):
            members = np.array([rid == pid for rid in ids])
            group = rewards[members]
            if group.size > 1:
                expected[members] = (group - group.mean()) / (group.std(ddof=1) + 1e-4)
        advantages = output["advantages"].detach().cpu().numpy()
        np.testing.assert_allclose(advantages, expected, rtol=1e-5, atol=1e-5)


def test_rounds_are_joined_into_one_padded_batch(rounds_run):
    trainer, reward, _ = rounds_run
    pad = trainer.processing_class.pad_token_id
    for s, output in enumerate(trainer.recorded):
        rows = len(reward.calls[2 * s][0]) + len(reward.calls[2 * s + 1][0])
        for key in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask"):
            assert output[key].shape[0] == rows == BUDGET
        mask = output["completion_mask"].bool()
        assert int(output["num_items_in_batch"]) == int(mask.sum())
        # Completion padding is on the right, prompt padding on the left.
        assert (output["completion_ids"][~mask] == pad).all()
        prompt_mask = output["prompt_mask"].bool()
        assert (output["prompt_ids"][~prompt_mask] == pad).all()
        assert prompt_mask[:, -1].all()


def test_allocator_is_updated_once_per_step_with_both_rounds(rounds_run):
    _, reward, allocator = rounds_run
    assert len(allocator.updates) == STEPS
    replay = KnapsackAllocator(preset="bayes")
    for s, (ids, rewards) in enumerate(allocator.updates):
        first, second = reward.calls[2 * s], reward.calls[2 * s + 1]
        assert ids == first[0] + second[0]
        np.testing.assert_array_equal(rewards, np.concatenate([first[1], second[1]]))
        replay.update(ids, rewards)
    every = list(range(len(DIFFICULTY)))
    np.testing.assert_array_equal(
        replay.plan(every, 8 * len(every)).counts, allocator.plan(every, 8 * len(every)).counts
    )


def test_logs_describe_the_whole_step(rounds_run):
    trainer, reward, _ = rounds_run
    logged = [e for e in trainer.state.log_history if "frac_reward_zero_std" in e]
    assert len(logged) == STEPS
    for s, entry in enumerate(logged):
        ids = reward.calls[2 * s][0] + reward.calls[2 * s + 1][0]
        rewards = np.concatenate([reward.calls[2 * s][1], reward.calls[2 * s + 1][1]])
        flat = [rewards[np.array(ids) == pid] for pid in ids]
        zero = np.mean([group.std() == 0 for group in flat])
        assert entry["frac_reward_zero_std"] == pytest.approx(zero)
        assert entry["reward"] == pytest.approx(rewards.mean())
        assert entry["knapsack/round1/rollouts"] == BUDGET // 2


def test_process_aligned_shares():
    assert process_aligned_shares(32, [0.5, 0.5], 1) == [0.5, 0.5]
    assert process_aligned_shares(32, [0.3, 0.7], 4) == [0.25, 0.75]
    assert process_aligned_shares(16, [0.05, 0.95], 4) == [1.0]  # a round of no rollout merges
    with pytest.raises(ValueError, match="not a multiple of 3 processes"):
        process_aligned_shares(32, [0.5, 0.5], 3)


def test_concat_round_outputs_pads_each_field_on_its_side():
    first = {
        "prompt_ids": torch.tensor([[5, 6]]),
        "prompt_mask": torch.tensor([[1, 1]]),
        "completion_ids": torch.tensor([[7]]),
        "completion_mask": torch.tensor([[1]]),
        "old_per_token_logps": torch.tensor([[-0.5]]),
        "advantages": torch.tensor([9.0]),
        "num_items_in_batch": torch.tensor(3),
    }
    second = {
        "prompt_ids": torch.tensor([[4, 5, 6]]),
        "prompt_mask": torch.tensor([[1, 1, 1]]),
        "completion_ids": torch.tensor([[7, 8, 9]]),
        "completion_mask": torch.tensor([[1, 1, 1]]),
        "old_per_token_logps": torch.tensor([[-0.1, -0.2, -0.3]]),
        "advantages": torch.tensor([9.0]),
        "num_items_in_batch": torch.tensor(4),
    }
    merged = concat_round_outputs([first, second], pad_token_id=0)
    assert merged["prompt_ids"].tolist() == [[0, 5, 6], [4, 5, 6]]
    assert merged["prompt_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    assert merged["completion_ids"].tolist() == [[7, 0, 0], [7, 8, 9]]
    assert merged["completion_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    assert merged["old_per_token_logps"][0].tolist() == pytest.approx([-0.5, 0.0, 0.0])
    assert int(merged["num_items_in_batch"]) == 7
    assert "advantages" not in merged
    with pytest.raises(ValueError, match="'pixel_values'"):
        concat_round_outputs([{**first, "pixel_values": torch.zeros(1)}], pad_token_id=0)


def test_bad_rounds_are_refused_before_training(tmp_path):
    tokenizer = example.build_tokenizer()
    with pytest.raises(ValueError, match="first_share"):
        KnapsackGRPOTrainer(
            model=example.build_model(tokenizer),
            reward_funcs=example.first_letter_reward,
            args=example.make_config(str(tmp_path), 1, PROMPTS_PER_STEP),
            train_dataset=example.build_dataset(DIFFICULTY),
            processing_class=tokenizer,
            allocator=KnapsackAllocator(preset="bayes"),
            rounds=2,
            first_share=1.0,
        )

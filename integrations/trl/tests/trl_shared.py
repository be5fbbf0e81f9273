"""What the TRL adapter tests share: the example's task, recorders, a training helper."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

os.environ["HF_HUB_OFFLINE"] = "1"

from knapsack_alloc.allocator import KnapsackAllocator
from knapsack_alloc.integrations.trl import KnapsackGRPOTrainer

ROOT = Path(__file__).resolve().parents[3]

DIFFICULTY = (0, 1, 2, 4, 8, 12, 16, 16)  # 8 prompts, from never solved to mostly solved
PROMPTS_PER_STEP = 4
NUM_GENERATIONS = 8
BUDGET = PROMPTS_PER_STEP * NUM_GENERATIONS
STEPS = 4  # two epochs: every prompt is seen, then planned from its rewards

# transformers 5 deprecates names TRL 1.16 still calls; the repository makes warnings errors.
DEPRECATIONS = (
    "ignore:`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated:FutureWarning"
)


def _load_example():
    spec = importlib.util.spec_from_file_location(
        "trl_grpo_example", ROOT / "examples" / "trl_grpo.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()


class AdvantageRecorder(KnapsackGRPOTrainer):
    """Keeps the advantages the trainer hands to the loss."""

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        self.recorded_advantages = [
            *getattr(self, "recorded_advantages", []),
            output["advantages"].detach().cpu().numpy(),
        ]
        return output


class RecordingAllocator(KnapsackAllocator):
    """The real allocator, keeping every plan and update it was asked for."""

    def plan(self, prompt_ids, budget, *args, **kwargs):
        result = super().plan(prompt_ids, budget, *args, **kwargs)
        self.plans = [*getattr(self, "plans", []), (list(prompt_ids), budget, result)]
        return result

    def update(self, rollout_prompt_ids, rewards, *args, **kwargs):
        costs = kwargs.get("costs", args[0] if args else None)
        self.updates = [
            *getattr(self, "updates", []),
            (
                list(rollout_prompt_ids),
                np.asarray(rewards, dtype=float),
                None if costs is None else np.asarray(costs, dtype=float),
            ),
        ]
        return super().update(rollout_prompt_ids, rewards, *args, **kwargs)


class Recorder:
    """Reward function that also records the prompt and completion length of each rollout."""

    def __init__(self):
        self.__name__ = "first_letter_reward"
        self.calls = []

    def __call__(self, completions, k, prompt_id, completion_ids, **kwargs):
        rewards = example.first_letter_reward(completions, k)
        lengths = np.array([len(ids) for ids in completion_ids], dtype=float)
        self.calls.append((list(prompt_id), np.asarray(rewards), lengths))
        return rewards


def train(trainer_class, reward, output_dir, config=None, **kwargs):
    """Build the example's model, data and config, train ``STEPS`` steps, return the trainer."""
    tokenizer = example.build_tokenizer()
    trainer = trainer_class(
        model=example.build_model(tokenizer),
        reward_funcs=reward,
        args=example.make_config(str(output_dir), STEPS, PROMPTS_PER_STEP, **(config or {})),
        train_dataset=example.build_dataset(DIFFICULTY),
        processing_class=tokenizer,
        **kwargs,
    )
    trainer.train()
    return trainer


def grpo_reference(rewards, rollout_ids):
    """GRPO advantage of every rollout from its own group, written out (TRL's 1e-4 epsilon)."""
    expected = np.zeros(len(rewards))
    for pid in set(rollout_ids):
        members = np.array([rid == pid for rid in rollout_ids])
        group = rewards[members]
        if group.size > 1:
            expected[members] = (group - group.mean()) / (group.std(ddof=1) + 1e-4)
    return expected

"""Knapsack allocation with OpenRLHF: per-prompt sample counts and per-group baselines.

In a real run, swap the trainer's two components (see
``docs/integrations/openrlhf.md``)::

    @ray.remote
    class KnapsackPPOTrainer(PPOTrainer.__ray_actor_class__):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            allocator = KnapsackAllocator(preset="paper")
            gen, maker = self.samples_generator, self.experience_maker
            self.samples_generator = KnapsackSamplesGenerator.wrap(gen, allocator)
            self.experience_maker = KnapsackExperienceMaker.wrap(maker, allocator)

This script runs the same steps on CPU (``bash integrations/openrlhf/install.sh
<venv>/bin``) without vLLM: a synthetic dataset of prompts with graded
difficulty stands in for generation, the samples are OpenRLHF ``Experience``
objects, and the GRPO (``group_norm``) baseline is computed per prompt group.
It prints the share of samples with a non-zero advantage under uniform and
knapsack allocation at the same budget.

    python examples/openrlhf_knapsack.py
"""

import numpy as np
import torch
from openrlhf.trainer.ppo_utils.experience import Experience

from knapsack_alloc.allocator import KnapsackAllocator
from knapsack_alloc.integrations.openrlhf import group_baseline

DATASET = 256  # prompts
BATCH = 32  # --rollout.batch_size
N = 8  # --rollout.n_samples_per_prompt
EPOCHS = 6


def generate(prompts: list[str], counts: np.ndarray, success: dict, rng) -> list[Experience]:
    """One single-sample Experience per sample, as SamplesGenerator returns them."""
    out = []
    for prompt, count in zip(prompts, counts, strict=True):
        for _ in range(int(count)):
            reward = float(rng.random() < success[prompt])
            out.append(
                Experience(
                    prompts=[prompt], rewards=torch.tensor([reward]), scores=torch.tensor([reward])
                )
            )
    return out


def nonzero_share(samples: list[Experience]) -> float:
    rewards = torch.cat([s.rewards for s in samples])
    shaped, _ = group_baseline(rewards, [s.prompts[0] for s in samples], "group_norm")
    return float((shaped != 0).float().mean())


def main() -> None:
    rng = np.random.default_rng(0)
    names = [f"prompt-{k}" for k in range(DATASET)]
    success = dict(zip(names, rng.beta(0.4, 0.6, DATASET), strict=True))
    allocator = KnapsackAllocator(preset="paper")
    for epoch in range(EPOCHS):
        uniform, knapsack = [], []
        for rows in rng.permutation(DATASET).reshape(-1, BATCH):
            prompts = [names[i] for i in rows]
            uniform.append(nonzero_share(generate(prompts, np.full(BATCH, N), success, rng)))
            plan = allocator.plan(prompts, BATCH * N)
            samples = generate(prompts, plan.counts, success, rng)
            knapsack.append(nonzero_share(samples))
            allocator.update(
                [s.prompts[0] for s in samples], torch.cat([s.scores for s in samples]).numpy()
            )
        print(
            f"epoch {epoch}: samples with a gradient  uniform {np.mean(uniform):.3f}  "
            f"knapsack {np.mean(knapsack):.3f}  (max group {plan.counts.max()})"
        )


if __name__ == "__main__":
    main()

"""Knapsack allocation on verl's data path: plan, expand, GRPO advantages, update.

Runs on CPU with ``bash integrations/verl/install.sh <venv>/bin``. A synthetic
dataset of prompts with graded difficulty stands in for generation (each
rollout succeeds with its prompt's probability); everything else is verl's own
code: ``DataProto`` expansion, ``compute_grpo_outcome_advantage`` grouping by
``uid``. The script prints the share of rollouts that carry a gradient (their
group's rewards are not all equal) with uniform and with knapsack allocation at
the same budget.

    python examples/verl_knapsack.py
"""

import uuid
import warnings

import numpy as np
import torch

with warnings.catch_warnings():  # verl warns about optional engines at import
    warnings.simplefilter("ignore")
    from verl import DataProto
    from verl.trainer.ppo import core_algos

from knapsack_alloc.allocator import KnapsackAllocator
from knapsack_alloc.integrations.verl import VerlKnapsackPlanner

DATASET = 256  # prompts
BATCH = 32  # data.train_batch_size
N = 8  # actor_rollout_ref.rollout.n
EPOCHS = 6
WORKERS = 4  # agent-loop workers


def prompt_batch(rows: np.ndarray) -> DataProto:
    batch = DataProto.from_single_dict(
        {"input_ids": torch.as_tensor(rows).reshape(-1, 1), "index": rows}
    )
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in rows], dtype=object)
    return batch


def score(data: DataProto, success: np.ndarray, rng: np.random.Generator) -> None:
    p = success[np.asarray(data.non_tensor_batch["index"], dtype=np.int64)]
    rewards = torch.zeros(len(data), 1)
    rewards[:, 0] = torch.as_tensor((rng.random(len(data)) < p).astype(np.float32))
    data.batch["token_level_scores"] = rewards
    data.batch["response_mask"] = torch.ones(len(data), 1)


def effective_ratio(data: DataProto) -> float:
    adv, _ = core_algos.compute_grpo_outcome_advantage(
        data.batch["token_level_scores"],
        data.batch["response_mask"],
        index=data.non_tensor_batch["uid"],
    )
    uids = data.non_tensor_batch["uid"]
    with_gradient = {u for u, a in zip(uids, adv[:, 0].abs().tolist(), strict=True) if a > 0}
    return float(np.mean([u in with_gradient for u in uids]))


def main() -> None:
    rng = np.random.default_rng(0)
    success = rng.beta(0.4, 0.6, DATASET)  # many near-0 and near-1 prompts, as in math RL
    planner = VerlKnapsackPlanner(
        KnapsackAllocator(preset="paper"), rollout_n=N, num_workers=WORKERS
    )
    for epoch in range(EPOCHS):
        uniform, knapsack = [], []
        for rows in rng.permutation(DATASET).reshape(-1, BATCH):
            batch = prompt_batch(rows)
            same = batch.repeat(N, interleave=True)  # what verl does today
            score(same, success, rng)
            uniform.append(effective_ratio(same))

            plan = planner.plan_data_proto(batch)
            expanded = planner.expand(batch, plan)
            score(expanded, success, rng)
            knapsack.append(effective_ratio(expanded))
            planner.update_from_data(expanded)
        print(
            f"epoch {epoch}: rollouts with a gradient  uniform {np.mean(uniform):.3f}  "
            f"knapsack {np.mean(knapsack):.3f}  (max group {plan.counts.max()}, "
            f"workers get {plan.worker_rollouts.astype(int).tolist()} rollouts)"
        )


if __name__ == "__main__":
    main()

"""The verl adapter against verl's own DataProto, agent loop and GRPO advantages.

Nothing here is a stand-in: the rows are expanded with ``DataProto.select_idxs``,
the v1 ``__rollout_n__`` field is consumed by ``AgentLoopWorkerTQ``'s own
``generate_sequences``/``_run_prompt`` (only the model call and the
TransferQueue write are replaced, as neither exists without a GPU cluster),
and advantages come from ``core_algos.compute_grpo_outcome_advantage``,
``ray_trainer.compute_advantage`` and the v1
``compute_advantage_for_multi_trajectories``.
"""

import asyncio
import uuid
from collections import Counter

import numpy as np
import pytest
import torch
import verl.utils.tensordict_utils as tu
from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.trainer.ppo.v1 import agent_loop_tq
from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

from knapsack_alloc.allocator import KnapsackAllocator
from knapsack_alloc.integrations.verl import ROLLOUT_N_KEY, VerlKnapsackPlanner

N = 8  # actor_rollout_ref.rollout.n
PROMPTS = 16
RESPONSE_LEN = 5
SUCCESS = np.linspace(0.03, 0.97, PROMPTS)  # graded difficulty of dataset rows 100..115


def dataset_index() -> np.ndarray:
    return np.arange(100, 100 + PROMPTS)


@pytest.fixture
def allocator() -> KnapsackAllocator:
    """Return an allocator that has seen every prompt for two epochs of uniform rollouts."""
    ka = KnapsackAllocator(preset="paper")
    rng = np.random.default_rng(0)
    for _ in range(2):
        ids = np.repeat(dataset_index(), N)
        ka.update(ids.tolist(), (rng.random(ids.size) < np.repeat(SUCCESS, N)).astype(np.int64))
    return ka


def legacy_prompt_batch() -> DataProto:
    batch = DataProto.from_single_dict(
        {
            "input_ids": torch.arange(PROMPTS * 3).reshape(PROMPTS, 3),
            "index": dataset_index(),
            "data_source": np.array(["synthetic"] * PROMPTS, dtype=object),
        }
    )
    batch.non_tensor_batch["uid"] = np.array(
        [str(uuid.uuid4()) for _ in range(PROMPTS)], dtype=object
    )
    return batch


def score(data: DataProto, seed: int) -> None:
    """Bernoulli outcome rewards on the last response token, as verl's reward loop writes them."""
    rng = np.random.default_rng(seed)
    p = SUCCESS[np.asarray(data.non_tensor_batch["index"], dtype=np.int64) - 100]
    outcome = torch.as_tensor((rng.random(len(data)) < p).astype(np.float32))
    rewards = torch.zeros(len(data), RESPONSE_LEN)
    rewards[:, -1] = outcome
    data.batch["token_level_scores"] = rewards
    data.batch["token_level_rewards"] = rewards
    data.batch["response_mask"] = torch.ones(len(data), RESPONSE_LEN)


def reference_grpo(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """GRPO advantage with each group's own mean and (Bessel) std, written out."""
    out = np.empty_like(scores)
    for g in np.unique(groups):
        rows = groups == g
        out[rows] = (scores[rows] - scores[rows].mean()) / (scores[rows].std(ddof=1) + 1e-6)
    return out


def test_plan_keeps_budget_and_gives_unequal_groups(allocator):
    planner = VerlKnapsackPlanner(allocator, rollout_n=N, num_workers=4)
    batch = legacy_prompt_batch()
    plan = planner.plan_data_proto(batch)
    assert plan.counts.sum() == PROMPTS * N == plan.rollout_index.size
    assert plan.counts.min() >= 2 and len(set(plan.counts.tolist())) > 1
    assert sorted(plan.order.tolist()) == list(range(PROMPTS))
    assert plan.worker_rollouts.sum() == PROMPTS * N
    assert "balance_gap" in plan.metrics and "pred_effective_ratio" in plan.metrics


def test_legacy_expand_matches_plan_and_grpo_groups_by_uid(allocator):
    planner = VerlKnapsackPlanner(allocator, rollout_n=N, num_workers=4)
    batch = legacy_prompt_batch()
    plan = planner.plan_data_proto(batch)
    gen_batch = DataProto.from_single_dict({"input_ids": batch.batch["input_ids"].clone()})
    expanded = planner.expand(batch, plan)
    gen_expanded = planner.expand(gen_batch, plan)

    uids = expanded.non_tensor_batch["uid"]
    assert len(expanded) == PROMPTS * N
    assert torch.equal(expanded.batch["input_ids"], gen_expanded.batch["input_ids"])
    sizes = Counter(uids.tolist())
    original = dict(zip(batch.non_tensor_batch["uid"], range(PROMPTS), strict=True))
    for row, count in zip(plan.order, plan.counts, strict=True):
        assert sizes[batch.non_tensor_batch["uid"][row]] == count
    for i, uid in enumerate(uids):  # every rollout carries its own prompt's row
        assert torch.equal(expanded.batch["input_ids"][i], batch.batch["input_ids"][original[uid]])
    # rollouts of one prompt are adjacent, prompts in the balanced order
    starts = np.r_[0, np.cumsum(plan.counts)[:-1]]
    assert [original[uids[s]] for s in starts] == plan.order.tolist()

    score(expanded, seed=1)
    scores = expanded.batch["token_level_rewards"].sum(-1).numpy()
    expected = reference_grpo(scores, uids)
    adv, _ = core_algos.compute_grpo_outcome_advantage(
        expanded.batch["token_level_rewards"], expanded.batch["response_mask"], index=uids
    )
    np.testing.assert_allclose(adv[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    out = compute_advantage(
        expanded, adv_estimator=core_algos.AdvantageEstimator.GRPO, num_repeat=N
    )
    np.testing.assert_allclose(
        out.batch["advantages"][:, -1].numpy(), expected, rtol=1e-5, atol=1e-5
    )


def test_legacy_balanced_order_keeps_groups_on_one_rollout_worker(allocator):
    workers = 4
    planner = VerlKnapsackPlanner(allocator, rollout_n=N, num_workers=workers)
    plan = planner.plan_data_proto(legacy_prompt_batch())
    expanded = planner.expand(legacy_prompt_batch())  # last_plan, fresh uids do not matter here
    chunks = expanded.chunk(workers)  # what AgentLoopManager.generate_sequences does
    assert [len(c) for c in chunks] == [PROMPTS * N // workers] * workers
    # an exact split: chunk boundaries fall between groups, so no prompt's rollouts
    # are spread over two workers
    assert plan.metrics["balance_gap"] == 0
    assert plan.worker_rollouts.tolist() == [PROMPTS * N // workers] * workers
    for chunk in chunks:
        uids = set(chunk.non_tensor_batch["uid"])
        assert all(
            (expanded.non_tensor_batch["uid"] == u).sum()
            == (chunk.non_tensor_batch["uid"] == u).sum()
            for u in uids
        )


def v1_prompt_batch() -> object:
    batch = tu.get_tensordict(
        {
            "input_ids": torch.arange(PROMPTS * 3).reshape(PROMPTS, 3),
            "index": dataset_index(),
            "uid": np.array([str(uuid.uuid4()) for _ in range(PROMPTS)], dtype=object),
        }
    )
    tu.assign_non_tensor_data(batch, "global_steps", 1)
    return batch


class RecordingWorker(agent_loop_tq.AgentLoopWorkerTQ.__ray_actor_class__):
    """verl's v1 agent-loop worker with the model call replaced by a recorder."""

    async def _run_agent_loop(
        self, sampling_params, trajectory, *, agent_name, trace=True, **kwargs
    ):
        self.sessions.append((kwargs["uid"], kwargs["session_id"], kwargs["index"]))
        self.fields.update(kwargs)


def run_agent_loop(batch, monkeypatch) -> list:
    async def kv_put(**_):
        return None

    monkeypatch.setattr(agent_loop_tq.tq, "async_kv_put", kv_put)
    worker = RecordingWorker.__new__(RecordingWorker)
    worker.config = OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {
                    "n": N,
                    "temperature": 1.0,
                    "top_p": 1.0,
                    "top_k": -1,
                    "calculate_log_probs": False,
                    "val_kwargs": {"n": 1, "top_p": 1.0, "top_k": -1, "temperature": 0.0},
                    "agent": {"default_agent_loop": "single_turn_agent"},
                }
            }
        }
    )
    worker.background_tasks = set()
    worker.sessions = []
    worker.fields = set()

    async def main():
        await worker.generate_sequences(batch)
        await asyncio.gather(*list(worker.background_tasks))

    asyncio.run(main())
    assert ROLLOUT_N_KEY not in worker.fields  # consumed by _run_prompt, not passed on
    return worker.sessions


def test_v1_agent_loop_runs_planned_rollouts(allocator, monkeypatch):
    workers = 4
    planner = VerlKnapsackPlanner(allocator, rollout_n=N, num_workers=workers)
    batch = planner.prepare_v1_batch(v1_prompt_batch())
    plan = planner.last_plan
    assert batch[ROLLOUT_N_KEY].dtype == torch.int64
    assert batch[ROLLOUT_N_KEY].tolist() == plan.counts.tolist()
    assert [int(i) for i in batch["index"]] == (dataset_index()[plan.order]).tolist()

    # AgentLoopManagerTQ.generate_sequences hands worker j the j-th chunk
    for chunk, load in zip(batch.chunk(workers), plan.worker_rollouts, strict=True):
        assert chunk[ROLLOUT_N_KEY].sum().item() == load

    sessions = run_agent_loop(batch, monkeypatch)
    per_uid = Counter(uid for uid, _, _ in sessions)
    assert sum(per_uid.values()) == PROMPTS * N
    for uid, count in zip(batch["uid"], plan.counts, strict=True):
        assert per_uid[uid] == count
        assert sorted(s for u, s, _ in sessions if u == uid) == list(range(count))


def test_v1_advantage_helper_and_update(allocator, monkeypatch):
    planner = VerlKnapsackPlanner(allocator, rollout_n=N, num_workers=2)
    batch = planner.prepare_v1_batch(v1_prompt_batch())
    sessions = run_agent_loop(batch, monkeypatch)

    keys = [f"{uid}_{session}_0" for uid, session, _ in sessions]
    data = DataProto.from_dict(
        tensors={"response_mask": torch.ones(len(sessions), RESPONSE_LEN)},
        non_tensors={
            "uid": np.array([uid for uid, _, _ in sessions], dtype=object),
            "index": np.array([int(index) for _, _, index in sessions]),
        },
    )
    score(data, seed=2)
    scores = data.batch["token_level_rewards"].sum(-1).numpy()
    expected = reference_grpo(scores, data.non_tensor_batch["uid"])
    out = compute_advantage_for_multi_trajectories(
        data, batch_keys=keys, adv_estimator=core_algos.AdvantageEstimator.GRPO, num_repeat=N
    )
    np.testing.assert_allclose(
        out.batch["advantages"][:, 0].numpy(), expected, rtol=1e-5, atol=1e-5
    )

    before = allocator.history_.counts(
        allocator.history_.lookup(np.asarray(dataset_index()))
    ).total.copy()
    metrics = planner.update_from_data(out, batch_keys=keys)
    after = allocator.history_.counts(allocator.history_.lookup(np.asarray(dataset_index()))).total
    assert metrics["rollouts"] == PROMPTS * N and metrics["prompts"] == PROMPTS
    planned = dict(
        zip(dataset_index()[planner.last_plan.order], planner.last_plan.counts, strict=True)
    )
    assert (after - before).tolist() == [planned[i] for i in dataset_index()]
    with pytest.raises(KeyError, match="was not planned"):
        planner.update_from_data(out, batch_keys=keys)


def test_multi_output_sessions_count_once(allocator, monkeypatch):
    planner = VerlKnapsackPlanner(allocator, rollout_n=N)
    batch = planner.prepare_v1_batch(v1_prompt_batch())
    sessions = run_agent_loop(batch, monkeypatch)
    # every session produced two outputs (e.g. two turns); only the last one is scored
    keys = [f"{uid}_{s}_{i}" for uid, s, _ in sessions for i in (0, 1)]
    uids = np.array([uid for uid, _, _ in sessions for _ in (0, 1)], dtype=object)
    scores = torch.zeros(len(keys), RESPONSE_LEN)
    scores[1::2, -1] = 1.0  # last outputs succeed, first outputs fail
    data = DataProto.from_dict(tensors={"token_level_scores": scores}, non_tensors={"uid": uids})
    metrics = planner.update_from_data(data, batch_keys=keys)
    assert metrics["rollouts"] == PROMPTS * N
    assert metrics["success_rate"] == 1.0


def test_errors(allocator):
    planner = VerlKnapsackPlanner(allocator, rollout_n=N)
    with pytest.raises(ValueError, match="No plan yet"):
        planner.expand(legacy_prompt_batch())
    planner.plan_data_proto(legacy_prompt_batch())
    with pytest.raises(ValueError, match="before any repetition"):
        planner.expand(legacy_prompt_batch().repeat(N))
    with pytest.raises(ValueError, match="rollout_n == 0"):
        VerlKnapsackPlanner(allocator, rollout_n=0)
    strict = VerlKnapsackPlanner(allocator, rollout_n=N, min_group_size=N + 1)
    with pytest.raises(ValueError, match="fewer than min_group_size"):
        strict.plan_data_proto(legacy_prompt_batch())


@pytest.mark.parametrize(
    "estimator",
    ["grpo", "grpo_vectorized", "rloo", "rloo_vectorized", "reinforce_plus_plus_baseline"],
)
def test_group_estimators_use_each_prompts_own_group(allocator, estimator):
    planner = VerlKnapsackPlanner(allocator, rollout_n=N, num_workers=4)
    batch = legacy_prompt_batch()
    expanded = planner.expand(batch, planner.plan_data_proto(batch))
    score(expanded, seed=3)
    uids = expanded.non_tensor_batch["uid"]
    scores = expanded.batch["token_level_rewards"].sum(-1).numpy().astype(float)
    assert len(set(Counter(uids.tolist()).values())) > 1  # unequal groups
    out = compute_advantage(expanded, adv_estimator=estimator, num_repeat=N)
    first = out.batch["advantages"][:, -1].numpy()
    expected = np.empty_like(scores)
    for uid in np.unique(uids):
        rows = uids == uid
        r, k = scores[rows], rows.sum()
        if estimator.startswith("grpo"):
            expected[rows] = (r - r.mean()) / (r.std(ddof=1) + 1e-6)
        elif estimator.startswith("rloo"):
            expected[rows] = r - (r.sum() - r) / (k - 1)
        else:
            expected[rows] = r - r.mean()
    if estimator == "reinforce_plus_plus_baseline":  # then whitened over the batch's tokens
        expected = (expected - expected.mean()) / expected.std()
        np.testing.assert_allclose(first, expected, rtol=1e-3, atol=1e-3)
    else:
        np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-5)

"""The one switch: verl's real config and v1 trainer, with the knapsack trainer swapped in.

The config is composed by the entry point's own ``compose_config`` (verl's
``ppo_trainer`` plus the ``knapsack`` section). The trainer is
``knapsack_trainer_class(<verl's sync trainer>)``, built with verl's own
constructor, tokenizer and dataloader setup, and trained with verl's own
``fit``/``step``. TransferQueue runs as Ray actors on a local cluster. What
needs a GPU (the model calls) is a stand-in: see ``verl_standins.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import ray
import transfer_queue as tq
from verl.trainer.ppo.v1 import get_trainer_cls
from verl_standins import SyntheticAgentLoop, attach_standins, write_task

from knapsack_alloc.allocator import KnapsackAllocator
from knapsack_alloc.integrations.verl.launch import check_config, compose_config
from knapsack_alloc.integrations.verl.trainer import ALLOCATOR_STATE_FILE, knapsack_trainer_class

N = 8  # actor_rollout_ref.rollout.n
PROMPTS = 16  # data.train_batch_size: each step sees every prompt once (one epoch)
MINI = 4  # actor_rollout_ref.actor.ppo_mini_batch_size, in prompts
DP = 2  # data-parallel actor ranks
STEPS = 3
# Graded difficulty: some prompts never solved, some always, the rest in between.
SUCCESS = [0.0, 0.0, 0.03, 0.08, 0.15, 0.25, 0.35, 0.5, 0.5, 0.65, 0.75, 0.85, 0.92, 0.97, 1.0, 1.0]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return write_task(tmp_path_factory.mktemp("task"), SUCCESS)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def overrides(task, tmp_path, *extra):
    model, data = task
    return [
        f"actor_rollout_ref.model.path={model}",
        f"data.train_files={data}",
        f"data.val_files={data}",
        f"data.train_batch_size={PROMPTS}",
        "data.max_prompt_length=16",
        "data.max_response_length=8",
        "data.dataloader_num_workers=2",  # the allocator must not live in their copies
        f"actor_rollout_ref.rollout.n={N}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={MINI}",
        "actor_rollout_ref.rollout.agent.num_workers=2",
        "algorithm.adv_estimator=grpo",
        "critic.enable=False",
        "trainer.logger=console",
        "trainer.val_before_train=False",
        "trainer.test_freq=-1",
        "trainer.save_freq=-1",
        f"trainer.total_training_steps={STEPS}",
        f"trainer.default_local_dir={tmp_path}/checkpoints",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
        *extra,
    ]


class Recording(KnapsackAllocator):
    """The real allocator, logging its calls in order."""

    def plan(self, prompt_ids, budget, costs=None):
        result = super().plan(prompt_ids, budget, costs)
        self.calls.append(("plan", list(prompt_ids), budget, result.counts.copy()))
        return result

    def update(self, rollout_prompt_ids, rewards, costs=None):
        self.calls.append(("update", list(rollout_prompt_ids), np.asarray(rewards), costs))
        return super().update(rollout_prompt_ids, rewards, costs)


@pytest.fixture(scope="module")
def queue(task, cluster, tmp_path_factory):
    """TransferQueue (its controller and storage are Ray actors), once for the module."""
    config = compose_config(overrides(task, tmp_path_factory.mktemp("tq")))
    config.transfer_queue.enable = True
    tq.init(config.transfer_queue)
    yield
    tq.close()


def build(task, tmp_path, *extra):
    config = compose_config(overrides(task, tmp_path, *extra))
    check_config(config)
    config.transfer_queue.enable = True
    trainer_class = knapsack_trainer_class(get_trainer_cls(config.trainer.v1.trainer_mode))
    trainer = trainer_class(config)
    recording = Recording(**trainer.knapsack_planner.allocator.get_params())
    recording.calls = []
    trainer.knapsack_planner.allocator = recording
    trainer._init_tokenizer()
    trainer._init_dataloader()
    loop = SyntheticAgentLoop(config, trainer.tokenizer, SUCCESS, workers=2)
    actor = attach_standins(trainer, loop, data_parallel=DP)
    return trainer, loop, actor, recording


def fit(trainer, loop):
    with warnings.catch_warnings():
        # verl's own deprecations and CPU notices, not the code under test
        warnings.simplefilter("ignore")
        trainer.fit(loop)


@pytest.fixture(scope="module")
def run(task, queue, tmp_path_factory):
    """Three steps of verl's own ``fit`` with the knapsack trainer."""
    trainer, loop, actor, recording = build(task, tmp_path_factory.mktemp("run"))
    fit(trainer, loop)
    return trainer, loop, actor, recording


def rows(update):
    """All mini-batch rows of one update_actor call, over every rank."""
    return [mb for rank in update for mb in rank]


def grpo(scores, uids):
    """verl's GRPO advantage, written out: (r - mean) / (std + 1e-6) over each whole group."""
    scores, uids = np.asarray(scores, dtype=float), np.asarray(uids)
    out = np.zeros_like(scores)
    for uid in np.unique(uids):
        group = uids == uid
        if group.sum() > 1:
            r = scores[group]
            out[group] = (r - r.mean()) / (r.std(ddof=1) + 1e-6)
    return out


def test_fit_runs_and_plans_every_step(run):
    trainer, loop, actor, recording = run
    plans = [c for c in recording.calls if c[0] == "plan"]
    assert len(plans) == len(loop.batches) == len(actor.updates) == STEPS
    assert type(trainer).__name__ == "KnapsackPPOTrainerSync"


def test_total_stays_train_batch_size_times_n(run):
    _, loop, actor, recording = run
    plans = [c for c in recording.calls if c[0] == "plan"]
    steps = zip(plans, loop.batches, actor.updates, strict=True)
    for (_, _, budget, counts), batch, update in steps:
        assert budget == PROMPTS * N and counts.sum() == PROMPTS * N
        # the agent loop ran each prompt's planned rollouts, in the planned order
        assert batch["__rollout_n__"].sum().item() == PROMPTS * N
        trained = rows(update)
        uids = [u for mb in trained for u in mb.uids]
        assert len(uids) == PROMPTS * N  # no padding needed, nothing dropped
        assert not any(mb.padding.any() for mb in trained)
        sizes = Counter(uids)
        assert sorted(sizes.values()) == sorted(counts.tolist())
    assert len(set(plans[-1][3].tolist())) > 1  # uneven groups after the first epoch


def test_mini_batches_keep_each_groups_baseline(run):
    _, _, actor, _ = run
    split_groups = 0
    for update in actor.updates:
        assert len(update) == DP
        for rank in update:
            # as many PPO updates as stock verl: PROMPTS / MINI mini-batches per rank
            assert len(rank) == PROMPTS // MINI
            assert {len(mb.uids) for mb in rank} == {MINI * N // DP}
        trained = rows(update)
        uids = [u for mb in trained for u in mb.uids]
        scores = np.concatenate([mb.scores for mb in trained])
        advantages = np.concatenate([mb.advantages for mb in trained])
        # every rollout carries the baseline of its whole group, wherever the group went
        np.testing.assert_allclose(advantages, grpo(scores, uids), rtol=1e-5, atol=1e-5)
        where = {}
        for i, mb in enumerate(trained):
            for uid in mb.uids:
                where.setdefault(uid, set()).add(i)
        split_groups += sum(len(batches) > 1 for batches in where.values())
    assert split_groups > 0  # groups do span mini-batches (verl balances rows by length)


def test_a_reward_at_step_t_changes_the_plan_at_step_t_plus_1(run):
    _, _, _, recording = run
    kinds = [c[0] for c in recording.calls]
    assert kinds == ["plan", "update"] * STEPS  # each update lands before the next plan
    plans = [c for c in recording.calls if c[0] == "plan"]
    updates = [c for c in recording.calls if c[0] == "update"]
    params = recording.get_params()
    for t in range(1, STEPS):
        ids = plans[t][1]
        fresh, stale = KnapsackAllocator(**params), KnapsackAllocator(**params)
        for k, (_, rollout_ids, rewards, costs) in enumerate(updates[:t]):
            fresh.update(rollout_ids, rewards, costs)
            if k < t - 1:
                stale.update(rollout_ids, rewards, costs)
        np.testing.assert_array_equal(fresh.plan(ids, PROMPTS * N).counts, plans[t][3])
        assert not np.array_equal(stale.plan(ids, PROMPTS * N).counts, plans[t][3])


def test_update_sees_scores_and_response_lengths(run):
    _, _, actor, recording = run
    updates = [c for c in recording.calls if c[0] == "update"]
    for (_, ids, rewards, costs), update in zip(updates, actor.updates, strict=True):
        trained = rows(update)
        assert len(ids) == PROMPTS * N
        assert sorted(rewards.tolist()) == sorted(
            np.concatenate([mb.scores for mb in trained]).tolist()
        )
        assert sum(costs) == sum(np.concatenate([mb.lengths for mb in trained]))


def test_agent_loop_workers_get_balanced_rollouts(run):
    _, loop, _, _ = run
    for batch in loop.batches:
        loads = [chunk["__rollout_n__"].sum().item() for chunk in batch.chunk(2)]
        assert max(loads) - min(loads) <= max(batch["__rollout_n__"].tolist())


def test_allocator_rides_in_the_checkpoint(run, task, tmp_path):
    trainer, _, _, recording = run
    trainer._save_checkpoint()
    folder = f"{trainer.config.trainer.default_local_dir}/global_step_{trainer.global_steps}"
    assert (Path(folder) / ALLOCATOR_STATE_FILE).is_file()
    local_dir = f"trainer.default_local_dir={trainer.config.trainer.default_local_dir}"
    resumed, *_ = build(task, tmp_path, local_dir)  # verl resumes from the latest step
    assert resumed.global_steps == trainer.global_steps
    ids = list(range(PROMPTS))
    np.testing.assert_array_equal(
        resumed.knapsack_planner.allocator.plan(ids, PROMPTS * N).counts,
        recording.plan(ids, PROMPTS * N).counts,
    )


def test_clipping_and_per_prompt_weighting(task, queue, tmp_path):
    trainer, loop, actor, _ = build(
        task, tmp_path, "knapsack.advantage_clip=1.0", "knapsack.group_weighting=equal"
    )
    fit(trainer, loop)
    clipped = 0
    for update in actor.updates:
        trained = rows(update)
        uids = [u for mb in trained for u in mb.uids]
        scores = np.concatenate([mb.scores for mb in trained])
        advantages = np.concatenate([mb.advantages for mb in trained])
        reference = grpo(scores, uids)
        sizes = Counter(uids)
        weight = np.array([len(uids) / len(sizes) / sizes[u] for u in uids])
        np.testing.assert_allclose(
            advantages, np.clip(reference, -1, 1) * weight, rtol=1e-5, atol=1e-6
        )
        clipped += int((np.abs(reference) > 1).sum())
    assert clipped > 0


def test_group_filtering_feeds_evicted_groups_to_the_allocator(task, queue, tmp_path):
    trainer, loop, actor, recording = build(
        task,
        tmp_path,
        "algorithm.filter_groups.enable=True",
        "algorithm.filter_groups.metric=reward",
    )
    fit(trainer, loop)
    generated = sum(int(b["__rollout_n__"].sum()) for b in loop.batches)
    recorded = sum(len(c[1]) for c in recording.calls if c[0] == "update")
    assert recorded == generated  # trained, evicted and surplus groups alike
    trained_total = sum(int((~mb.padding).sum()) for update in actor.updates for mb in rows(update))
    assert generated > trained_total  # the filter did evict groups
    for update in actor.updates:
        trained = rows(update)
        real = [
            (u, s)
            for mb in trained
            for u, s, pad in zip(mb.uids, mb.scores, mb.padding, strict=True)
            if not pad
        ]
        groups = {}
        for uid, score in real:
            groups.setdefault(uid, []).append(score)
        assert len(groups) == PROMPTS
        assert all(len(set(scores)) > 1 for scores in groups.values())  # DAPO kept only these
        assert sum(len(mb.uids) for mb in trained) % (MINI * N) == 0  # padded by verl


def run_entry_point(folder, *args):
    """Run the entry point in ``folder`` (Hydra writes its run folder there)."""
    return subprocess.run(
        [sys.executable, "-m", "knapsack_alloc.integrations.verl", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
    )


def test_entry_point_composes_the_knapsack_config(tmp_path):
    result = run_entry_point(
        tmp_path, "--cfg", "job", "knapsack.preset=bayes", "knapsack.max_rollouts=96"
    )
    assert result.returncode == 0, result.stderr
    assert "knapsack:" in result.stdout
    assert "preset: bayes" in result.stdout and "max_rollouts: 96" in result.stdout
    assert "ppo_mini_batch_size" in result.stdout  # verl's own config around it


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ("knapsack.preset=greedy", ValueError, "The 'preset' parameter must be a str among"),
        ("knapsack.alpha=2", ValueError, "alpha == 2, must be in (0, 1)"),
        ("knapsack.num_workers=0", ValueError, "knapsack.num_workers == 0, must be >= 1"),
        ("knapsack.group_weighting=tokens", ValueError, "'group_weighting' parameter must be"),
        ("algorithm.adv_estimator=gae", ValueError, "algorithm.adv_estimator == 'gae'"),
        ("trainer.use_v1=False", ValueError, "trainer.use_v1 == False"),
    ],
)
def test_bad_settings_are_refused(override, error, message):
    with pytest.raises(error, match=re.escape(message)):
        check_config(compose_config([override]))


def test_entry_point_refuses_bad_settings_before_starting_ray(tmp_path):
    result = run_entry_point(tmp_path, "knapsack.preset=greedy")
    assert result.returncode != 0
    assert "The 'preset' parameter must be a str among" in result.stderr
    assert "Started a local Ray instance" not in result.stderr

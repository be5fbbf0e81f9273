"""The OpenRLHF adapter on real ``Experience`` objects made by OpenRLHF's own code.

A local Ray cluster runs OpenRLHF's ``SamplesGenerator.generate_samples`` /
``_generate_vllm`` / ``_process_response_into_experience`` with the adapter's
dispatch; the vLLM engines are Ray actors from ``standins/engine.py`` (vLLM
needs a GPU). The samples then go through OpenRLHF's
``RemoteExperienceMaker.split_rollout_samples`` and the adapter's
``compute_advantages_and_returns`` (which calls OpenRLHF's ``compute_reward``,
length penalties and ``get_cumulative_returns``).
"""

import copy
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import ray
import torch
from engine import SyntheticEngine
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker
from openrlhf.trainer.ppo_utils.kl_controller import FixedKLController
from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

from knapsack_alloc.allocator import KnapsackAllocator
from knapsack_alloc.integrations.openrlhf import (
    KnapsackExperienceMaker,
    KnapsackSamplesGenerator,
    group_baseline,
)

N = 8  # --rollout.n_samples_per_prompt
PROMPTS = 12
SUCCESS = np.linspace(0.05, 0.95, PROMPTS).tolist()  # prompt "q<k>" succeeds with SUCCESS[k]


def make_args(estimator="group_norm", **algo):
    return SimpleNamespace(
        rollout=SimpleNamespace(
            batch_size=PROMPTS,
            n_samples_per_prompt=N,
            micro_batch_size=5,
            vllm_generate_batch_size=None,
        ),
        vllm=SimpleNamespace(enable_sleep=False),
        algo=SimpleNamespace(
            dynamic_filtering_enable=algo.get("dynamic_filtering_enable", False),
            dynamic_filtering_range=algo.get("dynamic_filtering_range", (0.0, 1.0)),
            advantage=SimpleNamespace(
                estimator=estimator, is_correction_level="off", gamma=1.0, no_std_norm=False
            ),
        ),
        train=SimpleNamespace(dynamic_batch_enable=False),
        reward=SimpleNamespace(
            clip_range=None, overlong_buffer_len=None, stop_properly_penalty_coef=None
        ),
        data=SimpleNamespace(max_len=64),
    )


def prompt_loader(count=PROMPTS):
    """One prompt per batch, as OpenRLHF's prompt dataloader yields them."""
    return [(None, [f"q{k}"], [""], [None]) for k in range(count)]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def allocator():
    """Return an allocator that has seen two epochs of uniform sampling of every prompt."""
    ka = KnapsackAllocator(preset="paper")
    rng = np.random.default_rng(0)
    for _ in range(2):
        ids = np.repeat([f"q{k}" for k in range(PROMPTS)], N)
        ka.update(ids.tolist(), (rng.random(ids.size) < np.repeat(SUCCESS, N)).astype(np.int64))
    return ka


def make_generator(allocator, args, engines=2, success=SUCCESS):
    stock = SamplesGenerator(
        strategy=SimpleNamespace(args=args),
        prompts_dataloader=prompt_loader(len(success)),
        eval_dataloader=prompt_loader(),
        tokenizer=None,
        vllm_engines=[SyntheticEngine.remote(success, seed) for seed in range(engines)],
    )
    return KnapsackSamplesGenerator.wrap(stock, allocator)


def make_maker(allocator, args, **options):
    stock = RemoteExperienceMaker(
        None,
        None,
        None,
        None,
        FixedKLController(0.0),
        SimpleNamespace(args=args),
        SimpleNamespace(pad_token_id=0),
    )
    return KnapsackExperienceMaker.wrap(stock, allocator, **options)


def per_prompt(samples):
    return Counter(s.prompts[0] for s in samples)


def test_dispatch_follows_the_plan(cluster, allocator):
    generator = make_generator(allocator, make_args())
    samples, _, consumed, _ = generator.generate_samples(temperature=1.0, max_new_tokens=8)
    plan = generator.last_plan
    counts = dict(zip(plan.prompt_ids.tolist(), plan.counts.tolist(), strict=True))
    assert consumed == PROMPTS
    assert len(set(counts.values())) > 1  # unequal groups
    assert sum(counts.values()) == len(samples) == PROMPTS * N
    assert per_prompt(samples) == Counter(counts)
    calls = [ray.get(e.calls_made.remote()) for e in generator.vllm_engines]
    loads = [sum(n for _, n, _ in c) for c in calls]
    assert sum(loads) == PROMPTS * N and max(loads) - min(loads) <= max(counts.values())
    assert all(
        kwargs["temperature"] == 1.0 and kwargs["max_tokens"] == 8
        for c in calls
        for *_, kwargs in c
    )


def test_evaluation_keeps_uniform_samples(cluster, allocator):
    generator = make_generator(allocator, make_args())
    samples = generator.generate_eval_samples(n_samples_per_prompt=3)
    assert set(per_prompt(samples).values()) == {3}
    assert generator.last_plan is None


@pytest.mark.parametrize("estimator", ["group_norm", "rloo", "reinforce_baseline", "dr_grpo"])
def test_advantages_use_each_prompts_own_group(cluster, allocator, estimator):
    args = make_args(estimator)
    samples, *_ = make_generator(allocator, args).generate_samples(max_new_tokens=8)
    maker = make_maker(allocator, args)
    experiences = maker.split_rollout_samples(samples)  # real micro-batches of 5 samples
    for e in experiences:
        e.kl = torch.zeros(e.action_mask.shape)
    stock_input = copy.deepcopy(experiences)
    history_before = allocator.history_.counts(
        allocator.history_.lookup(np.array([f"q{k}" for k in range(PROMPTS)]))
    ).total.copy()

    out = maker.compute_advantages_and_returns(experiences)

    prompts = np.array([p for e in out for p in e.prompts])
    rewards = np.concatenate([e.info["reward"].reshape(-1).numpy() for e in out])
    expected = np.empty_like(rewards)
    for prompt in np.unique(prompts):
        r = rewards[prompts == prompt]
        k = r.size
        if estimator == "group_norm":
            expected[prompts == prompt] = (r - r.mean()) / (r.std(ddof=1) + 1e-9)
        elif estimator == "rloo":
            expected[prompts == prompt] = r - (r.sum() - r) / (k - 1)
        else:
            expected[prompts == prompt] = r - r.mean()
    # the sample's return at its first action token is its shaped outcome reward
    first = np.concatenate([e.advantages[:, 0].numpy() for e in out])
    if estimator == "reinforce_baseline":  # then whitened over all action tokens
        adv = torch.cat([e.advantages.flatten() for e in out])
        mask = torch.cat([e.action_mask.flatten() for e in out]).bool()
        assert abs(adv[mask].mean().item()) < 1e-5
        assert np.corrcoef(first, expected)[0, 1] > 0.999
    else:
        np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    for e in out:
        assert e.kl is None and e.returns.shape == e.action_mask.shape

    # the allocator learned this step's scores: every sample was recorded once
    after = allocator.history_.counts(
        allocator.history_.lookup(np.array([f"q{k}" for k in range(PROMPTS)]))
    ).total
    assert (after - history_before).tolist() == [
        int((prompts == f"q{k}").sum()) for k in range(PROMPTS)
    ]
    assert maker.last_update_metrics["rollouts"] == PROMPTS * N

    # OpenRLHF's own method reshapes into rows of N and so mixes prompts
    if estimator == "group_norm":
        for e in stock_input:
            e.info["reward"] = e.rewards.clone()
        stock = RemoteExperienceMaker.compute_advantages_and_returns(maker, stock_input)
        stock_first = np.concatenate([e.advantages[:, 0].numpy() for e in stock])
        assert not np.allclose(stock_first, expected, atol=1e-3)


def test_group_baseline_singletons_and_errors():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.5])
    shaped, std = group_baseline(rewards, ["a", "b", "a", "b", "c"], "group_norm")
    assert shaped[4] == 0 and std[4] == 0
    torch.testing.assert_close(shaped[[0, 2]], torch.zeros(2))
    np.testing.assert_allclose(std[[1, 3]].numpy(), [np.sqrt(0.5)] * 2, rtol=1e-6)
    with pytest.raises(ValueError, match="must be a str among"):
        group_baseline(rewards, [0] * 5, "gae")
    with pytest.raises(ValueError, match="one group id per sample"):
        group_baseline(rewards, [0] * 4, "rloo")


def test_unsupported_settings(cluster, allocator):
    args = make_args()
    args.rollout.vllm_generate_batch_size = 2 * PROMPTS
    with pytest.raises(ValueError, match="vllm_generate_batch_size"):
        make_generator(allocator, args).generate_samples()


@pytest.mark.parametrize("estimator", ["gae", "reinforce", "flash_reinforce"])
def test_estimators_without_groups_are_refused(cluster, allocator, estimator):
    message = f"estimator == '{estimator}' does not compare a prompt's samples"
    with pytest.raises(ValueError, match=message):
        make_maker(allocator, make_args(estimator))
    with pytest.raises(ValueError, match=message):
        make_generator(allocator, make_args(estimator))


# 48 prompts: every third one is never solved, every third always; the rest in between
FILTER_SUCCESS = [(0.0, 1.0, 0.2 + 0.6 * k / 47)[k % 3] for k in range(48)]


def test_dynamic_filtering_then_planning(cluster):
    allocator = KnapsackAllocator(preset="paper")
    args = make_args(dynamic_filtering_enable=True, dynamic_filtering_range=(0.0, 1.0))
    generator = make_generator(allocator, args, success=FILTER_SUCCESS)
    samples, _, consumed, _ = generator.generate_samples(max_new_tokens=8)
    metrics = generator.last_metrics

    # filter, then plan: the step trains on exactly the planned budget
    assert len(samples) == PROMPTS * N == metrics["samples_trained"]
    groups = {}
    for s in samples:
        groups.setdefault(s.prompts[0], []).append(s.scores[0].item())
    assert all(0.0 < np.mean(scores) < 1.0 for scores in groups.values())
    assert metrics["samples_filtered"] > 0 and metrics["refill_rounds"] > 0

    # every generated sample is accounted for: trained or filtered
    calls = [c for e in generator.vllm_engines for c in ray.get(e.calls_made.remote())]
    asked = Counter()
    for prompt, count, _ in calls:
        assert prompt not in asked  # one call per prompt: a group is never split
        asked[prompt] = count
    assert sum(asked.values()) == metrics["samples_generated"]
    assert metrics["samples_generated"] == len(samples) + metrics["samples_filtered"]
    assert consumed == len(asked) == metrics["prompts_consumed"]
    for prompt, scores in groups.items():
        assert asked[prompt] == len(scores)  # accepted groups arrive whole

    # the filtered groups' scores reached the allocator; the trained ones come with the maker
    ids = np.array(sorted(asked))
    recorded = allocator.history_.counts(allocator.history_.lookup(ids)).total
    filtered = [0 if p in groups else asked[p] for p in ids]
    assert recorded.tolist() == filtered
    maker = make_maker(allocator, args)
    experiences = maker.split_rollout_samples(samples)
    for e in experiences:
        e.kl = torch.zeros(e.action_mask.shape)
    maker.compute_advantages_and_returns(experiences)
    recorded = allocator.history_.counts(allocator.history_.lookup(ids)).total
    assert recorded.tolist() == [asked[p] for p in ids]


def test_clipping_and_per_prompt_weighting(cluster, allocator):
    args = make_args("group_norm")
    samples, *_ = make_generator(allocator, args).generate_samples(max_new_tokens=8)
    maker = make_maker(allocator, args, advantage_clip=1.0, group_weighting="equal")
    experiences = maker.split_rollout_samples(samples)
    for e in experiences:
        e.kl = torch.zeros(e.action_mask.shape)
    out = maker.compute_advantages_and_returns(experiences)
    prompts = np.array([p for e in out for p in e.prompts])
    rewards = np.concatenate([e.info["reward"].reshape(-1).numpy() for e in out])
    names, sizes = np.unique(prompts, return_counts=True)
    size = dict(zip(names, sizes, strict=True))
    expected = np.empty_like(rewards)
    for prompt in names:
        r = rewards[prompts == prompt]
        normalised = (r - r.mean()) / (r.std(ddof=1) + 1e-9)
        expected[prompts == prompt] = (
            np.clip(normalised, -1, 1) * (len(rewards) / len(names)) / size[prompt]
        )
    first = np.concatenate([e.advantages[:, 0].numpy() for e in out])
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    assert maker.last_update_metrics["groups/advantages_clipped"] > 0

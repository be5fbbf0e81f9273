"""Benchmarks of the stateful allocator.

Run with ``python -m pytest benchmarks/bench_allocator.py --benchmark-only``.

* update throughput with 1e6 tracked prompts (rewards per second is
  ``rollouts / mean``; the target is at least 2 million per second);
* ``plan()`` for a 256-prompt batch next to the bare ``allocate()`` call it
  makes, so the difference is the allocator's overhead (target: well under
  a millisecond);
* one training step, ``plan()`` then ``update()`` at 256 prompts and 2048
  rollouts, with the allocator's lock and with a no-op in its place, so the
  difference is the cost of thread safety;
* balancing a batch across data-parallel workers.
"""

import contextlib

import numpy as np
import pytest

from knapsack_alloc import BetaPosterior, allocate
from knapsack_alloc.allocator import KnapsackAllocator
from knapsack_alloc.batching import balance

TRACKED = 1_000_000
BATCH = 256
BUDGET = 2048


def _trained(preset):
    allocator = KnapsackAllocator(preset)
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 0.5, TRACKED)
    ids = np.repeat(np.arange(TRACKED), 16)
    allocator.update(ids, rng.random(ids.size) < p[ids])
    return allocator, rng, p


@pytest.fixture(scope="module")
def paper():
    return _trained("paper")


@pytest.fixture(scope="module")
def bayes():
    return _trained("bayes")


@pytest.mark.parametrize("rollouts_per_prompt", [8, 64])
def test_update_throughput(benchmark, paper, rollouts_per_prompt):
    allocator, rng, p = paper
    prompts = rng.choice(TRACKED, 65_536 // rollouts_per_prompt, replace=False)
    ids = np.repeat(prompts, rollouts_per_prompt)
    rewards = rng.random(ids.size) < p[ids]
    benchmark.extra_info["rewards_per_call"] = ids.size
    benchmark(allocator.update, ids, rewards)
    benchmark.extra_info["rewards_per_second"] = ids.size / benchmark.stats.stats.mean


@pytest.mark.parametrize("order", ["grouped", "shuffled"])
def test_update_throughput_string_ids(benchmark, order):
    allocator = KnapsackAllocator("paper")
    rng = np.random.default_rng(1)
    names = np.array([f"prompt-{i:07d}" for i in range(TRACKED)])
    allocator.update(names, rng.random(TRACKED) < 0.5)
    ids = np.repeat(names[rng.choice(TRACKED, 8192, replace=False)], 8)
    if order == "shuffled":
        rng.shuffle(ids)
    rewards = rng.random(ids.size) < 0.5
    benchmark(allocator.update, ids, rewards)
    benchmark.extra_info["rewards_per_second"] = ids.size / benchmark.stats.stats.mean


def _batch(rng):
    return rng.choice(TRACKED, BATCH, replace=False)


def test_plan_paper(benchmark, paper):
    allocator, rng, _ = paper
    ids = _batch(rng)
    plan = benchmark(allocator.plan, ids, BUDGET)
    benchmark.extra_info["allocate_share_s"] = plan.metrics["solve_time_s"]


def test_allocate_behind_plan_paper(benchmark, paper):
    allocator, rng, _ = paper
    ids = _batch(rng)
    plan = allocator.plan(ids, BUDGET)
    effective = plan.rules == "effective"
    rates = plan.estimates[effective]
    share = int(plan.counts[effective].sum())
    benchmark(allocate, rates, share, min_rollouts=2, max_rollouts=128)


def test_plan_bayes(benchmark, bayes):
    allocator, rng, _ = bayes
    ids = _batch(rng)
    benchmark(allocator.plan, ids, BUDGET)


def test_allocate_behind_plan_bayes(benchmark, bayes):
    allocator, rng, _ = bayes
    ids = _batch(rng)
    counts = allocator.history_.counts(allocator.history_.lookup(ids))
    prior = allocator.plan(ids, BUDGET).metrics
    beliefs = BetaPosterior(
        counts.successes,
        counts.trials - counts.successes,
        prior=(prior["prior_a"], prior["prior_b"]),
    )
    benchmark(allocate, beliefs, BUDGET, min_rollouts=2, max_rollouts=128)


@pytest.mark.parametrize("lock", ["locked", "no-op lock"])
def test_plan_and_update_step(benchmark, paper, lock):
    allocator, rng, p = paper
    ids = _batch(rng)
    rollout_ids = np.repeat(ids, BUDGET // BATCH)
    rewards = rng.random(rollout_ids.size) < p[rollout_ids]

    def step():
        allocator.plan(ids, BUDGET)
        allocator.update(rollout_ids, rewards)

    real_lock = allocator._lock
    if lock == "no-op lock":
        allocator._lock = contextlib.nullcontext()
    try:
        benchmark(step)
    finally:
        allocator._lock = real_lock


@pytest.mark.parametrize(("prompts", "workers"), [(256, 8), (1024, 32)])
@pytest.mark.parametrize("equal_size", [False, True])
def test_balance(benchmark, prompts, workers, equal_size):
    weights = np.random.default_rng(2).integers(2, 129, prompts)
    split = benchmark(balance, weights, workers, equal_size=equal_size)
    benchmark.extra_info["gap"] = split.gap

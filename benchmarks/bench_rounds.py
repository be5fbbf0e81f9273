"""Benchmarks of planning a step in rounds.

Run with ``python -m pytest benchmarks/bench_rounds.py --benchmark-only``.

For a 256-prompt batch with a budget of 2,048 rollouts, side by side:
``plan()`` (one round), and a whole two-round step with ``start_step()``
(plan the first round, record its rewards, plan the second); the rewards
are drawn once, before timing, so the difference is the planning the second
round adds.
"""

import numpy as np
import pytest

from knapsack_alloc.allocator import KnapsackAllocator

TRACKED = 10_000
BATCH = 256
BUDGET = 2048


@pytest.fixture(scope="module", params=["paper", "bayes"])
def trained(request):
    allocator = KnapsackAllocator(request.param)
    rng = np.random.default_rng(0)
    p = rng.beta(0.4, 0.6, TRACKED)
    ids = np.repeat(np.arange(TRACKED), 16)
    allocator.update(ids, rng.random(ids.size) < p[ids])
    batch = rng.choice(TRACKED, BATCH, replace=False)
    outcomes = rng.random(BUDGET) < np.repeat(p[batch], BUDGET // BATCH)
    return allocator, batch, outcomes


def test_plan_one_round(benchmark, trained):
    allocator, batch, _ = trained
    benchmark(allocator.plan, batch, BUDGET)


def test_plan_two_rounds(benchmark, trained):
    allocator, batch, outcomes = trained

    def step():
        rounds = allocator.start_step(batch, BUDGET, rounds=2)
        first = rounds.plan_round()
        rounds.record(outcomes[: int(first.counts.sum())])
        return rounds.plan_round()

    benchmark(step)

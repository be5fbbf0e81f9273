"""One KnapsackAllocator shared by several threads ends where the same calls in sequence do."""

from __future__ import annotations

import pickle
import sys
import threading

import numpy as np
import pytest

from knapsack_alloc import KnapsackAllocator

UPDATERS = 4
STEPS = 80
PROMPTS_PER_STEP = 64
ROLLOUTS_PER_PROMPT = 8


def _updates(seed):
    """Each updater's steps: its own prompts (new ones every step, so the state grows)."""
    rng = np.random.default_rng(seed)
    plans = []
    for thread in range(UPDATERS):
        steps = []
        for step in range(STEPS):
            fresh = thread * 10**6 + step * PROMPTS_PER_STEP // 2 + np.arange(PROMPTS_PER_STEP)
            ids = np.repeat(fresh, ROLLOUTS_PER_PROMPT)
            rewards = rng.random(ids.size) < rng.random(PROMPTS_PER_STEP).repeat(
                ROLLOUTS_PER_PROMPT
            )
            costs = rng.integers(50, 500, ids.size).astype(np.float64)
            steps.append((ids, rewards, costs))
        plans.append(steps)
    return plans


def _batches(updates):
    seen = np.unique(np.concatenate([ids for steps in updates for ids, _, _ in steps]))
    rng = np.random.default_rng(7)
    return [rng.choice(seen, 256, replace=False) for _ in range(8)]


@pytest.fixture
def eager_thread_switches():
    """Switch threads every microsecond, so races show in every run rather than some."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.parametrize("preset", ["paper", "bayes"])
def test_concurrent_updates_and_plans_match_the_sequential_run(preset, eager_thread_switches):
    updates = _updates(seed=1)
    shared = KnapsackAllocator(preset, cost_model="tracked", cost_resolution=16.0)
    start = threading.Barrier(UPDATERS + 1)
    failures: list[BaseException] = []
    running = threading.Event()
    running.set()
    plans_made = []

    def update(steps):
        try:
            start.wait()
            for ids, rewards, costs in steps:
                shared.update(ids, rewards, costs=costs)
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    def plan():
        try:
            start.wait()
            batch = np.arange(PROMPTS_PER_STEP * 2)
            while running.is_set():
                result = shared.plan(batch, 2048 * 16, costs=np.full(batch.size, 16.0))
                plans_made.append(int(result.counts.sum()))
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    updaters = [threading.Thread(target=update, args=(steps,)) for steps in updates]
    planner = threading.Thread(target=plan)
    for thread in [*updaters, planner]:
        thread.start()
    for thread in updaters:
        thread.join()
    running.clear()
    planner.join()
    assert failures == []
    assert plans_made and set(plans_made) == {2048}

    sequential = KnapsackAllocator(preset, cost_model="tracked", cost_resolution=16.0)
    for steps in updates:
        for ids, rewards, costs in steps:
            sequential.update(ids, rewards, costs=costs)
    assert shared.n_updates_ == sequential.n_updates_
    assert shared.n_rollouts_ == sequential.n_rollouts_
    assert len(shared.history_) == len(sequential.history_)
    for batch in _batches(updates):
        mine, theirs = shared.plan(batch, 1_200_000), sequential.plan(batch, 1_200_000)
        np.testing.assert_array_equal(mine.counts, theirs.counts)
        np.testing.assert_array_equal(mine.estimates, theirs.estimates)


def test_the_allocator_still_pickles():
    """The lock is not state: a pickled allocator gets a fresh one and plans the same."""
    allocator = KnapsackAllocator("bayes")
    allocator.update([1, 1, 2, 2], [1, 0, 0, 0])
    copy = pickle.loads(pickle.dumps(allocator))
    assert copy.plan([1, 2, 3], 24).counts.tolist() == allocator.plan([1, 2, 3], 24).counts.tolist()
    copy.update([3, 3], [1, 1])  # its lock works

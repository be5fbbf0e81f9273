"""Memory stays bounded: large updates go a group of prompts at a time, DP tables are capped."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import knapsack_alloc.allocator.history as history_module
import knapsack_alloc.allocator.rewards as rewards_module
from knapsack_alloc import InvalidArgumentError, KnapsackAllocator, allocate

# One update: (prompt id, reward, cost) per rollout.
updates_strategy = st.lists(
    st.lists(
        st.tuples(
            st.integers(0, 30),
            st.sampled_from([-1.0, 0.0, 0.3, 1.0]),
            st.floats(1, 100),
        ),
        max_size=60,
    ),
    min_size=1,
    max_size=6,
)


def _run(allocator, updates):
    metrics = []
    for rollouts in updates:
        ids = np.array([prompt for prompt, _, _ in rollouts], dtype=np.int64)
        rewards = np.array([reward for _, reward, _ in rollouts], dtype=np.float64)
        costs = np.array([cost for _, _, cost in rollouts], dtype=np.float64)
        metrics.append(allocator.update(ids, rewards, costs=costs))
    return metrics


@settings(max_examples=60, deadline=None)
@given(updates_strategy, st.integers(1, 9), st.sampled_from(["paper", "bayes"]))
def test_an_update_in_groups_equals_the_update_at_once(updates, chunk, preset):
    whole = KnapsackAllocator(preset)
    expected = _run(whole, updates)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(history_module, "UPDATE_CHUNK", chunk)
        patch.setattr(rewards_module, "REWARD_CHUNK", chunk)
        grouped = KnapsackAllocator(preset)
        assert _run(grouped, updates) == expected
    mine, theirs = grouped.state_dict(), whole.state_dict()
    assert mine.keys() == theirs.keys()
    for name, array in theirs["arrays"].items():
        np.testing.assert_array_equal(mine["arrays"][name], array, err_msg=name)


def test_a_bad_reward_is_found_in_any_chunk(monkeypatch):
    monkeypatch.setattr(rewards_module, "REWARD_CHUNK", 4)
    rewards = [1.0] * 10 + [2.0]
    with pytest.raises(InvalidArgumentError, match=r"^rewards\[10\] == 2\.0 is not a valid"):
        KnapsackAllocator().update(list(range(11)), rewards)


# Peak memory of one update of 8 million rewards over a million tracked prompts.
PEAK_SCRIPT = textwrap.dedent(
    """
    import tracemalloc
    import numpy as np
    from knapsack_alloc import KnapsackAllocator

    tracked = 1_000_000
    rng = np.random.default_rng(0)
    allocator = KnapsackAllocator("paper")
    p = rng.beta(0.5, 0.5, tracked)
    for start in range(0, tracked, 50_000):  # build the state in steps that peak low
        ids = np.repeat(np.arange(start, start + 50_000), 16)
        allocator.update(ids, rng.random(ids.size) < p[ids])
    ids = np.repeat(rng.permutation(tracked), 8)
    rewards = (rng.random(ids.size) < p[ids]).astype(np.float64)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    allocator.update(ids, rewards)
    print((tracemalloc.get_traced_memory()[1] - before) / 2**20)
    """
)


@pytest.mark.slow
def test_one_update_of_8_million_rewards_peaks_within_a_few_hundred_megabytes():
    """numpy reports its buffers to tracemalloc; measured in a fresh process."""
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True,
                          check=True, timeout=600)  # fmt: skip
    peak_mib = float(done.stdout.strip().splitlines()[-1])
    # The update's inputs are 64 MiB of ids and 64 MiB of rewards; the state ~50 MiB.
    assert peak_mib < 300, f"peak {peak_mib:.0f} MiB above the state"


RATES = np.linspace(0.05, 0.95, 64)
COSTS = np.arange(64) % 7 + 2


@pytest.mark.parametrize(
    ("solver", "message"),
    [
        ("dp", "solver='dp' needs a table of 64 prompts x 2544 budget units, about 0.6836 MiB "
         "in all, more than max_table_bytes == 100000 (0.09537 MiB); raise max_table_bytes (or "
         "the environment variable KNAPSACK_ALLOC_MAX_TABLE_BYTES), use solver='greedy' (a "
         "feasible answer with a proven bound), or a coarser cost_resolution."),
        ("textbook", "solver='textbook' needs a table of 64 prompts x 2544 budget units, about "
         "1.305 MiB in all, more than max_table_bytes == 100000 (0.09537 MiB); raise "
         "max_table_bytes (or the environment variable KNAPSACK_ALLOC_MAX_TABLE_BYTES), use "
         "solver='greedy' (a feasible answer with a proven bound), or a coarser "
         "cost_resolution."),
    ],
)
def test_dp_tables_are_capped_in_bytes(solver, message):
    budget = int(COSTS @ np.full(64, 8)) + 7
    kwargs = dict(costs=COSTS, min_rollouts=0, solver=solver)
    with pytest.raises(InvalidArgumentError, match=f"^{re.escape(message)}$"):
        allocate(RATES, budget, max_table_bytes=100_000, **kwargs)
    assert allocate(RATES, budget, max_table_bytes=10**7, **kwargs).status == "optimal"


def test_the_cap_defaults_to_256_mib_and_reads_the_environment(monkeypatch):
    rates = np.random.default_rng(0).random(1000)
    costs = np.arange(1000) % 5 + 1
    budget = int(costs.sum() * 40)  # a 1000 x 120000 table of 4-byte cells: about 460 MiB
    with pytest.raises(InvalidArgumentError, match=r"more than max_table_bytes == 268435456 "):
        allocate(rates, budget, costs=costs, min_rollouts=0, solver="dp")
    monkeypatch.setenv("KNAPSACK_ALLOC_MAX_TABLE_BYTES", "1000")
    with pytest.raises(InvalidArgumentError, match=r"more than max_table_bytes == 1000 "):
        allocate(RATES, 600, costs=COSTS, min_rollouts=0, solver="dp")
    monkeypatch.setenv("KNAPSACK_ALLOC_MAX_TABLE_BYTES", "lots")
    with pytest.raises(InvalidArgumentError, match=r"KNAPSACK_ALLOC_MAX_TABLE_BYTES == 'lots'"):
        allocate(RATES, 600, costs=COSTS, min_rollouts=0, solver="dp")


def test_auto_falls_back_to_the_greedy_answer_with_its_bound():
    budget = int(COSTS @ np.full(64, 8)) + 7
    result = allocate(RATES, budget, costs=COSTS, max_table_bytes=1000)
    assert result.solver == "greedy"
    assert result.upper_bound >= allocate(RATES, budget, costs=COSTS).objective * (1 - 1e-9)

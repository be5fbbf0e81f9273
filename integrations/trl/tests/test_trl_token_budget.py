"""``KnapsackGRPOTrainer(token_budget=...)``: a budget in completion tokens, on CPU."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from trl_shared import (  # noqa: E402
    BUDGET,
    DEPRECATIONS,
    DIFFICULTY,
    NUM_GENERATIONS,
    PROMPTS_PER_STEP,
    Recorder,
    RecordingAllocator,
    example,
    train,
)

from knapsack_alloc.allocator import KnapsackAllocator  # noqa: E402
from knapsack_alloc.integrations.trl import KnapsackGRPOTrainer, trim_to_multiple  # noqa: E402

pytestmark = pytest.mark.filterwarnings(DEPRECATIONS)

TOKEN_BUDGET = 4.5 * BUDGET  # completions are 1 to 4 tokens: pays 8 rollouts per unseen prompt
RESOLUTION = 0.01  # tokens per cost unit: rounding is negligible against the checks below
STEPS_PER_GENERATION = 2  # so that a plan's total must be trimmed to an even number


def tracked_allocator(preset="paper"):
    return RecordingAllocator(
        preset=preset, cost_model="tracked", cost_resolution=RESOLUTION, allow_unused_budget=True
    )


@pytest.fixture(scope="module", params=["paper", "bayes"])
def token_run(request, tmp_path_factory):
    reward = Recorder()
    allocator = tracked_allocator(request.param)
    config = {
        "steps_per_generation": STEPS_PER_GENERATION,
        "per_device_train_batch_size": BUDGET // STEPS_PER_GENERATION,
        "max_steps": 6 * STEPS_PER_GENERATION,
    }
    trainer = train(
        KnapsackGRPOTrainer,
        reward,
        tmp_path_factory.mktemp(request.param),
        config=config,
        allocator=allocator,
        token_budget=TOKEN_BUDGET,
    )
    return trainer, reward, allocator


def expected_costs(ids, history):
    """Each prompt's mean completion length so far; unknown ones: the batch's known mean."""
    known = {pid: np.mean(history[pid]) for pid in ids if history.get(pid)}
    if known:
        fill = np.mean(list(known.values()))
    else:
        fill = np.mean([np.mean(v) for v in history.values()])
    return np.array([known.get(pid, fill) for pid in ids])


def test_first_plan_spends_the_rollout_budget(token_run):
    _, _, allocator = token_run
    _, budget, plan = allocator.plans[0]
    assert budget == TOKEN_BUDGET
    assert plan.counts.tolist() == [NUM_GENERATIONS] * PROMPTS_PER_STEP


def test_plans_charge_each_prompt_its_tracked_length(token_run):
    _, reward, allocator = token_run
    lengths = {}
    totals = []
    for (ids, _, plan), (rollout_ids, _, rollout_lengths) in zip(
        allocator.plans, reward.calls, strict=True
    ):
        if lengths:
            cost = float(np.asarray(plan.counts) @ expected_costs(ids, lengths))
            assert cost <= TOKEN_BUDGET * (1 + 1e-3)
            totals.append(cost)
        # what was generated is the plan, trimmed to a multiple of steps_per_generation
        generated = Counter(rollout_ids)
        assert len(rollout_ids) % STEPS_PER_GENERATION == 0
        for pid, n in zip(ids, plan.counts, strict=True):
            assert n - 1 <= generated[pid] <= n
        for pid, length in zip(rollout_ids, rollout_lengths, strict=True):
            lengths.setdefault(pid, []).append(max(length, 1.0))
    # the budget is a budget: the plans spend most of it
    assert min(totals) >= 0.8 * TOKEN_BUDGET
    # and the rollouts per step follow the lengths, not num_generations
    assert len({len(ids) for ids, _, _ in reward.calls}) > 1


def test_update_gets_completion_lengths_as_costs(token_run):
    _, reward, allocator = token_run
    for (ids, _, costs), (rollout_ids, _, lengths) in zip(
        allocator.updates, reward.calls, strict=True
    ):
        assert ids == rollout_ids
        np.testing.assert_array_equal(costs, np.maximum(lengths, 1.0))


def _trainer(tmp_path, allocator, **kwargs):
    tokenizer = example.build_tokenizer()
    return KnapsackGRPOTrainer(
        model=example.build_model(tokenizer),
        reward_funcs=example.first_letter_reward,
        args=example.make_config(str(tmp_path), 1, PROMPTS_PER_STEP),
        train_dataset=example.build_dataset(DIFFICULTY),
        processing_class=tokenizer,
        allocator=allocator,
        **kwargs,
    )


def test_long_answers_cost_more_than_short_ones(tmp_path):
    tracked = KnapsackAllocator(
        "bayes", cost_model="tracked", cost_resolution=RESOLUTION, allow_unused_budget=True
    )
    rollouts = KnapsackAllocator("bayes")
    # prompts 0 and 1 succeed equally often; prompt 0's answers are four times longer
    for allocator in (tracked, rollouts):
        for _ in range(2):
            allocator.update([0] * 8 + [1] * 8, [1, 0] * 8, costs=[8.0] * 8 + [2.0] * 8)
    counts, metrics = _trainer(tmp_path, tracked, token_budget=160)._plan([0, 1])
    assert counts[1] > counts[0]
    assert metrics["cost"] <= 160
    # the same history with a rollout budget: lengths play no part
    counts, _ = _trainer(tmp_path, rollouts)._plan([0, 1])
    assert counts.tolist() == [8, 8]


@pytest.mark.parametrize(
    "allocator",
    [
        KnapsackAllocator("paper"),
        KnapsackAllocator("paper", cost_model="tracked", cost_resolution=1),
    ],
)
def test_token_budget_needs_a_tracked_cost_model(tmp_path, allocator):
    with pytest.raises(ValueError, match=r"token_budget needs an allocator .* Create it with"):
        _trainer(tmp_path, allocator, token_budget=100)


def test_tracked_costs_need_a_token_budget(tmp_path):
    with pytest.raises(ValueError, match="pass token_budget= to budget completion tokens"):
        _trainer(tmp_path, tracked_allocator())


@pytest.mark.parametrize(
    ("budget", "error"), [(0, ValueError), (-5.0, ValueError), ("100", TypeError)]
)
def test_bad_token_budgets(tmp_path, budget, error):
    with pytest.raises(error, match="token_budget"):
        _trainer(tmp_path, tracked_allocator(), token_budget=budget)


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, 30), min_size=1, max_size=9),
    multiple=st.integers(1, 12),
    floor=st.integers(0, 4),
)
def test_trim_to_multiple_against_brute_force(counts, multiple, floor):
    excess = sum(counts) % multiple
    # every way of taking one rollout each from `excess` groups above the floor
    above = [i for i, n in enumerate(counts) if n > floor]
    candidates = [
        [n - (i in taken) for i, n in enumerate(counts)]
        for taken in itertools.combinations(above, excess)
    ]
    if not candidates:
        with pytest.raises(ValueError, match="would cut groups below"):
            trim_to_multiple(np.array(counts), multiple, floor)
        return
    trimmed = trim_to_multiple(np.array(counts), multiple, floor)
    assert trimmed.tolist() in candidates
    assert trimmed.sum() % multiple == 0
    # the most even of them: the smallest sum of squared group sizes
    assert int((trimmed**2).sum()) == min(sum(n * n for n in c) for c in candidates)

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _oracles_allocator import NaiveHistory, naive_bayes, naive_paper, naive_prior
from knapsack_alloc.allocator.history import RewardHistory, WindowCounts
from knapsack_alloc.allocator.presets import RULES, bayes_counts, classify, paper_counts
from knapsack_alloc.allocator.prior import FALLBACK_PRIOR, fit_beta_prior
from knapsack_alloc.costs import resolve_costs
from knapsack_alloc.engine import Solve, solver_options
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.values import GRPO

PAPER = dict(default_rollouts=8, min_rollouts=2, max_rollouts=128, min_history=8, alpha=0.9)


def _inputs(successes, trials, total, units, budget, allow_unused_budget=False):
    window = WindowCounts(successes=successes, trials=trials, total=total)
    costs = None if (units == 1).all() else units.astype(np.float64)
    options = solver_options("auto", None, None)
    solve = Solve(GRPO, "auto", options, allow_unused_budget)
    return window, resolve_costs(costs, budget, units.size, None), solve


def run_paper(successes, trials, total, units, budget, allow_unused_budget=False, **params):
    window, costs, solve = _inputs(successes, trials, total, units, budget, allow_unused_budget)
    return paper_counts(window, costs, **{**PAPER, **params}, solve=solve)


class FixedHistory(NaiveHistory):
    """A naive history whose estimate counts are given directly."""

    def __init__(self, table):
        super().__init__(16)
        self.table = table

    def counts(self, prompt):
        return self.table[prompt]


prompt_state = st.one_of(
    st.just((0, 0, 0)),
    st.integers(1, 7).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n), st.just(n))),
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(st.integers(0, n), st.just(n), st.integers(max(n, 8), 200))
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(prompt_state, min_size=1, max_size=24), st.integers(0, 600))
def test_paper_counts_match_the_rules(states, extra):
    successes = np.array([s for s, _, _ in states], dtype=np.int64)
    trials = np.array([n for _, n, _ in states], dtype=np.int64)
    total = np.array([t for _, _, t in states], dtype=np.int64)
    base = int(np.where(total >= 8, 2, 8).sum())
    budget = base + extra
    expected = naive_paper(list(range(len(states))), FixedHistory(dict(enumerate(states))), budget)
    units = np.ones(len(states), dtype=np.int64)
    effective = expected["effective"]
    if len(effective) == len(states) and budget > 128 * len(states):
        with pytest.raises(InvalidArgumentError):
            run_paper(successes, trials, total, units, budget)
        return
    plan = run_paper(successes, trials, total, units, budget)
    assert int(plan.counts.sum()) == budget
    others = [i for i in range(len(states)) if i not in effective]
    assert plan.counts[others].tolist() == [expected["counts"][i] for i in others]
    assert np.flatnonzero(plan.fallback).tolist() == expected["fallback"]
    if effective:
        assert plan.counts[effective].sum() == sum(expected["counts"][i] for i in effective)
        assert plan.allocation.objective == pytest.approx(
            expected["objective"], rel=1e-9, abs=1e-15
        )
        assert plan.counts[effective].min() >= 2
        assert plan.counts[effective].max() <= 128
    assert (plan.rule == 4).sum() == len(effective)


def test_paper_fallback_example():
    # Prompt 0 unseen, 1 valid p = 0, 2 valid p = 1, 3 effective p = 0.5.
    successes = np.array([0, 0, 16, 8])
    trials = np.array([0, 16, 16, 16])
    total = np.array([0, 16, 16, 16])
    units = np.ones(4, dtype=np.int64)
    plan = run_paper(successes, trials, total, units, 30)
    # base 8 + 2 + 2 + 2 = 14, remaining 16; need of p = 0.5 is floor(3.32) = 3 < 16,
    # surplus 13 over candidates {0, 1}: 7 and 6; the effective prompt gets 2 + 3.
    assert plan.counts.tolist() == [15, 8, 2, 5]
    assert plan.fallback.tolist() == [True, True, False, False]
    assert [RULES[r] for r in plan.rule] == ["unseen", "zero", "one", "effective"]


def test_paper_costs_split_in_equal_cost_shares():
    successes = np.array([0, 0, 8])
    trials = np.array([0, 16, 16])
    total = np.array([0, 16, 16])
    units = np.array([3, 2, 1], dtype=np.int64)
    plan = run_paper(successes, trials, total, units, 61)
    # base cost 24 + 4 + 2 = 30, remaining 31, need 3 -> surplus 28, 14 each:
    # 14 // 3 = 4 and 14 // 2 = 7 rollouts (cost 26), then prompt 1 takes one more (cost 2).
    assert plan.counts[:2].tolist() == [8 + 4, 2 + 7 + 1]
    assert int(units @ plan.counts) == 61


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (
            9,
            "budget == 9 is below the 10 cost units the paper rules give before optimising "
            "(8 rollouts per prompt with fewer than 8 rewards, 2 per other prompt); raise the "
            "budget or lower default_rollouts / min_rollouts.",
        ),
    ],
)
def test_paper_budget_below_base(budget, message):
    with pytest.raises(InvalidArgumentError) as raised:
        run_paper(
            np.array([0, 3]),
            np.array([0, 16]),
            np.array([0, 16]),
            np.ones(2, np.int64),
            budget,
        )
    assert str(raised.value) == message


def test_paper_all_effective_and_capped():
    args = (np.array([4, 8]), np.array([16, 16]), np.array([16, 16]), np.ones(2, np.int64), 300)
    with pytest.raises(InvalidArgumentError) as raised:
        run_paper(*args)
    assert str(raised.value) == (
        "budget == 300 leaves 44 cost units that no rule can spend: every prompt is effective "
        "and capped at max_rollouts == 128, which lets them take 252 of the 296 cost units left "
        "after min_rollouts. Lower the budget, raise max_rollouts, or pass "
        "allow_unused_budget=True."
    )
    plan = run_paper(*args, allow_unused_budget=True)
    assert plan.counts.tolist() == [128, 128]


def test_classify():
    rule = classify(
        np.array([0, 1, 0, 4, 4, 2]),
        np.array([0, 2, 8, 8, 8, 8]),
        np.array([0, 2, 8, 8, 30, 8]),
        8,
    )
    assert [RULES[r] for r in rule] == [
        "unseen",
        "warmup",
        "zero",
        "effective",
        "effective",
        "effective",
    ]
    rule = classify(np.array([8]), np.array([8]), np.array([8]), 8)
    assert RULES[rule[0]] == "one"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(prompt_state, min_size=1, max_size=10),
    st.integers(0, 60),
    st.tuples(st.floats(0.1, 5), st.floats(0.1, 5)),
)
def test_bayes_counts_are_optimal(states, extra, prior):
    successes = np.array([s for s, _, _ in states], dtype=np.int64)
    trials = np.array([n for _, n, _ in states], dtype=np.int64)
    budget = 2 * len(states) + extra
    window, costs, solve = _inputs(
        successes, trials, trials, np.ones(len(states), np.int64), budget
    )
    result = bayes_counts(
        window, prior, costs, min_rollouts=2, max_rollouts=128, min_history=8, solve=solve
    ).allocation
    history = FixedHistory(dict(enumerate(states)))
    expected = naive_bayes(list(range(len(states))), history, budget, prior)
    assert int(result.counts.sum()) == budget
    assert result.objective == pytest.approx(expected["objective"], rel=1e-9, abs=1e-15)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 80), st.integers(1, 30), st.floats(0, 1)), max_size=80),
    st.integers(1, 16),
)
def test_fit_beta_prior_matches_naive(prompts, min_trials):
    fast, slow = RewardHistory(16), NaiveHistory(16)
    for prompt, n, p in prompts:
        outcomes = [k < round(p * n) for k in range(n)]
        fast.record(np.full(n, prompt), "int", np.array(outcomes))
        slow.record([prompt] * n, outcomes)
    got = fit_beta_prior(fast.window_histogram(), min_trials)
    assert got == pytest.approx(naive_prior(slow, min_trials), rel=1e-9)


def test_fit_beta_prior_recovers_a_population():
    rng = np.random.default_rng(3)
    p = rng.beta(2.0, 5.0, 40_000)
    history = RewardHistory(16)
    ids = np.repeat(np.arange(p.size), 16)
    history.record(ids, "int", rng.random(ids.size) < p[ids])
    a, b = fit_beta_prior(history.window_histogram(), 8)
    assert a == pytest.approx(2.0, rel=0.1)
    assert b == pytest.approx(5.0, rel=0.1)


def test_fit_beta_prior_fallbacks_and_clips():
    histogram = np.zeros((17, 17), dtype=np.int64)
    histogram[16, 4] = 31
    assert fit_beta_prior(histogram, 8) == FALLBACK_PRIOR
    histogram[16, 4] = 100  # every prompt at 4/16: no spread beyond noise
    a, b = fit_beta_prior(histogram, 8)
    assert (a + b, a / (a + b)) == pytest.approx((16.0, 0.25))
    histogram[:] = 0
    histogram[16, 0] = 50
    histogram[16, 16] = 50  # all-or-nothing prompts: the smallest concentration
    a, b = fit_beta_prior(histogram, 8)
    assert (a, b) == pytest.approx((0.5, 0.5))
    histogram[:] = 0
    histogram[16, 0] = 100
    a, b = fit_beta_prior(histogram, 8)
    assert a / (a + b) == pytest.approx(0.01)
    assert math.isclose(a + b, 16.0)

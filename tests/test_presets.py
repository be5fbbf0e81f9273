import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _oracles_allocator import (
    best_split_value,
    paper_rules,
    point_tables,
    posterior_tables,
)
from knapsack_alloc.allocator.history import RewardHistory, WindowCounts
from knapsack_alloc.allocator.presets import RULES, bayes_counts, classify, paper_counts
from knapsack_alloc.allocator.prior import FALLBACK_PRIOR, fit_beta_prior
from knapsack_alloc.costs import resolve_costs
from knapsack_alloc.engine import Solve, solver_options
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.values import GRPO
from oracles import rising

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

# (window successes, window trials, total rewards) of one prompt.
prompt_state = st.one_of(
    st.just((0, 0, 0)),  # never seen
    st.integers(1, 7).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n), st.just(n))),
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(st.integers(0, n), st.just(n), st.integers(max(n, 8), 200))
    ),
)


def _arrays(states):
    return tuple(np.array([state[k] for state in states], dtype=np.int64) for k in range(3))


def _split_is_optimal(counts, rates, high, total):
    """The effective prompts' counts reach the brute-force optimum of exact values."""
    exact = point_tables(rates, 2, high)
    tables = [{n: float(v) for n, v in table.items()} for table in exact]
    best = best_split_value(tables, 2, high, total)
    found = sum(tables[k][int(n)] for k, n in enumerate(counts))
    return found >= best * (1 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(prompt_state, min_size=1, max_size=6), st.integers(3, 7), st.integers(0, 50))
def test_paper_counts_follow_the_rules(states, high, extra):
    successes, trials, total = _arrays(states)
    budget = sum(2 if t >= 8 else 8 for _, _, t in states) + extra
    expected = paper_rules(states, budget, high=high)
    units = np.ones(len(states), dtype=np.int64)
    allow_unused_budget = bool(expected["unspent"])
    if allow_unused_budget:
        with pytest.raises(InvalidArgumentError, match="that no rule can spend"):
            run_paper(successes, trials, total, units, budget, max_rollouts=high)
    plan = run_paper(successes, trials, total, units, budget, allow_unused_budget,
                     max_rollouts=high)  # fmt: skip
    assert int(plan.counts.sum()) == budget - expected["unspent"]
    assert {i: int(plan.counts[i]) for i in expected["counts"]} == expected["counts"]
    assert np.flatnonzero(plan.fallback).tolist() == expected["fallback"]
    assert np.flatnonzero(plan.rule == RULES.index("effective")).tolist() == expected["effective"]
    effective = plan.counts[expected["effective"]]
    assert int(effective.sum()) == expected["effective_total"]
    if expected["effective"]:
        assert effective.min() >= 2 and effective.max() <= high
        assert _split_is_optimal(effective, expected["rates"], high, expected["effective_total"])


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


def _paper(states, budget, **params):
    successes, trials, total = _arrays(states)
    units = np.ones(len(states), dtype=np.int64)
    return run_paper(successes, trials, total, units, budget, **params)


def test_paper_effective_prompts_take_everything_when_their_need_exceeds_the_rest():
    # p = 1/4 needs floor(ln 0.1 / ln 0.75) = floor(8.004) = 8, p = 1/2 needs 3: 11 in all.
    # Base 2 + 2 + 8 (unseen) = 12; budget 20 leaves 8 < 11, so no fallback at all.
    plan = _paper([(4, 16, 16), (8, 16, 16), (0, 0, 0)], 20)
    assert plan.counts[2] == 8 and not plan.fallback.any()
    assert plan.counts[:2].sum() == 12
    # The split of those 12 is the optimum of Value(N, 1/4) + Value(12 - N, 1/2).
    values = point_tables([Fraction(1, 4), Fraction(1, 2)], 2, 10)
    best = max(range(2, 11), key=lambda n: values[0][n] + values[1][12 - n])
    assert plan.counts[:2].tolist() == [best, 12 - best]


def test_paper_without_effective_prompts_gives_the_rest_to_unsolved_ones():
    # 0/16 (zero), 16/16 (one), 3 of 5 rewards (warm-up, not valid yet).
    # Base 2 + 2 + 8 = 12; the 9 left go to the zero and the warm-up prompt: 5 and 4.
    plan = _paper([(0, 16, 16), (16, 16, 16), (3, 5, 5)], 21)
    assert plan.counts.tolist() == [2 + 5, 2, 8 + 4]
    assert plan.fallback.tolist() == [True, False, True]
    assert plan.allocation is None


def test_paper_with_nothing_unsolved_falls_back_to_every_other_prompt():
    # 8/16 is effective (need 3); 16/16 is the only other prompt. Base 2 + 2;
    # budget 20 leaves 16: the effective prompt takes its need, the other the 13 left.
    plan = _paper([(8, 16, 16), (16, 16, 16)], 20)
    assert plan.counts.tolist() == [2 + 3, 2 + 13]
    assert plan.fallback.tolist() == [False, True]


def test_paper_need_beyond_max_rollouts_goes_to_the_fallback():
    # max_rollouts 4: p = 1/4 needs min(4, 8) = 4 but can hold only 2 above its base.
    # Base 2 + 8 = 10; budget 20 leaves 10: 2 to the effective prompt, 8 to the unseen one.
    plan = _paper([(4, 16, 16), (0, 0, 0)], 20, max_rollouts=4)
    assert plan.counts.tolist() == [4, 16]
    assert plan.fallback.tolist() == [False, True]


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
    st.lists(prompt_state, min_size=1, max_size=5),
    st.integers(3, 6),
    st.tuples(st.floats(0.1, 5), st.floats(0.1, 5)),
    st.data(),
)
def test_bayes_counts_are_optimal(states, high, prior, data):
    successes, trials, _ = _arrays(states)
    budget = data.draw(st.integers(2 * len(states), high * len(states)), label="budget")
    window, costs, solve = _inputs(successes, trials, trials, np.ones(len(states), np.int64),
                                   budget)  # fmt: skip
    result = bayes_counts(
        window, prior, costs, min_rollouts=2, max_rollouts=high, min_history=8, solve=solve
    ).allocation
    exact = posterior_tables([(s, n) for s, n, _ in states], prior, 2, high)
    tables = [{n: float(v) for n, v in table.items()} for table in exact]
    best = best_split_value(tables, 2, high, budget)
    found = sum(table[int(n)] for table, n in zip(tables, result.counts, strict=True))
    assert int(result.counts.sum()) == budget
    assert found >= best * (1 - 1e-12)
    assert result.objective == pytest.approx(found, rel=1e-9)


def _beta_binomial_rows(histogram, a, b, sizes, copies):
    """Add ``copies * rising(a + b, n)`` prompts of window size ``n`` in exact Beta-binomial shares.

    ``P(s successes in n) = C(n, s) rising(a, s) rising(b, n - s) / rising(a + b, n)``, so the
    counts below are whole numbers with exactly those proportions.
    """
    for n, k in zip(sizes, copies, strict=True):
        for s in range(n + 1):
            histogram[n, s] += k * math.comb(n, s) * int(rising(a, s) * rising(b, n - s))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 7), st.data())
def test_fit_beta_prior_recovers_a_prior_from_its_exact_predictive_histogram(a, data):
    """Method of moments with the binomial noise removed is exact on the expected histogram.

    For p ~ Beta(a, b) and n rewards, E[s / n] = E[p] and E[(s / n)**2] = E[p**2] +
    E[p (1 - p)] / n, whatever the mix of window sizes; the fit must return (a, b).
    """
    window = 8
    b = data.draw(st.integers(1, window - a), label="b")  # a + b <= window: no clipping
    min_trials = data.draw(st.integers(1, window), label="min_trials")
    sizes = data.draw(
        st.lists(st.integers(min_trials, window), min_size=1, max_size=4, unique=True)
        .filter(lambda sizes: max(sizes) >= 2),  # one reward alone says nothing of the spread
        label="sizes",
    )
    # At least 32 copies of each size: the fit needs 32 prompts, else it falls back.
    copies = data.draw(
        st.lists(st.integers(32, 96), min_size=len(sizes), max_size=len(sizes)), label="copies"
    )
    histogram = np.zeros((window + 1, window + 1), dtype=np.int64)
    _beta_binomial_rows(histogram, a, b, sizes, copies)
    # Prompts with fewer rewards than min_trials do not count, whatever they show.
    for n in range(1, min_trials):
        histogram[n, data.draw(st.integers(0, n))] += data.draw(st.integers(0, 10**6))
    assert fit_beta_prior(histogram, min_trials) == pytest.approx((a, b), rel=1e-9)


def test_fit_beta_prior_by_hand_with_mixed_window_sizes():
    histogram = np.zeros((17, 17), dtype=np.int64)
    histogram[8, 6] = 16  # p_hat = 3/4 from 8 rewards
    histogram[4, 1] = 16  # p_hat = 1/4 from 4 rewards
    # m = 1/2, mean of p_hat**2 = 5/16, h = mean of 1/n = 3/16;
    # E[p**2] = (5/16 - 3/32) / (13/16) = 7/26, v = 7/26 - 1/4 = 1/52,
    # a + b = (1/4) / (1/52) - 1 = 12: Beta(6, 6).
    assert fit_beta_prior(histogram, 4) == pytest.approx((6.0, 6.0), rel=1e-12)
    # With min_trials 5 only the 16 prompts at 6/8 count: fewer than 32, the fallback.
    assert fit_beta_prior(histogram, 5) == FALLBACK_PRIOR
    # Window 8 caps a + b at 8: Beta(4, 4).
    small = np.zeros((9, 9), dtype=np.int64)
    small[8, 6] = small[4, 1] = 16
    assert fit_beta_prior(small, 4) == pytest.approx((4.0, 4.0), rel=1e-12)
    # 24 prompts at 4/8, 8 at 0/2: m = 3/8, E[p**2] = 27/200 < m**2, no spread left:
    # the largest concentration, the window, keeps the mean: Beta(3, 5).
    small[:] = 0
    small[8, 4], small[2, 0] = 24, 8
    assert fit_beta_prior(small, 1) == pytest.approx((3.0, 5.0), rel=1e-12)


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

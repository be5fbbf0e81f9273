"""Every solver against brute force and against each other, on generated instances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knapsack_alloc import BetaPosterior, allocate
from knapsack_alloc.costs import resolve_costs
from knapsack_alloc.solvers._gains import gain_table
from knapsack_alloc.values import GRPO, NONZERO
from oracles import brute_force, greedy_one_at_a_time

RATES = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5, 0.25, 1 / 16, 15 / 16]),
    st.floats(0.0, 1.0, allow_nan=False),
)
EXACT_SOLVERS = ["auto", "dp", "textbook", "ortools"]
TOLERANCE = 1e-9


@st.composite
def instances(draw, max_prompts=4, max_span=4, unit_cost=False, min_lower=0):
    n = draw(st.integers(1, max_prompts))
    rates = np.array(draw(st.lists(RATES, min_size=n, max_size=n)))
    lower = np.array(draw(st.lists(st.integers(min_lower, 3), min_size=n, max_size=n)))
    upper = lower + np.array(draw(st.lists(st.integers(0, max_span), min_size=n, max_size=n)))
    if unit_cost:
        costs = np.ones(n, dtype=np.int64)
    else:
        costs = np.array(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)))
    budget = draw(st.integers(int(costs @ lower), int(costs @ upper)))
    return rates, lower, upper, costs, budget


def beliefs(draw_rates, seed):
    rng = np.random.default_rng(seed)
    return BetaPosterior(rng.integers(0, 6, len(draw_rates)), rng.integers(0, 6, len(draw_rates)))


def check_feasible(result, lower, upper, costs, budget):
    counts = result.counts
    assert counts.dtype == np.int64
    assert np.all(counts >= lower) and np.all(counts <= upper)
    assert costs @ counts <= budget


def check_against_oracle(estimates, model, lower, upper, costs, budget, solver):
    best, _ = brute_force(lambda c: model.value(c, estimates), lower, upper, costs, budget)
    result = allocate(
        estimates, budget, min_rollouts=lower, max_rollouts=upper, costs=costs,
        value=model, solver=solver,
    )  # fmt: skip
    check_feasible(result, lower, upper, costs, budget)
    scale = max(1.0, abs(best))
    assert result.upper_bound >= best - TOLERANCE * scale
    if result.status == "optimal":
        assert result.objective == pytest.approx(best, rel=TOLERANCE, abs=1e-12)
    else:
        assert result.objective <= best + TOLERANCE * scale
    return result


@pytest.mark.parametrize("solver", EXACT_SOLVERS)
@pytest.mark.parametrize("model", [GRPO, NONZERO], ids=["grpo", "nonzero"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance=instances())
def test_exact_solvers_match_brute_force(solver, model, instance):
    rates, lower, upper, costs, budget = instance
    result = check_against_oracle(rates, model, lower, upper, costs, budget, solver)
    assert result.status == "optimal"


@pytest.mark.parametrize("solver", EXACT_SOLVERS)
@settings(max_examples=40, deadline=None)
@given(instance=instances(), seed=st.integers(0, 2**16))
def test_beta_posterior_matches_brute_force(solver, instance, seed):
    rates, lower, upper, costs, budget = instance
    result = check_against_oracle(beliefs(rates, seed), GRPO, lower, upper, costs, budget, solver)
    assert result.status == "optimal"


@settings(max_examples=80, deadline=None)
@given(instance=instances(min_lower=1))
def test_greedy_is_optimal_with_unit_costs_or_bounded_otherwise(instance):
    rates, lower, upper, costs, budget = instance
    result = check_against_oracle(rates, GRPO, lower, upper, costs, budget, "greedy")
    if np.all(costs == costs[0]):
        assert result.status == "optimal"


@settings(max_examples=80, deadline=None)
@given(instance=instances(unit_cost=True, min_lower=1))
def test_unit_costs_spend_the_whole_budget(instance):
    rates, lower, upper, _, budget = instance
    for solver in ("greedy", "dp", "auto"):
        result = allocate(rates, budget, min_rollouts=lower, max_rollouts=upper, solver=solver)
        assert result.counts.sum() == budget


def convex_value(counts, rates):
    """Increasing, convex in N: greedy is not exact, the DP must be used."""
    return rates * counts.astype(float) ** 2


def step_value(counts, rates):
    """A value that only pays off from 3 rollouts on."""
    return np.where(counts >= 3, rates, 0.0)


@pytest.mark.parametrize("function", [convex_value, step_value])
@pytest.mark.parametrize("solver", EXACT_SOLVERS)
@settings(max_examples=40, deadline=None)
@given(instance=instances())
def test_non_concave_callables_are_solved_exactly(function, solver, instance):
    rates, lower, upper, costs, budget = instance
    best, _ = brute_force(lambda c: function(c, rates), lower, upper, costs, budget)
    result = allocate(
        rates, budget, min_rollouts=lower, max_rollouts=upper, costs=costs,
        value=function, solver=solver,
    )  # fmt: skip
    check_feasible(result, lower, upper, costs, budget)
    assert result.objective == pytest.approx(best, rel=TOLERANCE, abs=1e-12)


@st.composite
def medium_instances(draw, unit_cost):
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    grid = draw(st.booleans())
    rates = rng.integers(0, 17, n) / 16 if grid else rng.random(n)
    lower = rng.integers(1, 4, n)
    upper = lower + rng.integers(0, 40, n)
    costs = np.ones(n, dtype=np.int64) if unit_cost else rng.integers(1, 9, n)
    budget = draw(st.integers(int(costs @ lower), int(costs @ upper)))
    return rates, lower, upper, costs, budget


@pytest.mark.parametrize("unit_cost", [True, False])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_greedy_takes_rollouts_in_the_documented_order(unit_cost, data):
    """The threshold kernel equals a one-at-a-time greedy on the same gains, ties included."""
    rates, lower, upper, costs, budget = data.draw(medium_instances(unit_cost))
    result = allocate(
        rates, budget, min_rollouts=lower, max_rollouts=upper, costs=costs, solver="greedy"
    )
    source = GRPO.gains(rates, lower, upper - lower)
    table = gain_table(
        lower, upper - lower, source.term_a, source.term_b, source.a_num, source.b_num,
        source.den, source.step,
    )  # fmt: skip
    rows = [table[i, : upper[i] - lower[i]].tolist() for i in range(len(rates))]
    capacity = budget - int(costs @ lower)
    expected = lower + greedy_one_at_a_time(rows, lower, costs, capacity)
    np.testing.assert_array_equal(result.counts, expected)


@pytest.mark.parametrize("unit_cost", [True, False])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fast_solvers_agree_with_the_textbook_dp(unit_cost, data):
    rates, lower, upper, costs, budget = data.draw(medium_instances(unit_cost))
    reference = allocate(
        rates, budget, min_rollouts=lower, max_rollouts=upper, costs=costs, solver="textbook"
    )
    for solver in ("auto", "dp"):
        result = allocate(
            rates, budget, min_rollouts=lower, max_rollouts=upper, costs=costs, solver=solver
        )
        check_feasible(result, lower, upper, costs, budget)
        assert result.objective == pytest.approx(reference.objective, rel=1e-10, abs=1e-14)
        assert result.status == "optimal"
    greedy = allocate(
        rates, budget, min_rollouts=lower, max_rollouts=upper, costs=costs, solver="greedy"
    )
    assert greedy.objective <= reference.objective * (1 + 1e-10) + 1e-14
    assert greedy.upper_bound >= reference.objective * (1 - 1e-10) - 1e-14


@settings(max_examples=40, deadline=None)
@given(instance=instances(max_prompts=5, max_span=6))
def test_objective_is_monotone_in_budget(instance):
    rates, lower, upper, costs, budget = instance
    if budget == int(costs @ upper):
        budget -= 1
    if budget < int(costs @ lower):
        return
    kwargs = dict(min_rollouts=lower, max_rollouts=upper, costs=costs, solver="dp")
    larger = allocate(rates, budget + 1, **kwargs)
    assert larger.objective >= allocate(rates, budget, **kwargs).objective


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_same_input_same_output(data):
    rates, lower, upper, costs, budget = data.draw(medium_instances(unit_cost=False))
    kwargs = dict(min_rollouts=lower, max_rollouts=upper, costs=costs)
    for solver in ("auto", "greedy", "dp"):
        first = allocate(rates, budget, solver=solver, **kwargs)
        second = allocate(rates.copy(), budget, solver=solver, **kwargs)
        np.testing.assert_array_equal(first.counts, second.counts)


@pytest.mark.parametrize("solver", ["auto", "dp", "ortools"])
@settings(max_examples=40, deadline=None)
@given(instance=instances(min_lower=1), resolution=st.sampled_from([0.25, 0.5, 1.0, 0.1]),
       noise=st.lists(st.floats(-0.1, 0.1), min_size=4, max_size=4))  # fmt: skip
def test_rounded_costs_are_optimal_for_the_rounded_problem(solver, instance, resolution, noise):
    """Exact for the costs as rounded (how they are rounded is tested in test_limits.py)."""
    rates, lower, upper, costs, budget = instance
    real_costs = costs * resolution + np.array(noise[: len(costs)]) * resolution
    rounded = resolve_costs(real_costs, budget * resolution, len(rates), resolution)
    if rounded.budget_units < rounded.units @ lower:
        return  # rounding up left too little for the minimums (an error, tested elsewhere)
    best, _ = brute_force(
        lambda c: GRPO.value(c, rates), lower, upper, rounded.units, rounded.budget_units
    )
    result = allocate(
        rates, budget * resolution, min_rollouts=lower, max_rollouts=upper, costs=real_costs,
        cost_resolution=resolution, solver=solver, allow_unused_budget=True,
    )  # fmt: skip
    assert rounded.units @ result.counts <= rounded.budget_units
    assert result.objective == pytest.approx(best, rel=TOLERANCE, abs=1e-12)


@pytest.mark.parametrize("value", ["grpo", "nonzero"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_one_call_path_equals_the_general_path(value, data):
    """Scalar bounds and unit costs take a fused kernel; it must agree bit for bit."""
    n = data.draw(st.integers(1, 80))
    rates = np.array(data.draw(st.lists(RATES, min_size=n, max_size=n)))
    lower = data.draw(st.integers(1, 4))
    upper = data.draw(st.integers(lower, 60))
    budget = data.draw(st.integers(n * lower, n * upper))
    fused = allocate(rates, budget, min_rollouts=lower, max_rollouts=upper, value=value)
    general = allocate(
        rates, budget, min_rollouts=lower, max_rollouts=upper, value=value, costs=np.ones(n)
    )
    np.testing.assert_array_equal(fused.counts, general.counts)
    assert fused.objective == pytest.approx(general.objective, rel=1e-12)
    assert (fused.status, fused.solver, fused.total_cost) == ("optimal", "greedy", budget)

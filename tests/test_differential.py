"""Every solver against brute force and against each other, on generated instances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _solvers import EXACT_SOLVERS, ORTOOLS
from knapsack_alloc import BetaPosterior, allocate
from knapsack_alloc.costs import resolve_costs
from knapsack_alloc.values import GRPO, NONZERO
from knapsack_alloc.values.posterior import EXACT_EXPONENT
from oracles import (
    best_total,
    brute_force,
    exact_expected_value,
    exact_tables,
    exact_value,
    greedy_one_at_a_time,
    is_float_exact,
)

# Rates where floating point is delicate: exact 0 and 1, subnormal, the
# smallest normal, 1e-12 from either end, the float just below 1.
EDGE_RATES = [0.0, 1.0, 5e-324, 1e-310, 2.2250738585072014e-308, 1e-300, 1e-12, 1 - 1e-12,
              1 - 2**-53, 0.5, 0.25, 1 / 16, 15 / 16]  # fmt: skip
RATES = st.one_of(st.sampled_from(EDGE_RATES), st.floats(0.0, 1.0))
# Posterior counts from none to a thousand (larger ones: test_large_posterior_counts_*).
POSTERIOR_COUNTS = st.one_of(st.integers(0, 6), st.sampled_from([16, 100, 1000]))
TOLERANCE = 1e-9
# Values below this are underflow territory (a subnormal rate's value is about p**2).
NEGLIGIBLE = 1e-300


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


@st.composite
def beliefs(draw, size):
    counts = st.lists(POSTERIOR_COUNTS, min_size=size, max_size=size)
    return BetaPosterior(draw(counts), draw(counts))


def weight_of(model):
    return model.p_power, model.q_power


def check_feasible(result, lower, upper, costs, budget):
    counts = result.counts
    assert counts.dtype == np.int64
    assert np.all(counts >= lower) and np.all(counts <= upper)
    assert costs @ counts <= budget


def check_against_oracle(estimates, model, lower, upper, costs, budget, solver):
    """The solver's answer against the brute-force optimum of the exact values."""
    tables = [{n: float(v) for n, v in table.items()}
              for table in exact_tables(weight_of(model), estimates, lower, upper)]  # fmt: skip
    best = best_total(tables, lower, upper, costs, budget)
    result = allocate(
        estimates, budget, min_rollouts=lower, max_rollouts=upper, costs=costs,
        value=model, solver=solver,
    )  # fmt: skip
    check_feasible(result, lower, upper, costs, budget)
    found = sum(table[int(n)] for table, n in zip(tables, result.counts, strict=True))
    slack = TOLERANCE * abs(best) + NEGLIGIBLE
    assert result.objective == pytest.approx(found, rel=TOLERANCE, abs=NEGLIGIBLE)
    assert result.upper_bound >= best - slack
    if result.status == "optimal":
        assert found >= best - slack
    return result


@pytest.mark.parametrize("solver", EXACT_SOLVERS)
@pytest.mark.parametrize("model", [GRPO, NONZERO], ids=["grpo", "nonzero"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance=instances())
def test_exact_solvers_match_brute_force(solver, model, instance):
    rates, lower, upper, costs, budget = instance
    result = check_against_oracle(rates, model, lower, upper, costs, budget, solver)
    # SCIP cannot resolve gains that all lie below 1e-200 (subnormal rates): OR-Tools
    # then returns the minimums and says so (docs/solvers.md).
    unresolved = solver == "ortools" and result.upper_bound < 1e-200
    assert result.status == "optimal" or unresolved


@pytest.mark.parametrize("solver", EXACT_SOLVERS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_beta_posterior_matches_brute_force(solver, data):
    rates, lower, upper, costs, budget = data.draw(instances())
    estimates = data.draw(beliefs(len(rates)))
    result = check_against_oracle(estimates, GRPO, lower, upper, costs, budget, solver)
    assert result.status == "optimal"


@pytest.mark.parametrize(
    "large",
    [100, 1000, 10**4, 10**6, 10**9],
)
@pytest.mark.parametrize("model", [GRPO, NONZERO], ids=["grpo", "nonzero"])
def test_large_posterior_counts_keep_values_accurate(model, large):
    pairs = [(s, f) for s in (0, 3, large // 2, large) for f in (0, 3, large // 2, large)]
    beliefs = BetaPosterior([s for s, _ in pairs], [f for _, f in pairs])
    weight = weight_of(model)
    for n in (2, 3, 8, 64):
        got = model.value(np.full(len(pairs), n), beliefs)
        expected = [float(exact_expected_value(n, s + 1, f + 1, weight)) for s, f in pairs]
        assert (got >= 0).all()
        assert got == pytest.approx(expected, rel=TOLERANCE, abs=NEGLIGIBLE)


@pytest.mark.parametrize("model", [GRPO, NONZERO], ids=["grpo", "nonzero"])
def test_posterior_values_beyond_the_exact_range_use_log_gamma(model):
    """Past EXACT_EXPONENT rollouts the value comes from log-Gamma moments: still right."""
    beliefs = BetaPosterior([0, 1, 5, 40], [40, 5, 1, 0])
    weight = weight_of(model)
    n = EXACT_EXPONENT + 1
    got = model.value(np.full(4, n), beliefs)
    expected = [float(exact_expected_value(n, s + 1, f + 1, weight))
                for s, f in zip(beliefs.successes, beliefs.failures, strict=True)]  # fmt: skip
    assert got == pytest.approx(expected, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    successes=st.lists(st.floats(0, 1e3), min_size=1, max_size=6),
    x=st.integers(0, 40),
    y=st.integers(0, 40),
)
def test_integer_moments_match_log_gamma_moments(successes, x, y):
    """The exact products and the log-Gamma formula give the same moments."""
    beliefs = BetaPosterior(successes, successes[::-1])
    (exact,) = beliefs.moments((x, y))
    (log_gamma,) = beliefs.moments((float(x) + 0.0 * beliefs.alpha, float(y)))
    assert exact == pytest.approx(log_gamma, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(rates=st.lists(st.floats(0.0, 1.0, width=32), min_size=1, max_size=5), data=st.data())
def test_float32_rates_are_the_same_numbers_in_float64(rates, data):
    """float32 input is widened exactly, not rounded through another type."""
    single = np.array(rates, dtype=np.float32)
    size = single.size
    budget = data.draw(st.integers(2 * size, 6 * size), label="budget")
    result = allocate(single, budget, max_rollouts=6)
    assert result.counts.tolist() == allocate(single.astype(np.float64), budget,
                                              max_rollouts=6).counts.tolist()  # fmt: skip
    check_against_oracle(single.astype(np.float64), GRPO, np.full(size, 2), np.full(size, 6),
                         np.ones(size, dtype=np.int64), budget, "auto")  # fmt: skip


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


GRID_RATES = st.integers(0, 16).map(lambda k: k / 16)


@st.composite
def medium_instances(draw, unit_cost, rates=None, max_span=39):
    n = draw(st.integers(1, 60), label="prompts")
    rate = rates if rates is not None else draw(st.sampled_from([GRID_RATES, RATES]))
    rates = np.array(draw(st.lists(rate, min_size=n, max_size=n), label="rates"))
    lower = np.array(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n), label="lower"))
    spans = draw(st.lists(st.integers(0, max_span), min_size=n, max_size=n), label="spans")
    upper = lower + np.array(spans)
    if unit_cost:
        costs = np.ones(n, dtype=np.int64)
    else:
        costs = np.array(draw(st.lists(st.integers(1, 8), min_size=n, max_size=n), label="costs"))
    budget = draw(st.integers(int(costs @ lower), int(costs @ upper)), label="budget")
    return rates, lower, upper, costs, budget


def exact_gain_rows(rates, lower, upper):
    """``Value(N + 1, p) - Value(N, p)`` from the formula, for ``lower <= N < upper``.

    On eighths with ``N <= 16`` every gain is a float exactly (checked), so the
    order of rollouts by ``gain / cost`` is the same in exact and float arithmetic.
    """
    rows = []
    for p, lo, hi in zip(rates, lower, upper, strict=True):
        gains = [exact_value(n + 1, p) - exact_value(n, p) for n in range(lo, hi)]
        assert all(is_float_exact(gain) for gain in gains)
        rows.append([float(gain) for gain in gains])
    return rows


@pytest.mark.parametrize("unit_cost", [True, False])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_greedy_takes_rollouts_in_the_documented_order(unit_cost, data):
    """The threshold kernel equals a one-at-a-time greedy on the model's gains, ties included."""
    eighths = st.integers(0, 8).map(lambda k: k / 8)
    rates, lower, upper, costs, budget = data.draw(
        medium_instances(unit_cost, rates=eighths, max_span=13)
    )
    result = allocate(
        rates, budget, min_rollouts=lower, max_rollouts=upper, costs=costs, solver="greedy"
    )
    rows = exact_gain_rows(rates, lower, upper)
    capacity = budget - int(costs @ lower)
    expected = lower + greedy_one_at_a_time(rows, lower, costs, capacity)
    np.testing.assert_array_equal(result.counts, expected)


def test_greedy_order_by_hand():
    # p = 1/2 from N = 2: gains 1/8 * 2**-N (1/32, 1/64, ...); p = 1/4 from N = 2:
    # gains 9/64 * (1/4**N * 3/4 + (3/4)**N / 4) = 9/64 * 30/64 = 0.0659, then 9/64 * 33/256.
    # Unit costs, 3 rollouts: 1/4's first (0.0659), 1/2's first (1/32), 1/4's second (0.0181).
    assert allocate([0.5, 0.25], 7, max_rollouts=8).counts.tolist() == [3, 4]
    # Cost 2 for p = 1/4 halves its keys: 0.0330 > 1/32 > 0.0091 < 1/64: budget 4 + 6 = 10
    # buys its first (2), then 1/2's first (1) and second (1): the last 2 units go to 1/4.
    result = allocate([0.5, 0.25], 10, max_rollouts=8, costs=[1, 2], solver="greedy")
    assert result.counts.tolist() == [4, 3]


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


@pytest.mark.parametrize("solver", ["auto", "dp", ORTOOLS])
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
    tables = [{n: float(v) for n, v in table.items()}
              for table in exact_tables(weight_of(GRPO), rates, lower, upper)]  # fmt: skip
    best = best_total(tables, lower, upper, rounded.units, rounded.budget_units)
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

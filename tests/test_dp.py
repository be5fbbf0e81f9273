"""The exact DP for integer costs: its Lagrangian windows and kernels, against brute force.

With unit costs the greedy proves its own answer optimal and ``dp`` returns it
without running a DP, so these tests use integer costs, where the greedy is
often not optimal and the windowed DP has to find the optimum. The kernels are
also checked on their own, on gain tables of multiples of 1/64: every sum is
then exact in floating point, so values are compared for equality.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st

from knapsack_alloc import BetaPosterior, allocate
from knapsack_alloc.solvers.kernels.dp import dp_kernel, lagrangian_windows
from knapsack_alloc.solvers.kernels.textbook import textbook_dp
from knapsack_alloc.values import GRPO, NONZERO
from oracles import best_total, exact_tables

TOLERANCE = 1e-9
RATES = st.one_of(st.integers(0, 16).map(lambda k: k / 16), st.floats(0.0, 1.0))


@st.composite
def integer_cost_instances(draw, max_prompts=4, max_span=6):
    n = draw(st.integers(1, max_prompts), label="prompts")
    lower = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n), label="lower")
    spans = draw(st.lists(st.integers(0, max_span), min_size=n, max_size=n), label="spans")
    costs = draw(st.lists(st.integers(1, 6), min_size=n, max_size=n), label="costs")
    upper = [lo + s for lo, s in zip(lower, spans, strict=True)]
    floor = sum(c * lo for c, lo in zip(costs, lower, strict=True))
    ceiling = sum(c * hi for c, hi in zip(costs, upper, strict=True))
    budget = draw(st.integers(floor, ceiling), label="budget")
    if draw(st.booleans(), label="posterior"):
        counts = st.lists(st.integers(0, 8), min_size=n, max_size=n)
        estimates = BetaPosterior(draw(counts), draw(counts))
    else:
        estimates = np.array(draw(st.lists(RATES, min_size=n, max_size=n), label="rates"))
    return estimates, np.array(lower), np.array(upper), np.array(costs), budget


@pytest.mark.parametrize("model", [GRPO, NONZERO], ids=["grpo", "nonzero"])
@settings(max_examples=150, deadline=None)
@given(instance=integer_cost_instances())
def test_dp_with_integer_costs_matches_brute_force(model, instance):
    estimates, lower, upper, costs, budget = instance
    exact = exact_tables((model.p_power, model.q_power), estimates, lower, upper)
    tables = [{n: float(v) for n, v in table.items()} for table in exact]
    best = best_total(tables, lower, upper, costs, budget)
    kwargs = dict(min_rollouts=lower, max_rollouts=upper, costs=costs, value=model)
    greedy = allocate(estimates, budget, solver="greedy", **kwargs)
    greedy_value = sum(t[int(n)] for t, n in zip(tables, greedy.counts, strict=True))
    target(best - greedy_value, label="greedy's shortfall")  # seek instances the DP must fix
    for solver in ("dp", "auto"):
        result = allocate(estimates, budget, solver=solver, **kwargs)
        assert costs @ result.counts <= budget
        assert np.all(result.counts >= lower) and np.all(result.counts <= upper)
        found = sum(t[int(n)] for t, n in zip(tables, result.counts, strict=True))
        assert found >= best - TOLERANCE * best - 1e-300
        assert result.status == "optimal"
        if greedy.status != "optimal":
            assert result.solver == "dp"  # the windowed DP ran: the greedy proved nothing


def test_the_windowed_dp_fixes_a_greedy_answer_by_hand():
    # p = 1/2: Value(N) = (1 - 2**(1 - N)) / 8, gains 2**-N / 8. Costs 1 and 3, 4 units
    # above the minimums. By gain per cost the greedy gives all 4 to the cheap prompt
    # (the dear one's 1/96 never fits after the first two): [6, 2], worth 47/256.
    # One rollout more for each, cost 1 + 3, is worth 3/16 = 48/256.
    kwargs = dict(min_rollouts=2, max_rollouts=8, costs=[1, 3])
    greedy = allocate([0.5, 0.5], 12, solver="greedy", **kwargs)
    assert greedy.counts.tolist() == [6, 2] and greedy.objective == 47 / 256
    assert greedy.status == "feasible"
    for solver in ("dp", "auto"):
        result = allocate([0.5, 0.5], 12, solver=solver, **kwargs)
        assert result.counts.tolist() == [3, 3] and result.objective == 3 / 16
        assert (result.status, result.solver) == ("optimal", "dp")


# ---------------------------------------------------------------- the kernels
@st.composite
def concave_tables(draw, max_prompts=4, max_span=8, max_cost=5):
    """Non-increasing gain rows of multiples of 1/64 (sums exact), costs and a capacity."""
    n = draw(st.integers(1, max_prompts))
    spans = draw(st.lists(st.integers(0, max_span), min_size=n, max_size=n))
    width = max(spans)
    table = np.zeros((n, width))
    for i, span in enumerate(spans):
        row = draw(st.lists(st.integers(0, 64), min_size=span, max_size=span))
        table[i, :span] = sorted(row, reverse=True)
    table /= 64
    costs = np.array(draw(st.lists(st.integers(1, max_cost), min_size=n, max_size=n)))
    capacity = draw(st.integers(0, int(costs @ spans)))
    return table, np.array(spans, dtype=np.int64), costs.astype(np.int64), capacity


def gain_of(table, extra):
    return sum(float(table[i, :k].sum()) for i, k in enumerate(extra))


def brute_force_extra(table, span, costs, capacity):
    """Best summed gain of extra rollouts within the capacity, over every choice."""
    best = 0.0
    for extra in itertools.product(*(range(s + 1) for s in span)):
        if costs @ np.array(extra) <= capacity:
            best = max(best, gain_of(table, extra))
    return best


KERNELS = {
    "divide-and-conquer": lambda *problem: dp_kernel(*problem, True),
    "scan": lambda *problem: dp_kernel(*problem, False),
    "textbook": textbook_dp,
}


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@settings(max_examples=150, deadline=None)
@given(problem=concave_tables())
def test_dp_kernels_match_brute_force(kernel, problem):
    table, span, costs, capacity = problem
    extra, gain = KERNELS[kernel](table, span, costs, capacity)
    assert np.all(extra >= 0) and np.all(extra <= span)
    assert costs @ extra <= capacity
    assert gain == gain_of(table, extra) == brute_force_extra(table, span, costs, capacity)


@settings(max_examples=60, deadline=None)
@given(problem=concave_tables(max_prompts=6, max_span=40, max_cost=7))
def test_divide_and_conquer_equals_the_full_scan_on_larger_tables(problem):
    table, span, costs, capacity = problem
    _, fast = dp_kernel(table, span, costs, capacity, True)
    _, slow = dp_kernel(table, span, costs, capacity, False)
    assert fast == slow


def reduced_values(row, span, unit_price):
    """``G(k) - price * cost * k`` for ``k = 0 .. span``."""
    return [float(row[:k].sum()) - unit_price * k for k in range(span + 1)]


@settings(max_examples=200, deadline=None)
@given(problem=concave_tables(), price=st.integers(0, 80), slack=st.integers(0, 200))
def test_windows_hold_every_count_within_the_slack(problem, price, slack):
    """``[lo, hi]`` is exactly the counts whose reduced value is within ``slack`` of the best."""
    table, span, costs, _ = problem
    price, slack = price / 256, slack / 256  # dyadic: every sum below is exact
    lo, hi = lagrangian_windows(table, span, costs, price, slack)
    for i in range(span.size):
        reduced = reduced_values(table[i], int(span[i]), price * costs[i])
        close = [k for k, r in enumerate(reduced) if max(reduced) - r <= slack]
        assert (lo[i], hi[i]) == (min(close), max(close))


@settings(max_examples=200, deadline=None)
@given(problem=concave_tables(), price=st.integers(0, 80), data=st.data())
def test_every_allocation_worth_more_than_a_feasible_one_lies_inside_the_windows(
    problem, price, data
):
    """The lemma the windowed DP rests on, checked by enumeration.

    For any price, ``D = price * C + sum_i max_k reduced_i(k)`` bounds every
    feasible allocation; if one is worth ``F``, any allocation worth at least
    ``F`` loses at most ``D - F`` of reduced value in total, so each prompt's
    count lies within its window for ``slack = D - F``.
    """
    table, span, costs, capacity = problem
    price /= 256
    choices = [
        extra for extra in itertools.product(*(range(s + 1) for s in span))
        if costs @ np.array(extra) <= capacity
    ]  # fmt: skip
    reference = data.draw(st.sampled_from(choices), label="a feasible allocation")
    floor = gain_of(table, reference)
    dual = price * capacity + sum(
        max(reduced_values(table[i], int(span[i]), price * costs[i])) for i in range(span.size)
    )
    assert dual >= floor
    lo, hi = lagrangian_windows(table, span, costs, price, dual - floor)
    for extra in choices:
        if gain_of(table, extra) >= floor:
            assert np.all(lo <= extra) and np.all(np.array(extra) <= hi), extra

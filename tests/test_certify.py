"""certify(): a proven bound on the optimum of an instance, whoever found the counts."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knapsack_alloc import BetaPosterior, Certificate, InvalidArgumentError, allocate, certify
from knapsack_alloc.values import GRPO, NONZERO, CallableValue
from oracles import brute_force

TOLERANCE = 1e-9
RATES = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5, 0.25, 1 / 16, 15 / 16]),
    st.floats(0.0, 1.0, allow_nan=False),
)


def convex_value(counts, rates):
    """Increasing and convex in N: the Lagrangian bound has a gap."""
    return rates * counts.astype(float) ** 2


def step_value(counts, rates):
    """Pays off only from 3 rollouts on."""
    return np.where(counts >= 3, rates, 0.0)


MODELS = {
    "grpo": GRPO,
    "nonzero": NONZERO,
    "convex": CallableValue(convex_value),
    "step": CallableValue(step_value),
}


@st.composite
def instances(draw, costs="integer", min_lower=0, max_prompts=4, max_span=4):
    """Small instances; real costs are multiples of 1/8 so the oracle's sums are exact."""
    n = draw(st.integers(1, max_prompts))
    rates = np.array(draw(st.lists(RATES, min_size=n, max_size=n)))
    lower = np.array(draw(st.lists(st.integers(min_lower, 3), min_size=n, max_size=n)))
    upper = lower + np.array(draw(st.lists(st.integers(0, max_span), min_size=n, max_size=n)))
    if costs == "unit":
        cost = np.ones(n)
    elif costs == "integer":
        cost = np.array(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)), dtype=float)
    else:
        cost = np.array(draw(st.lists(st.integers(1, 24), min_size=n, max_size=n))) / 8
    eighths = draw(st.integers(int(8 * (cost @ lower)), int(8 * (cost @ upper)) + 8))
    return rates, lower, upper, cost, eighths / 8


def solve_by_brute_force(model, estimates, lower, upper, costs, budget):
    return brute_force(lambda c: model.value(c, estimates), lower, upper, costs, budget)


@pytest.mark.parametrize("costs", ["unit", "integer", "real"])
@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_the_bound_is_never_below_the_optimum(name, costs, data):
    rates, lower, upper, cost, budget = data.draw(instances(costs))
    model = MODELS[name]
    best, best_counts = solve_by_brute_force(model, rates, lower, upper, cost, budget)
    kwargs = dict(min_rollouts=lower, max_rollouts=upper, costs=cost, value=model)
    certificate = certify(best_counts, rates, budget, **kwargs)
    assert certificate.objective == pytest.approx(best, rel=1e-12, abs=1e-300)
    assert certificate.upper_bound >= best - TOLERANCE * max(abs(best), 1e-300)
    # The bound is computed from the instance alone: any feasible counts get the same one.
    assert certify(lower, rates, budget, **kwargs).upper_bound == certificate.upper_bound


@pytest.mark.parametrize("name", ["grpo", "nonzero"])
@settings(max_examples=80, deadline=None)
@given(data=st.data(), posterior=st.booleans())
def test_the_bound_is_the_optimum_for_concave_values_and_unit_costs(name, data, posterior):
    """No duality gap here, so certify proves the brute-force optimum optimal."""
    rates, lower, upper, cost, budget = data.draw(instances("unit", min_lower=1))
    budget = np.floor(budget)
    estimates = rates
    if posterior:
        counts = st.lists(st.integers(0, 6), min_size=rates.size, max_size=rates.size)
        estimates = BetaPosterior(data.draw(counts), data.draw(counts))
    model = MODELS[name]
    best, best_counts = solve_by_brute_force(model, estimates, lower, upper, cost, budget)
    certificate = certify(best_counts, estimates, budget, min_rollouts=lower,
                          max_rollouts=upper, value=model)  # fmt: skip
    assert certificate.upper_bound == pytest.approx(best, rel=TOLERANCE, abs=1e-300)
    assert certificate.optimal


@pytest.mark.parametrize("name", ["grpo", "convex"])
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_allocate_reports_this_bound_or_a_tighter_one(name, data):
    rates, lower, upper, cost, budget = data.draw(instances("integer", min_lower=1))
    budget = int(min(budget, cost @ upper))
    model = MODELS[name]
    best, _ = solve_by_brute_force(model, rates, lower, upper, cost, budget)
    result = allocate(rates, budget, min_rollouts=lower, max_rollouts=upper, costs=cost,
                      value=model)  # fmt: skip
    certificate = certify(result.counts, rates, budget, min_rollouts=lower, max_rollouts=upper,
                          costs=cost, value=model)  # fmt: skip
    scale = TOLERANCE * max(abs(best), 1e-300)
    assert best - scale <= result.upper_bound <= certificate.upper_bound + scale
    assert certificate.objective == result.objective
    assert result.status == "optimal"  # the DP proves it even where the Lagrangian bound cannot


def test_a_wrong_answer_is_not_called_optimal(monkeypatch):
    """The status compares objective and bound: a broken solver cannot certify itself."""
    import knapsack_alloc.solvers.kernels.greedy as greedy

    honest = greedy.greedy_kernel

    def broken(*arguments):
        extra, taken, bound, price = honest(*arguments)
        extra = extra.copy()
        extra[np.argmax(extra)] -= 1  # move one rollout from the busiest prompt
        extra[np.argmin(extra)] += 1  # to the idlest: still feasible, no longer optimal
        return extra, taken, bound, price

    monkeypatch.setattr(greedy, "greedy_kernel", broken)
    rates = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    result = allocate(rates, 40, costs=np.ones(5), max_rollouts=20)
    monkeypatch.setattr(greedy, "greedy_kernel", honest)
    optimum = allocate(rates, 40, max_rollouts=20)
    assert result.objective < optimum.objective
    assert result.status == "feasible"
    assert result.upper_bound >= optimum.objective * (1 - TOLERANCE)
    assert result.gap >= optimum.objective - result.objective - TOLERANCE


def test_certificate_of_a_hand_made_allocation():
    rates = [0.1, 0.5, 0.9]
    best = allocate(rates, 24)
    uniform = certify([8, 8, 8], rates, 24, min_rollouts=2, max_rollouts=128)
    assert isinstance(uniform, Certificate)
    assert not uniform.optimal
    assert uniform.upper_bound == pytest.approx(best.objective, rel=TOLERANCE)
    assert uniform.gap == pytest.approx(best.objective - uniform.objective, rel=1e-6)
    assert 0 < uniform.relative_gap < 1
    assert uniform.total_cost == 24 and uniform.budget == 24 and uniform.value == "grpo"
    assert certify(best, rates, 24, min_rollouts=2, max_rollouts=128).optimal  # a result works
    assert repr(uniform).startswith("Certificate(objective=0.175281, upper_bound=0.18899, gap=")


def test_real_costs_are_certified_exactly_against_the_budget():
    # Three rollouts of cost 0.1 cost a little more than 0.3 in exact arithmetic.
    kwargs = dict(min_rollouts=0, max_rollouts=4, costs=[0.1, 0.1, 0.1])
    with pytest.raises(InvalidArgumentError, match=r"^counts cost 0\.30000000000000004 "):
        certify([1, 1, 1], [0.5] * 3, 0.3, **kwargs)
    assert certify([1, 1, 1], [0.5] * 3, 0.30000000000000004, **kwargs).total_cost == (
        pytest.approx(0.3)
    )


BASE = {"counts": [2, 3], "success_rates": [0.2, 0.6], "budget": 6,
        "min_rollouts": 2, "max_rollouts": 4}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"counts": [1, 3]}, InvalidArgumentError,
         "counts[0] == 1 is below min_rollouts[0] == 2; every count must lie between "
         "min_rollouts and max_rollouts."),
        ({"counts": [2, 5], "budget": 10}, InvalidArgumentError,
         "counts[1] == 5 is above max_rollouts[1] == 4; every count must lie between "
         "min_rollouts and max_rollouts."),
        ({"counts": [3, 4]}, InvalidArgumentError,
         "counts cost 7 (sum of cost * counts, compared exactly), more than budget == 6; "
         "certify allocations that stay within the budget."),
        ({"counts": [2, 3], "costs": [1, 1.5]}, InvalidArgumentError,
         "counts cost 6.5 (sum of cost * counts, compared exactly), more than budget == 6; "
         "certify allocations that stay within the budget."),
        ({"counts": [2]}, InvalidArgumentError,
         "counts has 1 entries but there are 2 prompts; pass one entry per prompt."),
        ({"counts": [2, 2.5]}, InvalidArgumentError,
         "counts[1] == 2.5, must be a whole number of rollouts."),
        ({"counts": [2, 2**63 + 5]}, InvalidArgumentError,
         "counts[1] == 9223372036854775813 is too large; at most 2**53 = 9007199254740992 is "
         "supported, pass a smaller value."),
        ({"budget": -1}, InvalidArgumentError, "budget == -1, must be >= 0."),
        ({"costs": [1, 0]}, InvalidArgumentError,
         "costs[1] == 0.0, must be > 0 (cost of one rollout)."),
        ({"success_rates": [0.2, 1.5]}, InvalidArgumentError,
         "success_rates[1] == 1.5, must be in [0, 1] (a probability)."),
    ],
)
def test_bad_input_gets_a_clear_error(change, error, message):
    arguments = {**BASE, **change}
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        certify(arguments.pop("counts"), arguments.pop("success_rates"), arguments.pop("budget"),
                **arguments)  # fmt: skip


def test_bounds_are_keyword_only_and_required():
    with pytest.raises(TypeError):
        certify([2, 2], [0.5, 0.5], 4)  # type: ignore[call-arg]

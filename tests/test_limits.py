"""Numbers at the limits: range-checked before any cast, never wrapped or overspent."""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knapsack_alloc import InvalidArgumentError, KnapsackAllocator, allocate
from knapsack_alloc.costs import SPEND_TOLERANCE as TOLERANCE
from knapsack_alloc.costs import resolve_costs
from knapsack_alloc.values import GRPO
from oracles import brute_force

TOO_LARGE = "is too large; at most 2**53 = 9007199254740992 is supported, pass a smaller value."


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"costs": [2e19, 1], "budget": 100},
         "costs[0] == 2e+19 is too large; costs up to 2**53 units are supported: give costs and "
         "budget in a coarser unit, or pass cost_resolution."),
        ({"max_rollouts": 2**63 + 5}, f"max_rollouts == 9223372036854775813 {TOO_LARGE}"),
        ({"max_rollouts": [4, 2**63 + 5]}, f"max_rollouts[1] == 9223372036854775813 {TOO_LARGE}"),
        ({"max_rollouts": np.array([4, 2**53 + 1])},
         f"max_rollouts[1] == 9007199254740993 {TOO_LARGE}"),
        ({"max_rollouts": np.array([4, 2**64 - 1], dtype=np.uint64)},
         f"max_rollouts[1] == 18446744073709551615 {TOO_LARGE}"),
        ({"min_rollouts": 1e300}, f"min_rollouts == 1e+300 {TOO_LARGE}"),
        ({"min_rollouts": np.int64(2**62)}, f"min_rollouts == np.int64(4611686018427387904) "
         f"{TOO_LARGE}"),
        ({"budget": 2**63 + 5},
         "budget == 9223372036854775813 is too large; budgets up to 2**53 cost units are "
         "supported."),
        ({"budget": 1e300},
         "budget == 1e+300 is too large; budgets up to 2**53 cost units are supported."),
        ({"budget": np.uint64(2**64 - 1)},
         "budget == np.uint64(18446744073709551615) is too large; budgets up to 2**53 cost "
         "units are supported."),
        ({"budget": 10.0, "costs": [1.0, 1.0], "cost_resolution": 1e-300},
         "budget == 10.0 is 1e+301 units of cost_resolution == 1e-300; budgets up to 2**53 "
         "cost units are supported, use a coarser cost_resolution."),
        ({"budget": 1.0, "costs": [1e300, 1.0], "cost_resolution": 0.5},
         "costs[0] == 1e+300 is 2e+300 units of cost_resolution == 0.5; at most 2**53 units are "
         "supported, use a coarser cost_resolution."),
        # cost x rollouts beyond int64: the sum is computed exactly, not wrapped.
        ({"costs": [2**52, 2**52], "min_rollouts": 2**12, "max_rollouts": 2**13, "budget": 100},
         "budget == 100 is below the 36893488147419103232 cost units that min_rollouts requires "
         "(sum of cost * min_rollouts); raise the budget or lower min_rollouts."),
        ({"time_limit": 1e300, "solver": "ortools"},
         "time_limit == 1e+300 is too large; at most 2**53 milliseconds (about 9e12 seconds) is "
         "supported, pass None for no limit."),
        ({"max_table_bytes": 2**63}, f"max_table_bytes == 9223372036854775808 {TOO_LARGE}"),
    ],
)
def test_huge_numbers_are_refused_before_any_cast(kwargs, message):
    arguments = {"success_rates": [0.3, 0.6], "budget": 16, **kwargs}
    with pytest.raises(InvalidArgumentError, match=f"^{re.escape(message)}$"):
        allocate(arguments.pop("success_rates"), arguments.pop("budget"), **arguments)


def test_the_largest_numbers_allowed_still_work():
    # Costs near 2**53 units with a budget of 2**53: products far beyond int64 are exact.
    result = allocate([0.3, 0.6], 2**53, costs=[2**52, 2**51], min_rollouts=0,
                      max_rollouts=2**53)  # fmt: skip
    small = allocate([0.3, 0.6], 4, costs=[2, 1], min_rollouts=0, max_rollouts=8)
    assert result.counts.tolist() == small.counts.tolist()
    assert result.total_cost == 2**53
    huge = allocate([0.1, 0.5, 0.2], 40, max_rollouts=2**53)
    assert huge.counts.tolist() == allocate([0.1, 0.5, 0.2], 40, max_rollouts=38).counts.tolist()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_rollouts": 2**63 + 5}, f"max_rollouts == 9223372036854775813 {TOO_LARGE}"),
        ({"default_rollouts": 2**60}, f"default_rollouts == 1152921504606846976 {TOO_LARGE}"),
        ({"min_history": 10**20}, f"min_history == 100000000000000000000 {TOO_LARGE}"),
    ],
)
def test_allocator_parameters_are_range_checked(params, message):
    with pytest.raises(InvalidArgumentError, match=f"^{re.escape(message)}$"):
        KnapsackAllocator("paper", **params)


def test_allocator_refuses_costs_whose_sums_would_overflow():
    allocator = KnapsackAllocator("paper", default_rollouts=2**40, max_rollouts=2**41)
    with pytest.raises(InvalidArgumentError, match=r"reach 2\*\*62 cost units"):
        allocator.plan([1, 2, 3], 100, costs=[2**30, 1, 1])


@st.composite
def real_cost_instances(draw):
    n = draw(st.integers(1, 4))
    rates = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    lower = np.array(draw(st.lists(st.integers(1, 2), min_size=n, max_size=n)))
    upper = lower + np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    resolution = draw(st.sampled_from([0.01, 0.1, 0.3, 1.0, 7.0, 64.0]))
    decimal = st.integers(1, 5000).map(lambda k: k * resolution)  # exact multiples, in floats
    costs = np.array(draw(st.lists(st.floats(0.001, 50.0) | decimal, min_size=n, max_size=n)))
    top = float(costs @ upper)
    budget = draw(st.floats(0.5 * top, 1.5 * top) | st.integers(1, 20000).map(lambda k: k * 0.01))
    return rates, lower, upper, costs, resolution, budget


@settings(max_examples=300, deadline=None)
@given(instance=real_cost_instances(), solver=st.sampled_from(["auto", "dp", "greedy"]))
def test_rounded_costs_never_spend_more_than_the_budget(instance, solver):
    """The real spend, in exact arithmetic, stays within the budget up to the inputs'
    representation error, and each cost is rounded up by less than one unit."""
    rates, lower, upper, costs, resolution, budget = instance
    unit = Fraction(resolution)
    try:
        result = allocate(rates, budget, min_rollouts=lower, max_rollouts=upper, costs=costs,
                          cost_resolution=resolution, solver=solver,
                          allow_unused_budget=True)  # fmt: skip
    except InvalidArgumentError as error:
        # Only a budget too small for the minimums, once rounded, may be refused: less
        # than one unit per rollout (and one for the budget) short of the real need.
        assert "that min_rollouts requires" in str(error)
        pairs = zip(costs.tolist(), lower.tolist(), strict=True)
        need = sum(Fraction(c) * int(n) for c, n in pairs)
        assert need + unit * (int(lower.sum()) + 1) > Fraction(budget)
        return
    pairs = zip(costs.tolist(), result.counts.tolist(), strict=True)
    spend = sum(Fraction(c) * int(n) for c, n in pairs)
    assert spend <= Fraction(budget) * (1 + TOLERANCE)
    rounded = resolve_costs(costs, budget, len(costs), resolution)
    for cost, units in zip(costs.tolist(), rounded.units.tolist(), strict=True):
        assert units * unit >= Fraction(cost) * (1 - TOLERANCE)  # rounded up ...
        assert units == 1 or (units - 1) * unit < Fraction(cost)  # ... by less than a unit
    assert rounded.budget_units * unit <= Fraction(budget) * (1 + TOLERANCE)
    assert (rounded.budget_units + 1) * unit > Fraction(budget)
    expected = max((u * resolution - c) / c for u, c in zip(rounded.units, costs, strict=True))
    assert result.cost_rounding == pytest.approx(max(expected, 0.0), rel=1e-9, abs=1e-12)
    if solver != "greedy":
        best, _ = brute_force(lambda c: GRPO.value(c, rates), lower, upper, rounded.units,
                              rounded.budget_units)  # fmt: skip
        assert result.objective == pytest.approx(best, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("cost", "budget", "rollouts"), [(0.01, 1.0, 100), (1.0, 2048.0, 2048),
                                                          (0.1, 0.3, 3), (0.3, 0.9, 3)])
def test_decimal_inputs_behave_as_written(cost, budget, rollouts):
    # 1.0 / 0.01 is 99.99999999999999 in binary floating point: still 100 units.
    result = allocate([0.5], budget, costs=[cost], cost_resolution=cost, min_rollouts=1,
                      max_rollouts=10**4, allow_unused_budget=True)  # fmt: skip
    assert result.counts.tolist() == [rollouts]

"""allocate(): inputs, messages, result object and hand-computed values."""

from __future__ import annotations

import re

import numpy as np
import pytest

from _solvers import EXACT_SOLVERS
from knapsack_alloc import AllocationResult, BetaPosterior, InvalidArgumentError, allocate
from knapsack_alloc.values import GRPO, NONZERO
from oracles import beta_expectation, exact_value

RATES = [0.0, 0.25, 0.5, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"success_rates": [0.1, float("nan")]}, InvalidArgumentError,
         "success_rates[1] == nan, must be finite (no NaN or inf)."),
        ({"success_rates": [0.1, float("inf")]}, InvalidArgumentError,
         "success_rates[1] == inf, must be finite (no NaN or inf)."),
        ({"success_rates": [0.1, 1.5]}, InvalidArgumentError,
         "success_rates[1] == 1.5, must be in [0, 1] (a probability)."),
        ({"success_rates": [-0.2]}, InvalidArgumentError,
         "success_rates[0] == -0.2, must be in [0, 1] (a probability)."),
        ({"success_rates": [[0.1, 0.2]]}, InvalidArgumentError,
         "success_rates must be 1-dimensional (one entry per prompt), got shape (1, 2). "
         "Flatten it, or pass one batch at a time."),
        ({"success_rates": "0.5"}, TypeError,
         "success_rates must be a 1-d array of numbers, not a string: '0.5'."),
        ({"success_rates": ["a", "b"]}, TypeError,
         "success_rates must hold real numbers (int or float dtype), got dtype <U1."),
        ({"budget": -4}, InvalidArgumentError, "budget == -4, must be >= 0."),
        ({"budget": 10.5}, InvalidArgumentError,
         "budget == 10.5, must be a whole number of cost units (or pass cost_resolution to "
         "work in fractional units)."),
        ({"budget": float("nan")}, InvalidArgumentError, "budget == nan, must be finite."),
        ({"budget": "10"}, TypeError, "budget must be a real number, not str: '10'."),
        ({"budget": True}, TypeError, "budget must be a real number, not bool: True."),
        ({"min_rollouts": 5, "max_rollouts": 3}, InvalidArgumentError,
         "min_rollouts[0] == 5 > max_rollouts[0] == 3; each prompt needs "
         "min_rollouts <= max_rollouts."),
        ({"min_rollouts": -1}, InvalidArgumentError, "min_rollouts == -1, must be >= 0."),
        ({"max_rollouts": [4, 4, 2.5, 4]}, InvalidArgumentError,
         "max_rollouts[2] == 2.5, must be a whole number of rollouts."),
        ({"max_rollouts": [4, 4]}, InvalidArgumentError,
         "max_rollouts has 2 entries but there are 4 prompts; pass one entry per prompt."),
        ({"costs": [1, 0, 1, 1]}, InvalidArgumentError,
         "costs[1] == 0.0, must be > 0 (cost of one rollout)."),
        ({"costs": [1, -2, 1, 1]}, InvalidArgumentError,
         "costs[1] == -2.0, must be > 0 (cost of one rollout)."),
        ({"costs": [1, float("nan"), 1, 1]}, InvalidArgumentError,
         "costs[1] == nan, must be finite (no NaN or inf)."),
        ({"costs": [1, 1.5, 1, 1]}, InvalidArgumentError,
         "costs[1] == 1.5 is not a whole number; pass cost_resolution (e.g. "
         "cost_resolution=0.01) to round costs to that unit, or give costs in whole units."),
        ({"cost_resolution": -1.0, "costs": [1, 1, 1, 1]}, InvalidArgumentError,
         "cost_resolution == -1.0, must be > 0."),
        ({"solver": "fast"}, InvalidArgumentError,
         "The 'solver' parameter must be a str among {'auto', 'dp', 'greedy', 'ortools', "
         "'textbook'}. Got 'fast' instead."),
        ({"value": "entropy"}, InvalidArgumentError,
         "The 'value' parameter must be a str among {'grpo', 'nonzero'}, a ValueModel or a "
         "callable value(N, p). Got 'entropy' instead."),
        ({"value": 3}, TypeError,
         "The 'value' parameter must be a str among {'grpo', 'nonzero'}, a ValueModel or a "
         "callable value(N, p). Got int instead."),
        ({"budget": 7}, InvalidArgumentError,
         "budget == 7 is below the 8 cost units that min_rollouts requires (sum of cost * "
         "min_rollouts); raise the budget or lower min_rollouts."),
        ({"budget": 513}, InvalidArgumentError,
         "budget == 513 is above the 512 cost units that max_rollouts can use (sum of cost * "
         "max_rollouts); lower the budget, raise max_rollouts, or pass allow_unused_budget=True "
         "to leave the rest unspent."),
        ({"time_limit": 0}, InvalidArgumentError,
         "time_limit == 0, must be > 0 seconds (or None)."),
        ({"success_rates": [], "budget": 4}, InvalidArgumentError,
         "budget == 4 but there are no prompts; pass budget=0 for an empty batch."),
    ],
)
def test_bad_input_gets_a_clear_error(kwargs, error, message):
    arguments = {"success_rates": RATES, "budget": 32, **kwargs}
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        allocate(arguments.pop("success_rates"), arguments.pop("budget"), **arguments)


def test_invalid_argument_error_is_a_value_error():
    assert issubclass(InvalidArgumentError, ValueError)


@pytest.mark.parametrize(
    ("successes", "failures", "prior", "message"),
    [
        ([1, -1], [0, 0], (1, 1), "failures" and "successes[1] == -1.0, must be >= 0."),
        ([1, 1], [0], (1, 1), "failures has 1 entries but there are 2 prompts; pass one "
         "entry per prompt."),
        ([1, 1], [0, 0], (0, 1), "prior == (0, 1), both entries must be > 0."),
    ],
)
def test_bad_posterior_gets_a_clear_error(successes, failures, prior, message):
    with pytest.raises(InvalidArgumentError, match=f"^{re.escape(message)}$"):
        BetaPosterior(successes, failures, prior=prior)


def test_callable_value_with_posterior_is_rejected():
    with pytest.raises(TypeError, match="cannot take a BetaPosterior"):
        allocate(BetaPosterior([1], [1]), 4, value=lambda n, p: n * p)


def test_decreasing_callable_value_is_rejected():
    with pytest.raises(InvalidArgumentError, match="decreases for prompt 0 from N=2 to N=3"):
        allocate([0.5], 4, max_rollouts=4, value=lambda n, p: -n * p)


def test_greedy_refuses_non_concave_values():
    with pytest.raises(InvalidArgumentError, match="solver='greedy' needs marginal gains"):
        allocate([0.5, 0.5], 4, min_rollouts=0, solver="greedy")


@pytest.mark.parametrize(
    "rates",
    [[0.5, 0.25], np.array([0.5, 0.25], dtype=np.float32), (0.5, 0.25), np.array([1, 0])],
)
def test_valid_inputs_of_other_types(rates):
    result = allocate(rates, np.int64(8), min_rollouts=np.int32(2), max_rollouts=[4, 6])
    assert result.counts.sum() == 8


def test_rates_of_exactly_zero_and_one_get_their_minimum_when_others_can_use_the_budget():
    result = allocate([0.0, 1.0, 0.5], 12, max_rollouts=8)
    np.testing.assert_array_equal(result.counts, [2, 2, 8])


def test_empty_batch_with_zero_budget():
    result = allocate([], 0)
    assert result.counts.shape == (0,) and result.objective == 0.0


def test_unused_budget_is_reported_when_allowed():
    result = allocate([0.5, 0.5], 100, max_rollouts=8, allow_unused_budget=True)
    np.testing.assert_array_equal(result.counts, [8, 8])
    assert result.unused_budget == 84


def test_result_object():
    result = allocate(RATES, 32, max_rollouts=16)
    assert isinstance(result, AllocationResult)
    assert result.status == "optimal" and result.solver == "greedy"
    assert result.upper_bound == result.objective and result.gap == 0.0
    assert result.total_cost == 32 and result.unused_budget == 0
    assert result.value == "grpo" and result.solve_time > 0
    np.testing.assert_array_equal(np.asarray(result), result.counts)
    assert not result.counts.flags.writeable
    with pytest.raises(AttributeError):
        result.objective = 0.0  # type: ignore[misc]
    assert repr(result).startswith("AllocationResult(n=4, total_cost=32, objective=")


def test_hand_computed_grpo_values():
    # p = 0.5, N = 2: P_nz = 1 - 0.25 - 0.25 = 0.5, InfoGain = 0.5 * 0.25 = 0.125.
    assert GRPO.value(np.array([2]), np.array([0.5]))[0] == 0.0625
    # p = 0.25, N = 3: P_nz = 1 - 1/64 - 27/64 = 36/64; InfoGain = 0.25 * 0.5625.
    assert GRPO.value(np.array([3]), np.array([0.25]))[0] == pytest.approx(36 / 64 * 0.140625)
    assert NONZERO.value(np.array([0, 1, 2]), np.array([0.5, 0.5, 0.5])).tolist() == [0, 0, 0.5]
    counts = np.array([0, 1, 2, 5, 17, 128, 3, 2])
    rates = np.array([0.3, 0.0, 1.0, 0.7, 1 / 16, 0.999, 1e-12, 1 - 1e-12])
    expected = [float(exact_value(n, p)) for n, p in zip(counts, rates, strict=True)]
    np.testing.assert_allclose(GRPO.value(counts, rates), expected, rtol=1e-14)


@pytest.mark.parametrize(("s", "f"), [(0, 0), (3, 5), (0, 16), (16, 0), (7.5, 1.25)])
def test_beta_posterior_value_is_the_posterior_expectation(s, f):
    counts = np.array([1, 2, 8, 40])
    beliefs = BetaPosterior([s] * 4, [f] * 4, prior=(1.0, 1.0))
    for n, got in zip(counts, GRPO.value(counts, beliefs), strict=True):
        expected = beta_expectation(
            lambda p, n=n: (1 - p**n - (1 - p) ** n) * p * (1 - p) ** 2, 1 + s, 1 + f
        )
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_budget_matches_a_hand_solved_case():
    # One hard and one balanced prompt, 6 spare rollouts: both are exactly computable.
    result = allocate([0.125, 0.5], 10, max_rollouts=8, solver="dp")
    best = max(range(2, 9), key=lambda a: exact_value(a, 0.125) + exact_value(10 - a, 0.5))
    assert result.counts.tolist() == [best, 10 - best]


def test_real_costs_are_rounded_up_and_reported():
    result = allocate([0.2, 0.5], 10.0, costs=[1.04, 0.96], cost_resolution=0.1)
    # 1.04 -> 11 units (1.1), 0.96 -> 10 units (1.0): the largest rounding is 0.06 / 1.04.
    assert result.cost_rounding == pytest.approx(0.06 / 1.04, rel=1e-6)
    assert result.total_cost <= 10.0


def test_a_cost_below_half_a_unit_rounds_up_to_one_unit():
    result = allocate([0.5, 0.5], 1.0, costs=[0.001, 0.001], cost_resolution=0.01,
                      max_rollouts=100)  # fmt: skip
    assert result.counts.tolist() == [50, 50]  # 1 unit each: 100 units of 0.01
    assert result.cost_rounding == pytest.approx(9.0)


def test_equal_costs_reduce_to_unit_costs():
    unit = allocate([0.2, 0.5, 0.7], 24)
    scaled = allocate([0.2, 0.5, 0.7], 72, costs=[3, 3, 3])
    np.testing.assert_array_equal(unit.counts, scaled.counts)
    assert scaled.status == "optimal" and scaled.total_cost == 72


def test_auto_reports_a_bound_when_the_dp_would_be_too_large():
    rng = np.random.default_rng(3)
    costs = rng.integers(2, 17, 64)
    rates = rng.random(64)
    budget = int(8 * costs.sum()) + 7
    result = allocate(rates, budget, costs=costs, max_table_bytes=1000)
    assert result.solver == "greedy" and result.status == "feasible"
    assert result.upper_bound > result.objective
    with pytest.raises(InvalidArgumentError, match="solver='dp' needs a table of 64 prompts"):
        allocate(rates, budget, costs=costs, solver="dp", max_table_bytes=1000)


def test_ortools_missing_gives_an_install_hint(monkeypatch):
    import builtins

    from knapsack_alloc import MissingDependencyError

    real_import = builtins.__import__

    def no_ortools(name, *args, **kwargs):
        if name.startswith("ortools"):
            raise ImportError("No module named 'ortools'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ortools)
    with pytest.raises(MissingDependencyError, match=r"pip install 'knapsack-alloc\[ortools\]'"):
        allocate(RATES, 16, solver="ortools")


@pytest.mark.parametrize("solver", EXACT_SOLVERS)
def test_huge_max_rollouts_only_cost_what_the_budget_can_buy(solver):
    small = allocate([0.1, 0.5, 0.2], 40, max_rollouts=38, solver=solver)
    huge = allocate([0.1, 0.5, 0.2], 40, max_rollouts=10**12, solver=solver)
    np.testing.assert_array_equal(small.counts, huge.counts)

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _oracles_allocator import (
    NaiveHistory,
    best_split_value,
    paper_rules,
    point_tables,
    posterior_tables,
)
from knapsack_alloc.allocator import KnapsackAllocator
from knapsack_alloc.allocator.checkpoint import CheckpointError
from knapsack_alloc.allocator.metrics import rollout_quantiles
from knapsack_alloc.exceptions import InvalidArgumentError

PLAN_KEYS = {
    "prompts",
    "rollouts",
    "budget",
    "cost",
    "unused_budget",
    "rollouts_min",
    "rollouts_max",
    "rollouts_mean",
    "rollouts_p10",
    "rollouts_p25",
    "rollouts_p50",
    "rollouts_p75",
    "rollouts_p90",
    "pred_effective_ratio",
    "pred_prompts_with_gradient",
    "prompts_unseen",
    "prompts_warmup",
    "prompts_zero",
    "prompts_one",
    "prompts_effective",
    "prompts_fallback",
    "prior_a",
    "prior_b",
    "solve_time_s",
    "plan_time_s",
}
UPDATE_KEYS = {
    "rollouts",
    "prompts",
    "new_prompts",
    "tracked_prompts",
    "success_rate",
    "effective_ratio",
    "prompts_with_gradient",
    "prompts_all_correct",
    "prompts_all_wrong",
}

# One training history: a list of steps, each a list of (prompt, outcomes).
steps_strategy = st.lists(
    st.lists(
        st.tuples(st.integers(0, 11), st.lists(st.booleans(), min_size=1, max_size=24)),
        max_size=6,
    ),
    max_size=8,
)
batch_strategy = st.lists(st.integers(0, 14), min_size=1, max_size=6)


def _feed(allocator, naive, steps):
    for step in steps:
        ids = [prompt for prompt, outcomes in step for _ in outcomes]
        rewards = [o for _, outcomes in step for o in outcomes]
        allocator.update(ids, rewards)
        naive.record(ids, rewards)


def _state_arrays(allocator):
    return {k: v.copy() for k, v in allocator.state_dict()["arrays"].items()}


def _float_tables(exact):
    return [{n: float(v) for n, v in table.items()} for table in exact]


@settings(max_examples=120, deadline=None)
@given(steps_strategy, batch_strategy, st.integers(3, 6), st.integers(0, 40))
def test_paper_follows_the_rules_on_the_recorded_history(steps, batch, high, extra):
    allocator, naive = KnapsackAllocator("paper", max_rollouts=high), NaiveHistory(16)
    _feed(allocator, naive, steps)
    states = [naive.counts(p) for p in batch]
    budget = sum(8 if total < 8 else 2 for _, _, total in states) + extra
    expected = paper_rules(states, budget, high=high)
    if expected["unspent"]:
        with pytest.raises(InvalidArgumentError, match="that no rule can spend"):
            allocator.plan(batch, budget)
        return
    plan = allocator.plan(batch, budget)
    assert int(plan.counts.sum()) == budget
    assert {i: int(plan.counts[i]) for i in expected["counts"]} == expected["counts"]
    assert np.flatnonzero(plan.fallback).tolist() == expected["fallback"]
    effective = plan.counts[expected["effective"]]
    assert int(effective.sum()) == expected["effective_total"]
    if expected["effective"]:
        tables = _float_tables(point_tables(expected["rates"], 2, high))
        best = best_split_value(tables, 2, high, expected["effective_total"])
        found = sum(table[int(n)] for table, n in zip(tables, effective, strict=True))
        assert found >= best * (1 - 1e-12)
        assert plan.allocation.objective == pytest.approx(found, rel=1e-9)
    assert plan.metrics["prompts_effective"] == len(expected["effective"])
    assert plan.metrics["prompts_fallback"] == len(expected["fallback"])
    again = allocator.plan(batch, budget)
    assert np.array_equal(again.counts, plan.counts)


@settings(max_examples=60, deadline=None)
@given(steps_strategy, batch_strategy, st.integers(3, 6), st.data())
def test_bayes_is_optimal_for_the_recorded_history(steps, batch, high, data):
    allocator = KnapsackAllocator("bayes", max_rollouts=high)
    naive = NaiveHistory(allocator.window)
    _feed(allocator, naive, steps)
    budget = data.draw(st.integers(2 * len(batch), high * len(batch)), label="budget")
    plan = allocator.plan(batch, budget)
    # Fewer than 32 prompts have ever been seen: the prior is the uniform fallback.
    assert (plan.metrics["prior_a"], plan.metrics["prior_b"]) == (1.0, 1.0)
    windows = [naive.counts(p)[:2] for p in batch]
    tables = _float_tables(posterior_tables(windows, (1.0, 1.0), 2, high))
    best = best_split_value(tables, 2, high, budget)
    found = sum(table[int(n)] for table, n in zip(tables, plan.counts, strict=True))
    assert int(plan.counts.sum()) == budget
    assert plan.counts.min() >= 2 and plan.counts.max() <= high
    assert found >= best * (1 - 1e-12)
    assert plan.allocation.objective == pytest.approx(found, rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(steps_strategy, batch_strategy, st.sampled_from(["paper", "bayes"]))
def test_save_load_and_state_dict_give_identical_plans(tmp_path_factory, steps, batch, preset):
    allocator, naive = KnapsackAllocator(preset, prior=(0.7, 1.3)), NaiveHistory(16)
    _feed(allocator, naive, steps)
    budget = 8 * len(batch) + 17
    plan = allocator.plan(batch, budget)
    path = tmp_path_factory.mktemp("ckpt") / "allocator.ka"
    allocator.save(path)
    loaded = KnapsackAllocator.load(path)
    assert loaded.get_params() == allocator.get_params()
    assert np.array_equal(loaded.plan(batch, budget).counts, plan.counts)
    other = KnapsackAllocator("bayes" if preset == "paper" else "paper")
    other.load_state_dict(allocator.state_dict())
    assert other.preset == preset
    assert np.array_equal(other.plan(batch, budget).counts, plan.counts)
    assert other.n_rollouts_ == allocator.n_rollouts_ == len(naive_rollouts(steps))


def naive_rollouts(steps):
    return [o for step in steps for _, outcomes in step for o in outcomes]


def test_first_step_and_metrics():
    allocator = KnapsackAllocator()
    plan = allocator.plan(["a", "b", "c"], budget=24)
    assert plan.counts.tolist() == [8, 8, 8]
    assert set(plan.metrics) == PLAN_KEYS
    assert all(type(v) is float for v in plan.metrics.values())
    assert plan.metrics["prompts_unseen"] == 3.0
    assert plan.rules.tolist() == ["unseen"] * 3
    metrics = allocator.update(["a"] * 8 + ["b"] * 8 + ["c"] * 2, [1, 0] * 4 + [0] * 8 + [1, 1])
    assert set(metrics) == UPDATE_KEYS
    assert all(type(v) is float for v in metrics.values())
    assert metrics == {
        "rollouts": 18.0,
        "prompts": 3.0,
        "new_prompts": 3.0,
        "tracked_prompts": 3.0,
        "success_rate": 6 / 18,
        "effective_ratio": 8 / 18,
        "prompts_with_gradient": 1.0,
        "prompts_all_correct": 1.0,
        "prompts_all_wrong": 1.0,
    }
    plan = allocator.plan(["a", "b", "c", "d"], budget=40)
    assert plan.rules.tolist() == ["effective", "zero", "warmup", "unseen"]
    # base 2 + 2 + 8 + 8 = 20; need of p = 0.5 is 3; surplus 17 over b, c, d: 6, 6, 5.
    assert plan.counts.tolist() == [5, 8, 14, 13]
    assert plan.fallback.tolist() == [False, True, True, True]
    assert np.isnan(plan.estimates[3]) and plan.estimates[0] == 0.5


@pytest.mark.parametrize(
    "rewards",
    [
        [1, 0, 0, 1],
        [1, -1, -1, 1],
        [True, False, False, True],
        [0.9, 0.2, 0.0, 0.5],
        np.array([1, 0, 0, 1], dtype=np.uint8),
    ],
)
def test_reward_forms_are_equivalent(rewards):
    allocator = KnapsackAllocator("bayes")
    allocator.update([4, 4, 5, 5], rewards)
    counts = allocator.history_.counts(allocator.history_.lookup(np.array([4, 5])))
    assert counts.successes.tolist() == [1, 1]


def test_success_threshold_override():
    allocator = KnapsackAllocator("bayes", success_threshold=0.95)
    allocator.update([1, 1], [0.9, 1.0])
    assert allocator.history_.counts(np.array([0])).successes.tolist() == [1]


@pytest.mark.parametrize(
    ("ids", "rewards", "error", "message"),
    [
        (
            [1, 2],
            [1, 2.0],
            InvalidArgumentError,
            "rewards[1] == 2.0 is not a valid reward. Rewards must be 0/1, -1/1 (-1 is a "
            "failure), bools, or floats in [0, 1] (a success when >= success_threshold == 0.5); "
            "rescale them into [0, 1] or map them to 0/1.",
        ),
        (
            [1, 2],
            [float("nan"), 1],
            InvalidArgumentError,
            "rewards[0] == nan is not a valid reward. Rewards must be 0/1, -1/1 (-1 is a "
            "failure), bools, or floats in [0, 1] (a success when >= success_threshold == 0.5); "
            "rescale them into [0, 1] or map them to 0/1.",
        ),
        (
            [1, 2],
            [-0.5, 1],
            InvalidArgumentError,
            "rewards[0] == -0.5 is not a valid reward. Rewards must be 0/1, -1/1 (-1 is a "
            "failure), bools, or floats in [0, 1] (a success when >= success_threshold == 0.5); "
            "rescale them into [0, 1] or map them to 0/1.",
        ),
        (
            [1, 2],
            ["1", "0"],
            TypeError,
            "rewards must be numbers or bools, got an array of dtype <U1; map them to 0/1 first.",
        ),
        (
            [1, 2],
            [1, 0, 1],
            InvalidArgumentError,
            "rollout_prompt_ids and rewards must have one entry per rollout each, got 2 ids and "
            "3 rewards.",
        ),
        (
            [1, 2],
            "10",
            TypeError,
            "rewards must be an array of numbers or bools, not a string: '10'.",
        ),
        (
            [1, 2],
            [[1, 0]],
            InvalidArgumentError,
            "rewards must be 1-dimensional (one reward per rollout), got shape (1, 2).",
        ),
        (
            ["a", "b"],
            [1, 0],
            TypeError,
            "rollout_prompt_ids are str ids, but this allocator tracks int ids; use one kind of "
            "prompt id throughout.",
        ),
        (
            [1, "b"],
            [1, 0],
            TypeError,
            "rollout_prompt_ids must hold only ints or only strings, got elements of type: int, "
            "str.",
        ),
        (
            [1.0, 2.0],
            [1, 0],
            TypeError,
            "rollout_prompt_ids must hold only ints or only strings, got elements of type: float.",
        ),
    ],
)
def test_bad_updates_raise_and_change_nothing(ids, rewards, error, message):
    allocator = KnapsackAllocator()
    allocator.update([1, 1, 3], [1, 0, 1])
    before = _state_arrays(allocator)
    with pytest.raises(error) as raised:
        allocator.update(ids, rewards)
    assert str(raised.value) == message
    after = _state_arrays(allocator)
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert allocator.n_updates_ == 1


def test_bad_costs_in_update_change_nothing():
    allocator = KnapsackAllocator()
    with pytest.raises(InvalidArgumentError) as raised:
        allocator.update([1, 2], [1, 0], costs=[3.0, 0.0])
    assert str(raised.value) == "costs[1] == 0.0, must be > 0 (cost of one rollout)."
    assert len(allocator.history_) == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"preset": "fast"},
            InvalidArgumentError,
            "The 'preset' parameter must be a str among {'bayes', 'paper'}. Got 'fast' instead.",
        ),
        (
            {"preset": "bayes", "alpha": 0.5},
            TypeError,
            "'alpha' is not a parameter of the 'bayes' preset; its parameters are: "
            "allow_unused_budget, cost_model, cost_resolution, max_rollouts, min_history, "
            "min_rollouts, prior, solver, success_threshold, time_limit, value, window.",
        ),
        ({"alpha": 1.0}, InvalidArgumentError, "alpha == 1.0, must be in (0, 1)."),
        (
            {"min_rollouts": 4, "max_rollouts": 3},
            InvalidArgumentError,
            "max_rollouts == 3, must be >= 4.",
        ),
        ({"window": 0}, InvalidArgumentError, "window == 0, must be >= 1."),
        (
            {"success_threshold": 0.0},
            InvalidArgumentError,
            "success_threshold == 0.0, must be in (0, 1].",
        ),
        (
            {"prior": (1, 0)},
            InvalidArgumentError,
            "prior == (1, 0), both entries must be > 0.",
        ),
        (
            {"prior": "flat"},
            InvalidArgumentError,
            "prior must be 'empirical' or a pair (a, b) of positive numbers, got 'flat'.",
        ),
        (
            {"cost_model": "tokens"},
            InvalidArgumentError,
            "The 'cost_model' parameter must be a str among {'tracked', 'unit'}. Got 'tokens' "
            "instead.",
        ),
    ],
)
def test_bad_parameters(kwargs, error, message):
    with pytest.raises(error) as raised:
        KnapsackAllocator(**kwargs)
    assert str(raised.value) == message


def test_parameters_are_overridable_and_fixed():
    allocator = KnapsackAllocator("paper", default_rollouts=4, window=8, min_history=4)
    params = allocator.get_params()
    assert params["default_rollouts"] == 4 and params["window"] == 8
    assert KnapsackAllocator(**params).get_params() == params
    assert allocator.plan([1, 2], budget=8).counts.tolist() == [4, 4]
    with pytest.raises(AttributeError):
        allocator.window = 32
    assert "default_rollouts=4" in repr(allocator)


def test_plan_input_errors():
    allocator = KnapsackAllocator()
    allocator.update([1], [1])
    with pytest.raises(TypeError) as raised:
        allocator.plan(["x"], budget=8)
    assert str(raised.value) == (
        "prompt_ids are str ids, but this allocator tracks int ids; use one kind of prompt id "
        "throughout."
    )
    with pytest.raises(InvalidArgumentError) as raised:
        allocator.plan([], budget=8)
    assert str(raised.value) == (
        "budget == 8 but there are no prompts; pass budget=0 for an empty batch."
    )
    assert allocator.plan([], budget=0).counts.tolist() == []
    with pytest.raises(InvalidArgumentError) as raised:
        allocator.plan([1, 2], budget=8.5)
    assert "budget == 8.5" in str(raised.value)


def test_tracked_costs_plan_a_token_budget():
    allocator = KnapsackAllocator("bayes", cost_model="tracked", cost_resolution=10.0)
    with pytest.raises(InvalidArgumentError) as raised:
        allocator.plan([1, 2], budget=1000)
    assert str(raised.value).startswith("cost_model == 'tracked' but no prompt has reported")
    allocator.update([1] * 8 + [2] * 8, [1, 0] * 8, costs=[100.0] * 8 + [300.0] * 8)
    plan = allocator.plan([1, 2, 3], budget=3000)
    # Prompt 3 is unseen and costs the batch mean, 200 per rollout.
    assert plan.metrics["cost"] <= 3000
    assert plan.metrics["cost"] == float(np.array([100.0, 300.0, 200.0]) @ plan.counts)
    assert plan.metrics["cost"] > 3000 - 300
    explicit = allocator.plan([1, 2, 3], budget=3000, costs=[100, 300, 200])
    assert np.array_equal(explicit.counts, plan.counts)


def test_expand_and_balance_a_plan():
    allocator = KnapsackAllocator()
    plan = allocator.plan(list(range(6)), budget=48)
    split = plan.balance(3, equal_size=True)
    assert split.max_load == split.lower_bound == 16
    index, group = plan.expand(split.order)
    assert np.bincount(group).tolist() == [8] * 6
    assert sorted(index.tolist()) == sorted(np.repeat(np.arange(6), 8).tolist())
    by_cost = plan.balance(2, costs=[1, 1, 1, 1, 1, 3])
    assert by_cost.max_load == 32


def test_determinism_across_instances():
    results = []
    for _ in range(2):
        allocator = KnapsackAllocator("bayes")
        local = np.random.default_rng(11)
        for _ in range(5):
            ids = local.choice(50, 16, replace=False)
            plan = allocator.plan(ids, 128)
            index, _ = plan.expand()
            allocator.update(ids[index], local.random(index.size) < 0.4)
        results.append(plan.counts)
    assert np.array_equal(results[0], results[1])


def test_custom_value_cannot_be_saved(tmp_path):
    allocator = KnapsackAllocator(value=lambda n, p: 1.0 - p**n)
    with pytest.raises(InvalidArgumentError, match="custom value model"):
        allocator.save(tmp_path / "a.ka")
    assert not (tmp_path / "a.ka").exists()


def test_load_rejects_invalid_state(tmp_path):
    allocator = KnapsackAllocator()
    allocator.update([1, 2], [1, 0])
    state = allocator.state_dict()
    state["arrays"]["total"] = state["arrays"]["total"][:1]
    with pytest.raises(InvalidArgumentError):
        KnapsackAllocator().load_state_dict(state)
    bad = {"format": "something-else"}
    target = KnapsackAllocator()
    with pytest.raises(InvalidArgumentError) as raised:
        target.load_state_dict(bad)
    assert str(raised.value) == (
        "state is not a KnapsackAllocator state dict (its 'format' is missing or wrong)."
    )
    assert len(target.history_) == 0
    with pytest.raises(CheckpointError):
        KnapsackAllocator.load(tmp_path / "missing.ka")


def test_empirical_prior_follows_updates():
    allocator = KnapsackAllocator("bayes")
    assert allocator.plan([0], budget=2).metrics["prior_a"] == 1.0
    rng = np.random.default_rng(4)
    ids = np.repeat(np.arange(200), 16)
    allocator.update(ids, rng.random(ids.size) < 0.2)
    refit = allocator.plan([0], budget=2).metrics
    assert refit["prior_a"] / (refit["prior_a"] + refit["prior_b"]) == pytest.approx(0.2, abs=0.03)
    fresh = KnapsackAllocator("bayes")
    fresh.plan([0], budget=2)
    fresh.load_state_dict(allocator.state_dict())
    assert fresh.plan([0], budget=2).metrics["prior_a"] == refit["prior_a"]


def test_empirical_prior_by_hand_and_the_plan_it_gives():
    # 16 prompts at 6/8 and 16 at 2/8 (min_history 8): m = 1/2, mean of p_hat**2 = 5/16,
    # h = 1/8; E[p**2] = (5/16 - 1/16) / (7/8) = 2/7, v = 2/7 - 1/4 = 1/28,
    # a + b = (1/4) / (1/28) - 1 = 6: Beta(3, 3). Prompts with 3 rewards do not count.
    allocator = KnapsackAllocator("bayes", max_rollouts=6)
    ids = np.repeat(np.arange(32), 8)
    rewards = np.array([1, 1, 1, 1, 1, 1, 0, 0] * 16 + [1, 1, 0, 0, 0, 0, 0, 0] * 16)
    allocator.update(ids, rewards)
    allocator.update(np.repeat(np.arange(100, 105), 3), np.ones(15))
    plan = allocator.plan([0, 16, 100, 999], 14)
    prior = (plan.metrics["prior_a"], plan.metrics["prior_b"])
    assert prior == pytest.approx((3.0, 3.0), rel=1e-12)
    assert int(plan.counts.sum()) == 14
    windows = [(6, 8), (2, 8), (3, 3), (0, 0)]
    tables = _float_tables(posterior_tables(windows, (3.0, 3.0), 2, 6))
    best = best_split_value(tables, 2, 6, 14)
    found = sum(table[int(n)] for table, n in zip(tables, plan.counts, strict=True))
    assert found == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda ka: ka.update([1, 2], [1, 0], costs=[1.0]),
            InvalidArgumentError,
            "costs must have one entry per rollout, got 1 costs for 2 rollouts.",
        ),
        (
            lambda ka: ka.update({1, 2}, [1, 0]),
            TypeError,
            "rollout_prompt_ids must be an ordered sequence (list, tuple or array), not a set.",
        ),
        (
            lambda ka: ka.plan([1, 2], 10**30),
            InvalidArgumentError,
            "budget == 1000000000000000000000000000000 is too large; budgets up to 2**53 cost "
            "units are supported.",
        ),
        (
            lambda ka: ka.update([1], [1j]),
            TypeError,
            "rewards must be numbers or bools, got an array of dtype complex128; map them to 0/1 "
            "first.",
        ),
        (
            lambda ka: ka.update([1], [None]),
            TypeError,
            "rewards must be numbers or bools, got an array of dtype object; map them to 0/1 "
            "first.",
        ),
        (
            lambda ka: ka.update([1], 1),
            InvalidArgumentError,
            "rewards must be 1-dimensional (one reward per rollout), got shape ().",
        ),
    ],
)
def test_more_bad_inputs(call, error, message):
    allocator = KnapsackAllocator()
    with pytest.raises(error) as raised:
        call(allocator)
    assert str(raised.value) == message
    assert len(allocator.history_) == 0


@pytest.mark.parametrize("preset", ["paper", "bayes"])
def test_predicted_ratio_is_the_posterior_expectation(preset):
    from knapsack_alloc.allocator.metrics import predicted_effective_ratio
    from knapsack_alloc.values import NONZERO
    from knapsack_alloc.values.posterior import BetaPosterior

    allocator = KnapsackAllocator(preset)
    rng = np.random.default_rng(9)
    ids = np.repeat(np.arange(60), 12)
    allocator.update(ids, rng.random(ids.size) < 0.3)
    plan = allocator.plan(np.arange(50, 80), budget=300)
    counts = allocator.history_.counts(allocator.history_.lookup(np.arange(50, 80)))
    beliefs = BetaPosterior(
        counts.successes,
        counts.trials - counts.successes,
        prior=(plan.metrics["prior_a"], plan.metrics["prior_b"]),
    )
    assert plan.metrics["pred_effective_ratio"] == pytest.approx(
        predicted_effective_ratio(plan.counts, beliefs), rel=1e-12
    )
    assert plan.metrics["pred_prompts_with_gradient"] == pytest.approx(
        float(NONZERO.value(plan.counts, beliefs).sum()), rel=1e-12
    )


def test_budget_summary_matches_numpy():
    allocator = KnapsackAllocator("bayes")
    rng = np.random.default_rng(12)
    ids = np.repeat(np.arange(40), 10)
    allocator.update(ids, rng.random(ids.size) < 0.5)
    plan = allocator.plan(np.arange(37), budget=555)
    expected = np.percentile(plan.counts, [10, 25, 50, 75, 90])
    got = [plan.metrics[f"rollouts_p{q}"] for q in (10, 25, 50, 75, 90)]
    assert got == pytest.approx(expected.tolist())
    assert plan.metrics["rollouts_min"] == plan.counts.min()
    assert plan.metrics["rollouts_max"] == plan.counts.max()
    assert plan.metrics["rollouts_mean"] == pytest.approx(555 / 37)


def test_parameters_are_declared_in_the_signature():
    import inspect

    signature = inspect.signature(KnapsackAllocator)
    assert list(signature.parameters) == list(KnapsackAllocator.parameter_names())
    assert signature.parameters["min_rollouts"].default == 2
    assert repr(KnapsackAllocator("bayes", max_rollouts=64)) == (
        "KnapsackAllocator('bayes', max_rollouts=64, tracked=0)"
    )


def test_tracked_costs_without_a_resolution_fail_when_created():
    with pytest.raises(InvalidArgumentError) as raised:
        KnapsackAllocator(cost_model="tracked")
    assert str(raised.value) == (
        "cost_model == 'tracked' needs cost_resolution: tracked costs are means, rarely whole "
        "numbers; pass e.g. cost_resolution=1.0 to count whole tokens."
    )


def test_an_ignored_time_limit_warns_once_when_created():
    from knapsack_alloc.exceptions import IgnoredArgumentWarning

    with pytest.warns(IgnoredArgumentWarning, match="time_limit == 5 is ignored") as caught:
        allocator = KnapsackAllocator(solver="dp", time_limit=5)
    assert caught[0].filename == __file__
    allocator.plan([1, 2], budget=16)  # no second warning (warnings are errors here)
    assert allocator.get_params()["time_limit"] == 5.0


def test_the_allocation_and_the_metrics_report_cost_in_one_unit():
    allocator = KnapsackAllocator("bayes", cost_resolution=0.5, allow_unused_budget=True)
    plan = allocator.plan([1, 2, 3], budget=20.3, costs=[1.2, 0.7, 2.05])
    real = float(np.array([1.2, 0.7, 2.05]) @ plan.counts)
    assert plan.metrics["cost"] == pytest.approx(real)
    assert plan.allocation.total_cost == pytest.approx(real)
    assert plan.allocation.budget == plan.metrics["budget"] == 20.3


@settings(max_examples=200, deadline=None)
@given(counts=st.lists(st.integers(0, 2**40), min_size=1, max_size=300))
def test_rollout_quantiles_match_numpy_percentile(counts):
    """The one-sort percentiles equal np.percentile's default, min and max included."""
    counts = np.array(counts, dtype=np.int64)
    got = rollout_quantiles(counts)
    expected = np.percentile(counts, [0, 100, 10, 25, 50, 75, 90])
    names = ["rollouts_min", "rollouts_max", *(f"rollouts_p{q}" for q in (10, 25, 50, 75, 90))]
    assert [got[name] for name in names] == pytest.approx(expected.tolist(), rel=1e-12)

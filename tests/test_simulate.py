"""The simulator: model, environment, policies and runner against oracles and closed forms."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import _oracles_simulate as oracle
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.simulate import (
    POLICIES,
    DynamicSampling,
    Environment,
    Groups,
    LearningModel,
    Loader,
    Policy,
    Population,
    Rounds,
    Scenario,
    SelectiveRollout,
    StepResult,
    make_policy,
    run_policy,
    simulate,
)
from knapsack_alloc.simulate.environment import common_uniforms
from knapsack_alloc.simulate.population import draw_mixture, parse_mixture

STATIC = LearningModel(0.0, 1.0)


def scenario(spec="math-rl", prompts=600, batch=32, budget=256, steps=30, model=None):
    return Scenario(
        Population.from_argument(spec, prompts=prompts), batch, budget, steps,
        model or LearningModel(0.25, 1.0),
    )  # fmt: skip


# ----------------------------------------------------------------- environment
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 500))
def test_common_uniforms_match_the_published_splitmix(seed, step, prompt, rank):
    got = common_uniforms(seed, step, np.array([prompt]), np.array([rank]))[0]
    assert got == oracle.uniform(seed, step, prompt, rank)
    assert 0.0 <= got < 1.0


def test_common_uniforms_look_uniform_and_independent():
    prompts = np.repeat(np.arange(2000), 50)
    ranks = np.tile(np.arange(50), 2000)
    u = common_uniforms(7, 3, prompts, ranks)
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / u.size)
    counts = np.bincount((u * 20).astype(int), minlength=20)
    chi2 = ((counts - u.size / 20) ** 2 / (u.size / 20)).sum()
    assert chi2 < 60  # 19 degrees of freedom; p < 1e-6 beyond this
    grid = u.reshape(2000, 50)
    neighbours = np.corrcoef(grid[:, :-1].ravel(), grid[:, 1:].ravel())
    assert abs(neighbours[0, 1]) < 0.02


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 6), st.integers(0, 5)), min_size=0, max_size=6),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, 1000),
)
def test_rollout_ranks_and_rewards_match_a_loop(calls, seed):
    success = np.linspace(0.0, 1.0, 7)
    env = Environment(success, seed)
    env.begin_step(4, 10**6)
    plain = [([p for p, _ in call], [c for _, c in call]) for call in calls]
    expected_ranks = oracle.ranks_of_calls(plain)
    for (prompts, counts), ranks in zip(plain, expected_ranks, strict=True):
        groups, rewards = env.rollout(np.array(prompts, np.int64), np.array(counts, np.int64))
        rollout_prompts = [p for p, c in zip(prompts, counts, strict=True) for _ in range(c)]
        expected = [
            oracle.uniform(seed, 4, p, r) < success[p]
            for p, r in zip(rollout_prompts, ranks, strict=True)
        ]
        assert rewards.tolist() == expected
        starts = np.cumsum([0, *counts])
        assert groups.successes.tolist() == [
            sum(expected[starts[i] : starts[i + 1]]) for i in range(len(counts))
        ]
    assert env.spent == sum(sum(c) for _, c in plain)


def test_rollout_refuses_to_exceed_the_budget_and_resets_ranks():
    env = Environment(np.full(3, 0.5), 0)
    env.begin_step(0, 10)
    env.rollout(np.array([0, 1]), np.array([4, 4]))
    with pytest.raises(InvalidArgumentError, match="only 2 of the step's budget of 10 are left"):
        env.rollout(np.array([2]), np.array([3]))
    first_step = env.rollout(np.array([2]), np.array([2]))[1]
    env.begin_step(0, 10)
    again = env.rollout(np.array([2]), np.array([2]))[1]
    assert first_step.tolist() == again.tolist()  # same step, same prompt, ranks from 0
    assert env.total == 12


# -------------------------------------------------------------- data and model
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.lists(st.integers(0, 30), max_size=12), st.integers(0, 99))
def test_loader_yields_permutations_in_any_pieces(prompts, pieces, seed):
    loader, whole = Loader(prompts, seed), Loader(prompts, seed)
    taken = np.concatenate([loader.take(k) for k in pieces]) if pieces else np.zeros(0)
    reference = whole.take(int(sum(pieces)))
    assert taken.tolist() == reference.tolist()
    for start in range(0, reference.size - prompts + 1, prompts):
        assert sorted(reference[start : start + prompts].tolist()) == list(range(prompts))
    assert loader.epoch == sum(pieces) // prompts


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12),
    st.lists(st.integers(0, 11), max_size=10),
    st.floats(0.0, 4.0),
    st.floats(0.0, 3.0),
)
def test_learning_model_matches_the_documented_rule(success, learned, rate, transfer):
    learned = [i % len(success) for i in learned]
    array = np.array(success)
    LearningModel(rate, transfer).apply(array, np.array(learned, dtype=np.int64))
    expected = oracle.learning_step(success, learned, rate, transfer)
    assert array.tolist() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert ((array >= 0.0) & (array <= 1.0)).all()


def test_learning_model_first_order_transfer_and_fixed_points():
    success = np.array([0.0, 1.0, 0.3, 0.5, 0.7])
    before = success.copy()
    LearningModel(1e-4, 2.0).apply(success, np.array([2]))
    direct = 1e-4 * 0.3 * 0.7**2
    assert success[:2].tolist() == [0.0, 1.0]
    assert success.sum() - before.sum() == pytest.approx(3 * direct, rel=1e-3)


@pytest.mark.parametrize(
    ("rate", "transfer", "message"),
    [
        (-0.1, 1.0, "learning_rate == -0.1, must be in [0, 4]"),
        (4.5, 1.0, "learning_rate == 4.5, must be in [0, 4]"),
        (0.1, -1.0, "transfer == -1.0, must be >= 0"),
    ],
)
def test_learning_model_rejects_bad_values(rate, transfer, message):
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        LearningModel(rate, transfer)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 10), min_size=1, max_size=5), st.integers(1, 500))
def test_mixture_components_get_exact_shares(weights, prompts):
    spec = " + ".join(f"{w!r}*point({i / 10})" for i, w in enumerate(weights))
    rates = draw_mixture(parse_mixture(spec), prompts, np.random.default_rng(0))
    assert rates.size == prompts
    shares = np.array(weights) / sum(weights) * prompts
    counts = np.array([(rates == i / 10).sum() for i in range(len(weights))])
    assert counts.sum() == prompts
    assert (np.abs(counts - shares) < 1.0).all()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("beta(1)", "beta(a,b) takes two numbers > 0"),
        ("point(2)", "point(p) takes one probability in [0, 1]"),
        ("0*beta(1,1)", "the weight must be > 0"),
        ("gauss(0,1)", "is not a mixture component"),
        ("math-rll", "is not a mixture component"),
    ],
)
def test_bad_mixture_specs(spec, message):
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        Population.from_argument(spec)


def test_presets_are_their_mixtures():
    population = Population.from_argument("math-rl", prompts=1000)
    rates = population.draw(3)
    assert (rates == 0).sum() == 150 and (rates == 1).sum() == 100
    assert population.describe().startswith("math-rl = 0.15*point(0)")
    assert np.array_equal(rates, population.draw(3))
    assert not np.array_equal(rates, population.draw(4))


# ------------------------------------------------------------------- policies
@pytest.mark.parametrize("name", list(POLICIES))
def test_every_policy_spends_exactly_what_it_reports(name):
    result = run_policy(scenario(budget=250), make_policy(name), seed=5)
    spent = result.series["rollouts"]
    assert result.rollouts == int(spent.sum())
    # n = 250 // 32 = 7: dapo and greso generate whole groups of 7 (35 of them, 245
    # rollouts); every other policy spends all 250.
    assert (spent == (245 if name in ("dapo", "greso") else 250)).all()


def test_a_policy_that_misreports_its_cost_is_caught():
    class Liar(Policy):
        name = "liar"

        def step(self, context):
            prompts = context.take(4)
            groups, _ = context.rollout(prompts, np.full(4, 3))
            return StepResult(generated=groups.select(slice(0, 2)), trained=groups)

    message = "reported 6 generated rollouts at step 0 but drew 12"
    with pytest.raises(InvalidArgumentError, match=message):
        run_policy(scenario(), Liar(), 0)


def test_a_policy_that_overspends_is_stopped():
    class Greedy(Policy):
        name = "greedy"

        def step(self, context):
            prompts = context.take(context.batch_size)
            groups, _ = context.rollout(prompts, np.full(prompts.size, 100))
            return StepResult(generated=groups, trained=groups)

    with pytest.raises(InvalidArgumentError, match="asked for 3200 rollouts at step 0"):
        run_policy(scenario(), Greedy(), 0)


def test_rounds_match_a_loop():
    sc = scenario(prompts=50, batch=8, budget=100, steps=1, model=STATIC)
    result = run_policy(sc, Rounds(round_size=3, max_rounds=2), seed=2)
    success = sc.population.draw(2)
    order = Loader(50, 2).take(50)
    left, groups = 100, []
    position = 0
    while left > 0:
        width = max(1, left // 6)
        prompts = order[position : position + width].tolist()
        position += width
        rewards = {p: [oracle.uniform(2, 0, p, r) < success[p] for r in range(6)] for p in prompts}
        wave = oracle.rounds_wave(rewards, prompts, 3, 2, left)
        left -= sum(size for _, size, _ in wave)
        groups += wave
    assert result.series["prompts_sampled"][0] == len(groups)
    assert result.series["prompts_with_gradient"][0] == sum(0 < s < n for _, n, s in groups)
    assert result.series["rollouts_max"][0] == max(n for _, n, _ in groups)


def test_dapo_trains_full_batches_only_and_accounts_for_every_group():
    sc = scenario(prompts=400, batch=30, budget=240, steps=40, model=STATIC)
    result = run_policy(sc, DynamicSampling(oversample=3), seed=1)
    trained = result.series["prompts_with_gradient"]
    assert set(np.unique(trained).tolist()) <= {0.0, 10.0}
    waiting = result.series["extra_waiting_groups"]
    assert (waiting < 10).all()
    # n = 8 and 30 prompts per generation: the same prompts and rewards as uniform, so every
    # group with a gradient that uniform trains on is trained, dropped or still waiting here.
    uniform = run_policy(sc, make_policy("uniform"), seed=1)
    dropped = result.series["extra_dropped_groups"].sum()
    assert trained.sum() + dropped + waiting[-1] == uniform.series["prompts_with_gradient"].sum()


def test_greso_skips_prompts_after_zero_variance_streaks():
    sc = scenario("0.5*point(0) + 0.5*point(0.5)", prompts=200, batch=16, budget=128, steps=200,
                  model=STATIC)  # fmt: skip
    result = run_policy(sc, SelectiveRollout(), seed=0)
    skipped = result.series["extra_skipped_prompts"]
    assert skipped[:12].sum() == 0  # nothing is known in the first epoch
    assert skipped[50:].mean() > 5
    # Skipping all-wrong prompts raises the share of groups with a gradient over uniform's.
    uniform = run_policy(sc, make_policy("uniform"), seed=0)
    assert result.summary()["prompts_with_gradient"] > uniform.summary()["prompts_with_gradient"]
    explore = result.series["extra_explore_hard"]
    assert explore[:12].tolist() == [0.5] * 12  # adapts from the second epoch on
    assert set(np.round(np.abs(np.diff(explore)), 9).tolist()) <= {0.0, 0.01}
    assert ((explore >= 0.05) & (explore <= 0.95)).all()


def test_knapsack_policies_use_the_allocator():
    sc = scenario(steps=40, model=STATIC)
    paper = run_policy(sc, make_policy("knapsack-paper"), seed=0)
    # The first epoch (600 / 32 = 18.75 batches) is unseen prompts: the uniform share each.
    assert (paper.series["rollouts_max"][:18] == 8).all()
    assert paper.series["rollouts_max"][20:].max() > 8


# --------------------------------------------------------------------- runner
def test_runs_are_deterministic_and_do_not_depend_on_jobs():
    sc = scenario(steps=12)
    one = simulate(sc, ["uniform", "knapsack-bayes", "rounds"], seeds=[0, 1], jobs=1)
    two = simulate(sc, ["uniform", "knapsack-bayes", "rounds"], seeds=[0, 1], jobs=2)
    for name in one.policies:
        for a, b in zip(one.policies[name].runs, two.policies[name].runs, strict=True):
            assert a.seed == b.seed
            for key in a.series:
                assert np.array_equal(a.series[key], b.series[key]), (name, key)
    other = simulate(sc, ["uniform"], seeds=[2], jobs=1)
    assert not np.array_equal(
        other.policies["uniform"].runs[0].series["effective_rollouts"],
        one.policies["uniform"].runs[0].series["effective_rollouts"],
    )


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_counts_every_step(jobs):
    seen = []
    simulate(scenario(steps=25), ["uniform", "dapo"], seeds=[0, 1], jobs=jobs, progress=seen.append)
    assert sum(seen) == 25 * 2 * 2


def test_common_random_numbers_make_identical_policies_identical():
    sc = scenario(steps=20)
    report = simulate(sc, ["uniform", RenamedUniform()], seeds=[3], jobs=1)
    a, b = (r.runs[0].series for r in report.policies.values())
    for key in a:
        assert np.array_equal(a[key], b[key])


class RenamedUniform(Policy):
    name = "uniform-again"

    def step(self, context):
        return make_policy("uniform").step(context)


def test_policy_state_starts_fresh_in_every_run():
    policy = make_policy("greso")
    before = copy.deepcopy(policy.__dict__)
    first = run_policy(scenario(steps=60), policy, 0)
    second = run_policy(scenario(steps=60), policy, 0)
    assert policy.__dict__.keys() == before.keys()
    assert np.array_equal(first.series["effective_rollouts"], second.series["effective_rollouts"])


# ------------------------------------------------- closed forms, limiting cases
def test_static_uniform_effective_ratio_is_the_mean_p_nonzero():
    prompts, batch, steps = 4096, 256, 160  # 10 epochs
    sc = scenario(prompts=prompts, batch=batch, budget=batch * 8, steps=steps, model=STATIC)
    result = run_policy(sc, make_policy("uniform"), seed=11)
    success = sc.population.draw(11)
    p_nz = np.array([oracle.p_nonzero(8, p) for p in success])
    expected = p_nz.mean()
    # Each step's ratio is a mean of Bernoulli(P_nz) over its batch (whole epochs, so every
    # prompt appears 10 times): the standard error of the mean over all groups.
    error = math.sqrt((p_nz * (1 - p_nz)).mean() / (batch * steps))
    got = result.summary()["effective_gradient_ratio"]
    assert abs(got - expected) < 4 * error
    assert result.summary()["final_mean_success"] == pytest.approx(success.mean())
    assert expected == pytest.approx(0.44, abs=0.02)  # the preset's documented figure


@pytest.mark.parametrize("p", [0, 1])
@pytest.mark.parametrize("name", list(POLICIES))
def test_all_zero_or_all_one_populations_give_no_gradient(p, name):
    sc = scenario(f"point({p})", prompts=100, batch=16, budget=128, steps=15)
    result = run_policy(sc, make_policy(name), seed=0)
    assert result.series["prompts_with_gradient"].sum() == 0
    assert result.series["effective_ratio"].sum() == 0
    assert result.summary()["final_mean_success"] == p


def test_static_population_never_moves():
    sc = scenario(steps=20, model=STATIC)
    for name in POLICIES:
        result = run_policy(sc, make_policy(name), seed=0)
        assert (result.series["mean_success"] == result.initial_mean_success).all()


def test_more_budget_never_hurts_uniform_on_a_static_population():
    sc = scenario(steps=40, model=STATIC)
    ratios = [
        run_policy(sc.with_budget(b), make_policy("uniform"), 0).summary()["prompts_with_gradient"]
        for b in (64, 128, 256, 512)
    ]
    assert ratios == sorted(ratios)


def test_scenario_checks():
    with pytest.raises(InvalidArgumentError, match="budget == 50 is below 2 rollouts per prompt"):
        scenario(budget=50)
    with pytest.raises(InvalidArgumentError, match="steps == 0, must be >= 1"):
        scenario(steps=0)
    with pytest.raises(TypeError, match="population must be a Population"):
        Scenario("math-rl")  # type: ignore[arg-type]


def test_groups_concat_and_select():
    a = Groups(np.array([1, 2]), np.array([3, 4]), np.array([0, 2]))
    both = Groups.concat([a, a.select(np.array([False, True]))])
    assert both.prompts.tolist() == [1, 2, 2] and both.rollouts == 11
    assert both.has_gradient.tolist() == [False, True, True]


def test_a_policy_that_cannot_be_pickled_gets_a_clear_error_with_jobs():
    class Local(Policy):
        name = "local"

        def step(self, context):
            return make_policy("uniform").step(context)

    with pytest.raises(InvalidArgumentError, match="policy 'local' cannot be sent to worker"):
        simulate(scenario(steps=2), ["uniform", Local()], jobs=2)
    assert simulate(scenario(steps=2), ["uniform", Local()], jobs=1).policies["local"]


def test_the_documented_custom_policy_runs():
    import pathlib

    text = (pathlib.Path(__file__).parents[1] / "docs" / "simulator.md").read_text()
    block = text.split("### Adding a policy", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {"__name__": "docs_example"}
    exec(compile(block, "docs/simulator.md", "exec"), namespace)
    report = simulate(scenario(steps=20), ["uniform", namespace["RetryFailures"]()], jobs=1)
    result = report.policies["retry-failures"].runs[0]
    # Half the budget evenly (4 x 32), the rest in whole shares to the prompts that failed.
    assert 128 * 20 < result.rollouts <= 256 * 20
    assert result.summary()["max_rollouts"] > 8


def test_module_docstring_example():
    import doctest

    import knapsack_alloc.simulate as module

    failures, attempted = doctest.testmod(module, verbose=False)
    assert attempted > 0 and failures == 0

import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from _oracles_allocator import NaiveHistory
from _oracles_rounds import best_split, group_value
from knapsack_alloc import GRPO, NONZERO, BetaPosterior, NonzeroGradientValue, allocate
from knapsack_alloc.allocator import KnapsackAllocator
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.rounds import RoundPlan, StepGroupValue, StepRounds, round_shares

WEIGHTS = [(1, 2), (0, 0), (2, 1)]
steps_strategy = st.lists(
    st.lists(
        st.tuples(st.integers(0, 7), st.lists(st.booleans(), min_size=1, max_size=12)),
        max_size=5,
    ),
    max_size=5,
)


def _feed(allocator, naive, steps):
    for step in steps:
        ids = [prompt for prompt, outcomes in step for _ in outcomes]
        rewards = [o for _, outcomes in step for o in outcomes]
        allocator.update(ids, rewards)
        if naive is not None:
            naive.record(ids, rewards)


def _beliefs(pairs):
    """BetaPosterior with integer parameters ``(a, b)`` per prompt."""
    a = np.array([p[0] for p in pairs], dtype=np.float64)
    b = np.array([p[1] for p in pairs], dtype=np.float64)
    return BetaPosterior(a - 1, b - 1, prior=(1.0, 1.0))


group_rows = st.lists(
    st.tuples(
        st.integers(0, 6),  # held
        st.integers(0, 6),  # wins (clipped to held)
        st.integers(1, 6),  # a
        st.integers(1, 6),  # b
        st.integers(0, 7),  # rollouts more
    ),
    min_size=1,
    max_size=6,
)


# ------------------------------------------------------------ the value model
@settings(max_examples=80, deadline=None)
@given(group_rows, st.sampled_from(WEIGHTS))
def test_group_value_matches_enumerated_outcomes_under_beta(rows, weight):
    held = [r[0] for r in rows]
    wins = [min(r[1], r[0]) for r in rows]
    sizes = np.array([r[0] + r[4] for r in rows], dtype=np.int64)
    model = StepGroupValue(NonzeroGradientValue("w", *weight), held, wins)
    values = model.value(sizes, _beliefs([(r[2], r[3]) for r in rows]))
    expected = [
        float(group_value(h, w, int(n), (r[2], r[3]), weight))
        for h, w, n, r in zip(held, wins, sizes, rows, strict=True)
    ]
    assert values == pytest.approx(expected, rel=1e-11, abs=1e-15)


@settings(max_examples=80, deadline=None)
@given(group_rows, st.sampled_from(WEIGHTS), st.lists(st.integers(0, 8), min_size=6, max_size=6))
def test_group_value_matches_enumerated_outcomes_at_point_rates(rows, weight, eighths):
    held = [r[0] for r in rows]
    wins = [min(r[1], r[0]) for r in rows]
    sizes = np.array([r[0] + r[4] for r in rows], dtype=np.int64)
    rates = [Fraction(e, 8) for e in eighths[: len(rows)]]
    model = StepGroupValue(NonzeroGradientValue("w", *weight), held, wins)
    values = model.value(sizes, np.array([float(p) for p in rates]))
    expected = [
        float(group_value(h, w, int(n), p, weight))
        for h, w, n, p in zip(held, wins, sizes, rates, strict=True)
    ]
    assert values == pytest.approx(expected, rel=1e-11, abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(group_rows, st.sampled_from(WEIGHTS), st.booleans(), st.integers(0, 3))
def test_gain_recurrence_equals_value_differences_and_never_grows(rows, weight, beta, floor):
    held = np.array([r[0] for r in rows], dtype=np.int64)
    wins = np.array([min(r[1], r[0]) for r in rows], dtype=np.int64)
    model = StepGroupValue(NonzeroGradientValue("w", *weight), held, wins)
    if beta:
        estimates = _beliefs([(r[2], r[3]) for r in rows])
    else:
        estimates = np.array([r[2] / (r[2] + r[3]) for r in rows])
    lower = np.maximum(held, floor)
    span = np.full(held.size, 9, dtype=np.int64)
    table = model._gains(estimates, lower, span).dense(lower, span)
    grid = lower[:, None] + np.arange(10)
    values = np.stack([model.value(grid[:, c], estimates) for c in range(10)], axis=1)
    assert table == pytest.approx(np.diff(values, axis=1), rel=1e-9, abs=1e-14)
    started = lower >= 1
    assert (np.diff(table[started], axis=1) <= 1e-15).all()


def test_fresh_groups_are_valued_as_the_base_model():
    beliefs = BetaPosterior([1.0, 3.0, 0.0], [5.0, 2.0, 0.0], prior=(0.7, 1.3))
    model = StepGroupValue(GRPO, [0, 0, 0], [0, 0, 0])
    for n in (0, 2, 5, 40):
        counts = np.full(3, n, dtype=np.int64)
        assert model.value(counts, beliefs) == pytest.approx(
            GRPO.value(counts, beliefs), rel=1e-12, abs=1e-16
        )


def test_value_model_refuses_bad_groups():
    with pytest.raises(InvalidArgumentError, match=r"successes\[1\] == 3 > held\[1\] == 2"):
        StepGroupValue(GRPO, [2, 2], [0, 3])
    with pytest.raises(TypeError, match="NonzeroGradientValue"):
        StepGroupValue("grpo", [1], [0])  # type: ignore[arg-type]
    model = StepGroupValue(GRPO, [4, 1], [0, 0])
    with pytest.raises(InvalidArgumentError, match=r"counts\[0\] == 3 is below the 4 rollouts"):
        model.value(np.array([3, 1]), np.array([0.5, 0.5]))
    with pytest.raises(InvalidArgumentError, match="min_rollouts"):
        allocate(np.array([0.5, 0.5]), 10, min_rollouts=2, max_rollouts=8, value=model)


# ------------------------------------------- exactness of a round's split
@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 4),
            st.integers(0, 4),
            st.integers(1, 5),
            st.integers(1, 5),
            st.integers(1, 3),
        ),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, 2),
    st.integers(2, 6),
    st.integers(0, 8),
    st.booleans(),
    st.sampled_from(WEIGHTS),
)
def test_allocate_with_held_groups_is_exact_against_brute_force(
    rows, floor, cap, extra, unit, weight
):
    held = [r[0] for r in rows]
    wins = [min(r[1], r[0]) for r in rows]
    costs = [1 if unit else r[4] for r in rows]
    lower = [max(h, floor) for h in held]
    upper = [max(h, cap) for h in held]
    budget = sum(c * lo for c, lo in zip(costs, lower, strict=True)) + extra
    base = NonzeroGradientValue("w", *weight)
    result = allocate(
        _beliefs([(r[2], r[3]) for r in rows]),
        budget,
        min_rollouts=np.array(lower),
        max_rollouts=np.array(upper),
        costs=None if unit else np.array(costs),
        value=StepGroupValue(base, held, wins),
        allow_unused_budget=True,
    )
    table = [
        {n: group_value(h, w, n, (r[2], r[3]), weight) for n in range(lo, hi + 1)}
        for h, w, r, lo, hi in zip(held, wins, rows, lower, upper, strict=True)
    ]
    best = best_split(table, lower, upper, costs, budget)
    found = sum(table[i][int(n)] for i, n in enumerate(result.counts))
    assert result.status == "optimal"
    assert float(found) >= float(best) * (1 - 1e-12) - 1e-300
    assert sum(c * int(n) for c, n in zip(costs, result.counts, strict=True)) <= budget


@settings(max_examples=50, deadline=None)
@given(
    steps_strategy,
    st.lists(st.integers(0, 9), min_size=1, max_size=4),
    st.tuples(st.integers(1, 3), st.integers(1, 3)),
    st.integers(0, 2),
    st.integers(3, 6),
    st.integers(0, 10),
    st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_bayes_second_round_is_exact_against_brute_force(
    steps, batch, prior, floor, cap, extra, outcomes
):
    ka = KnapsackAllocator("bayes", prior=prior, min_rollouts=floor, max_rollouts=cap)
    naive = NaiveHistory(ka.window)
    _feed(ka, naive, steps)
    first_budget = floor * len(batch) + extra // 2
    budget = 2 * first_budget + extra % 2
    assume(budget <= cap * len(batch))
    step = ka.start_step(batch, budget, rounds=2)
    first = step.plan_round()
    rewards = outcomes[: int(first.counts.sum())]
    step.record(rewards)
    second = step.plan_round()
    assert int(second.counts.sum()) == budget - int(first.counts.sum())

    held = first.counts.tolist()
    position_wins = np.bincount(first.rollout_index(), weights=rewards, minlength=len(batch))
    wins = position_wins.astype(int).tolist()
    step_s, step_n = {}, {}
    for prompt, h, w in zip(batch, held, wins, strict=True):
        step_s[prompt] = step_s.get(prompt, 0) + w
        step_n[prompt] = step_n.get(prompt, 0) + h
    table, lower, upper = [], [], []
    for prompt, h, w in zip(batch, held, wins, strict=True):
        s, n, _ = naive.counts(prompt)
        belief = (prior[0] + s + step_s[prompt], prior[1] + n - s + step_n[prompt] - step_s[prompt])
        lo, hi = max(h, floor), max(h, cap)
        table.append({m: group_value(h, w, m, belief, (1, 2)) for m in range(lo, hi + 1)})
        lower.append(lo)
        upper.append(hi)
    best = best_split(table, lower, upper, [1] * len(batch), budget)
    found = sum(table[i][int(n)] for i, n in enumerate(second.sizes))
    assert float(found) >= float(best) * (1 - 1e-12) - 1e-300
    assert (second.sizes == first.counts + second.counts).all()


@settings(max_examples=50, deadline=None)
@given(
    steps_strategy,
    st.lists(st.integers(0, 9), min_size=2, max_size=5),
    st.integers(0, 40),
    st.lists(st.booleans(), min_size=80, max_size=80),
)
def test_paper_second_round_splits_its_effective_share_exactly(steps, batch, extra, outcomes):
    ka = KnapsackAllocator("paper", max_rollouts=10)
    naive = NaiveHistory(ka.window)
    _feed(ka, naive, steps)
    budget = 8 * len(batch) + extra % (2 * len(batch) + 1)  # within what max_rollouts allows
    step = ka.start_step(batch, budget, rounds=2)
    first = step.plan_round()
    rewards = outcomes[: int(first.counts.sum())]
    step.record(rewards)
    second = step.plan_round()
    assert int(first.counts.sum() + second.counts.sum()) == budget
    mixed = ~second.open
    if second.allocation is None:
        return
    effective = np.flatnonzero(second.open & (second.rules == "effective"))
    held = first.counts[effective]
    wins = np.bincount(first.rollout_index(), weights=rewards, minlength=len(batch))
    wins = wins[effective].astype(int)
    table, lower, upper = [], [], []
    for i, h, w in zip(effective, held, wins, strict=True):
        prompt = batch[i]
        s, n, _ = naive.counts(prompt)
        same = [j for j, other in enumerate(batch) if other == prompt]
        s += int(
            np.bincount(first.rollout_index(), weights=rewards, minlength=len(batch))[same].sum()
        )
        n += int(first.counts[same].sum())
        p = Fraction(s, n)
        assert second.estimates[i] == pytest.approx(float(p))
        lo, hi = max(int(h), 2), max(int(h), 10)
        table.append({m: group_value(int(h), int(w), m, p, (1, 2)) for m in range(lo, hi + 1)})
        lower.append(lo)
        upper.append(hi)
    share = int(second.allocation.counts.sum())
    best = best_split(table, lower, upper, [1] * len(effective), share)
    found = sum(table[k][int(n)] for k, n in enumerate(second.allocation.counts))
    assert float(found) >= float(best) * (1 - 1e-12) - 1e-300
    # Closed groups get more only when no open group can take the rest.
    if (second.counts[mixed] > 0).any():
        room = second.open & (second.rules == "effective")
        assert (second.sizes[room] >= 10).all()
        assert not (second.open & (second.rules != "effective")).any()


# ----------------------------------------------------- rounds=1 is plan()
@settings(max_examples=80, deadline=None)
@given(
    steps_strategy,
    st.lists(st.integers(0, 11), min_size=1, max_size=10),
    st.integers(0, 60),
    st.sampled_from(["paper", "bayes"]),
    st.booleans(),
)
def test_one_round_is_plan_bit_for_bit(steps, batch, extra, preset, with_costs):
    ka = KnapsackAllocator(preset)
    _feed(ka, None, steps)
    costs = (np.arange(len(batch)) % 3 + 1) if with_costs else None
    budget = 8 * len(batch) * (3 if with_costs else 1) + extra
    step = ka.start_step(batch, budget, rounds=1, costs=costs)
    try:
        plan = ka.plan(batch, budget, costs=costs)
    except InvalidArgumentError as error:  # the same refusal, word for word
        with pytest.raises(InvalidArgumentError, match=re.escape(str(error))):
            step.plan_round()
        return
    only = step.plan_round()
    assert only.counts.dtype == plan.counts.dtype
    assert only.counts.tobytes() == plan.counts.tobytes()
    assert only.sizes.tobytes() == plan.counts.tobytes()
    assert only.rules.tolist() == plan.rules.tolist()
    assert only.fallback.tobytes() == plan.fallback.tobytes()
    assert only.estimates.tobytes() == plan.estimates.tobytes()
    if plan.allocation is None:
        assert only.allocation is None
    else:
        assert only.allocation.objective == plan.allocation.objective
        assert only.allocation.counts.tobytes() == plan.allocation.counts.tobytes()
    shared = set(plan.metrics) & set(only.metrics) - {"solve_time_s", "plan_time_s"}
    assert {"budget", "cost", "pred_effective_ratio", "prompts_fallback"} <= shared
    for key in shared:
        assert only.metrics[key] == pytest.approx(plan.metrics[key], rel=1e-12, abs=1e-12), key


@settings(max_examples=30, deadline=None)
@given(
    steps_strategy,
    st.lists(st.integers(0, 11), min_size=1, max_size=8),
    st.sampled_from(["paper", "bayes"]),
    st.lists(st.booleans(), min_size=200, max_size=200),
)
def test_one_round_step_updates_history_as_update_does(steps, batch, preset, outcomes):
    direct, stepped = KnapsackAllocator(preset), KnapsackAllocator(preset)
    _feed(direct, None, steps)
    _feed(stepped, None, steps)
    budget = 8 * len(batch)
    plan = direct.plan(batch, budget)
    index, _ = plan.expand()
    rewards = outcomes[: index.size]
    expected = direct.update(np.asarray(batch)[index], rewards)
    step = stepped.start_step(batch, budget, rounds=1)
    step.record(rewards, index=step.plan_round().rollout_index())
    metrics = step.finish()
    assert {k: metrics[k] for k in expected} == expected
    assert stepped.n_updates_ == direct.n_updates_
    got, want = stepped.state_dict()["arrays"], direct.state_dict()["arrays"]
    assert got.keys() == want.keys()
    for key in want:
        assert np.array_equal(got[key], want[key]), key


# -------------------------------------------------- budget accounting
@settings(max_examples=60, deadline=None)
@given(
    steps_strategy,
    st.lists(st.integers(0, 11), min_size=1, max_size=10),
    st.integers(1, 4),
    st.integers(0, 90),
    st.sampled_from(["paper", "bayes"]),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_budget_accounting_across_rounds(steps, batch, rounds, extra, preset, unit, rng):
    ka = KnapsackAllocator(preset)
    _feed(ka, None, steps)
    costs = None if unit else [rng.randint(1, 4) for _ in batch]
    per = np.ones(len(batch)) if unit else np.array(costs, dtype=float)
    budget = int(8 * rounds * per.sum()) + extra
    n_updates, n_rollouts = ka.n_updates_, ka.n_rollouts_
    step = ka.start_step(batch, budget, rounds=rounds, costs=costs)
    spent = 0.0
    recorded = 0
    for k, plan in enumerate(step):
        assert isinstance(plan, RoundPlan) and plan.round == k
        cost = float(per @ plan.counts)
        assert plan.metrics["cost"] == cost
        assert cost <= plan.metrics["budget"] + 1e-9
        assert plan.metrics["step_cost"] == pytest.approx(spent + cost)
        target = budget if k == rounds - 1 else np.floor(budget * (k + 1) / rounds + 1e-9)
        assert plan.metrics["budget"] == pytest.approx(target - spent)
        assert (plan.sizes == step.group_sizes + plan.counts).all()
        rewards = [rng.random() < 0.5 for _ in range(int(plan.counts.sum()))]
        step.record(rewards)
        spent += cost
        recorded += len(rewards)
    assert step.rounds_planned == rounds
    if unit:
        assert spent == budget
    assert spent <= budget
    assert ka.n_updates_ == n_updates and ka.n_rollouts_ == n_rollouts  # nothing recorded yet
    metrics = step.finish()
    assert metrics["step_cost"] == pytest.approx(spent)
    assert metrics["rounds"] == rounds and metrics["rollouts"] == recorded
    assert ka.n_updates_ == n_updates + 1 and ka.n_rollouts_ == n_rollouts + recorded


def test_history_gets_every_round_once_and_in_one_update():
    batch = [3, 1, 3, 7]
    stepped, direct = KnapsackAllocator("bayes"), KnapsackAllocator("bayes")
    step = stepped.start_step(batch, 40, rounds=3)
    rng = np.random.default_rng(5)
    all_index, all_rewards = [], []
    for plan in step:
        index = plan.rollout_index()
        rewards = rng.random(index.size) < 0.4
        step.record(rewards)
        all_index.append(index)
        all_rewards.append(rewards)
    index, rewards = step.rollouts()
    assert (index == np.concatenate(all_index)).all()
    assert (rewards == np.concatenate(all_rewards)).all()
    assert (np.bincount(index, minlength=4) == step.group_sizes).all()
    step.finish()
    direct.update(np.asarray(batch)[index], rewards)
    got, want = stepped.state_dict()["arrays"], direct.state_dict()["arrays"]
    for key in want:
        assert np.array_equal(got[key], want[key]), key
    assert stepped.n_updates_ == 1 == direct.n_updates_


# ------------------------------------------ the within-step update, by hand
def test_within_step_posterior_update_by_hand():
    ka = KnapsackAllocator("bayes", prior=(1.0, 1.0))
    ka.update(["a"] * 8 + ["b"] * 8, [1, 1, 1, 0, 0, 0, 0, 0] + [1, 0] * 4)
    step = ka.start_step(["a", "b"], 16, rounds=2)
    first = step.plan_round()
    assert first.counts.tolist() == [4, 4]
    step.record([0, 0, 0, 0, 1, 0, 0, 1])  # "a": four failures; "b": mixed
    second = step.plan_round()
    assert second.counts.tolist() == [8, 0] and second.sizes.tolist() == [12, 4]
    assert second.open.tolist() == [True, False]
    # "a": prior (1, 1) + 3 successes, 5 failures + the step's 4 failures = Beta(4, 10).
    assert second.estimates.tolist() == [3 / 12, 6 / 12]

    def moment(a, b, x, y):  # E[p^x q^y] under Beta(a, b): rising factorials
        num = Fraction(1)
        for t in range(x):
            num *= a + t
        for t in range(y):
            num *= b + t
        for t in range(x + y):
            num /= a + b + t
        return num

    # P("a" mixed after 8 more) = 1 - E[q^8] = 1 - (10...17) / (14...21)
    # = 1 - (10 * 11 * 12 * 13) / (18 * 19 * 20 * 21); "b" is already mixed.
    p_mixed_a = 1 - moment(4, 10, 0, 8)
    assert p_mixed_a == 1 - Fraction(10 * 11 * 12 * 13, 18 * 19 * 20 * 21)
    assert second.metrics["pred_prompts_with_gradient"] == pytest.approx(float(p_mixed_a + 1))
    # Value of the whole step: E[p q^2 (1 - q^8)] under Beta(4, 10) for "a", plus
    # E[p q^2] under "b"'s Beta(1 + 4 + 2, 1 + 4 + 2) = Beta(7, 7).
    value_a = moment(4, 10, 1, 2) - moment(4, 10, 1, 10)
    value_b = moment(7, 7, 1, 2)
    assert moment(4, 10, 1, 2) == Fraction(4 * 10 * 11, 14 * 15 * 16)
    assert second.allocation.objective == pytest.approx(float(value_a + value_b), rel=1e-12)
    # The step's rewards are not in the history until finish().
    assert ka.n_rollouts_ == 16
    step.record([0] * 8)
    step.finish()
    assert ka.n_rollouts_ == 32


def test_duplicates_are_separate_groups_sharing_one_belief():
    ka = KnapsackAllocator("bayes", prior=(1.0, 1.0))
    step = ka.start_step(["a", "a", "b"], 18, rounds=2)
    first = step.plan_round()
    assert first.counts.tolist() == [3, 3, 3]
    step.record([0, 0, 0, 1, 1, 1, 0, 0, 0])
    second = step.plan_round()
    # Both "a" groups are open (one all failures, one all successes) and share
    # the belief Beta(1 + 3, 1 + 3); "b" failed 3 times: Beta(1, 4).
    assert second.open.tolist() == [True, True, True]
    assert second.estimates.tolist() == [0.5, 0.5, 0.0]
    assert second.metrics["prompts_mixed"] == 0
    assert int(second.counts.sum()) == 9
    assert second.counts[0] == second.counts[1]


def test_paper_rounds_by_hand():
    ka = KnapsackAllocator("paper")
    # "z": valid at 0; "e": valid at 0.5; "w": seen twice (warm-up).
    ka.update(["z"] * 16 + ["e"] * 16 + ["w"] * 2, [0] * 16 + [1, 0] * 8 + [1, 1])
    step = ka.start_step(["z", "e", "w", "n"], 64, rounds=2)
    first = step.plan_round()
    # First round: 32 rollouts; default_rollouts scaled to 8 * 32 // 64 = 4 for "w"
    # and the unseen "n"; base 2 for "z" and "e"; need of "e" (p = 0.5) is
    # floor(ln 0.1 / ln 0.5) = 3 < remaining 20, so "e" gets 2 + 3 and the
    # surplus 17 goes to "z", "w", "n" (6, 6, 5 in batch order).
    assert first.counts.tolist() == [2 + 6, 5, 4 + 6, 4 + 5]
    assert first.fallback.tolist() == [True, False, True, True]
    # "z" fails 8 times, "e" is mixed, "w" succeeds 10 times, "n" fails 9 times.
    step.record([0] * 8 + [1, 0, 1, 0, 1] + [1] * 10 + [0] * 9)
    second = step.plan_round()
    assert second.open.tolist() == [True, False, True, True]
    # Updated estimates: z 0/24, e mixed (closed), w 12/12 = 1 (valid, "one"), n 0/9.
    assert second.rules.tolist() == ["zero", "effective", "one", "zero"]
    # No open effective group: the 32 rollouts go to the unsolved open groups
    # ("z" and "n", p = 0), 16 each; the closed "e" and the solved "w" get none.
    assert second.counts.tolist() == [16, 0, 0, 16]
    assert second.fallback.tolist() == [True, False, False, True]


def test_paper_later_round_gives_effective_groups_their_need_first():
    ka = KnapsackAllocator("paper")
    ka.update(
        ["x"] * 16 + ["y"] * 16 + ["z"] * 16, [1] * 4 + [0] * 12 + [1] * 8 + [0] * 8 + [0] * 16
    )
    step = ka.start_step(["x", "y", "z"], 48, rounds=2)
    first = step.plan_round()
    step.record([0] * int(first.counts[0]) + [1, 0] + [0] * (int(first.counts[1]) - 2)
                + [0] * int(first.counts[2]))  # fmt: skip
    second = step.plan_round()
    assert second.open.tolist() == [True, False, True]
    n_x = int(first.counts[0])
    p_x = 4 / (16 + n_x)  # window 16 plus the step's failures
    assert second.estimates[0] == pytest.approx(p_x)
    need = int(np.floor(np.log(0.1) / np.log(1 - p_x)))
    budget = 24
    assert second.counts[0] == min(need, budget, 128 - n_x)
    assert second.counts[2] == budget - second.counts[0]  # the surplus: "z" at 0
    assert second.counts[1] == 0


# ---------------------------------------------------------- schedule
def test_round_shares():
    assert round_shares(1) == (1.0,)
    assert round_shares(2) == (0.5, 0.5)
    assert round_shares(3) == pytest.approx((1 / 3,) * 3)
    assert round_shares(2, first_share=0.25) == (0.25, 0.75)
    assert round_shares(shares=[0.2, 0.3, 0.5]) == (0.2, 0.3, 0.5)
    assert round_shares(3, shares=[0.2, 0.3, 0.5]) == (0.2, 0.3, 0.5)
    assert round_shares(1, first_share=1) == (1.0,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rounds": 0}, "rounds == 0, must be >= 1"),
        ({"rounds": 2.5}, "rounds == 2.5, must be a whole number"),
        ({"rounds": 2, "first_share": 1.0}, r"first_share == 1.0, must be in \(0, 1\)"),
        ({"rounds": 2, "first_share": 0}, r"first_share == 0, must be in \(0, 1\)"),
        ({"rounds": 1, "first_share": 0.5}, "a single round spends the whole budget"),
        ({"shares": [0.5, 0.6]}, "sum to 1.1"),
        ({"shares": [1.5, -0.5]}, r"shares\[0\] == 1.5, must be in \(0, 1\]"),
        ({"shares": []}, "non-empty list"),
        ({"shares": [0.5, 0.5], "first_share": 0.5}, "not both"),
        ({"shares": [0.5, 0.5], "rounds": 3}, "shares lists 2 rounds"),
    ],
)
def test_bad_schedules_are_refused(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        round_shares(**kwargs)
    with pytest.raises(InvalidArgumentError, match=message):
        KnapsackAllocator("bayes").start_step([1, 2], 16, **kwargs)


# ----------------------------------------------------------- misuse
def test_misuse_gets_clear_errors():
    ka = KnapsackAllocator("bayes")
    step = ka.start_step([1, 2], 16, rounds=2)
    with pytest.raises(InvalidArgumentError, match="call plan_round"):
        step.record([1, 0])
    plan = step.plan_round()
    with pytest.raises(InvalidArgumentError, match="rewards were not recorded"):
        step.plan_round()
    with pytest.raises(InvalidArgumentError, match="rewards were not recorded"):
        step.finish()
    with pytest.raises(InvalidArgumentError, match="one entry per rollout each"):
        step.record([1, 0])
    with pytest.raises(InvalidArgumentError, match="exactly counts"):
        step.record([1] * 8, index=[0] * 8)
    with pytest.raises(InvalidArgumentError, match="not a valid reward"):
        step.record([2] * 8)
    with pytest.raises(InvalidArgumentError, match=r"costs\[0\] == -1.0"):
        step.record([1] * 8, costs=[-1] * 8)
    assert step.group_sizes.tolist() == [0, 0]  # failed records change nothing
    step.record([1, 0, 1, 0, 0, 0, 0, 0], index=plan.rollout_index()[::-1])
    assert step.group_sizes.tolist() == [4, 4]
    assert step.group_successes.tolist() == [0, 2]
    step.plan_round()
    with pytest.raises(InvalidArgumentError, match="for every round of the step or for none"):
        step.record([0] * 8, costs=[1.0] * 8)
    step.record([0] * 8)
    with pytest.raises(InvalidArgumentError, match="all 2 rounds of this step were planned"):
        step.plan_round()
    step.finish()
    with pytest.raises(InvalidArgumentError, match="this step is finished"):
        step.finish()


def test_an_update_between_rounds_is_refused():
    ka = KnapsackAllocator("bayes")
    step = ka.start_step([1, 2], 16, rounds=2)
    step.record([1, 0] * 4, index=step.plan_round().rollout_index())
    ka.update([1, 1], [1, 0])
    with pytest.raises(InvalidArgumentError, match="do not call update"):
        step.plan_round()
    with pytest.raises(InvalidArgumentError, match="do not call update"):
        step.finish()


def test_finish_may_stop_early_and_the_rest_stays_unspent():
    ka = KnapsackAllocator("bayes")
    step = ka.start_step([1, 2], 16, rounds=2)
    step.record([1, 0] * 4, index=step.plan_round().rollout_index())
    metrics = step.finish()
    assert metrics["rounds"] == 1 and metrics["step_cost"] == 8 and metrics["step_budget"] == 16


def test_rounds_refuse_custom_value_models_and_small_first_rounds():
    custom = KnapsackAllocator("bayes", value=lambda n, p: np.minimum(n, 4) * p)
    with pytest.raises(InvalidArgumentError, match="rounds need a value model of the P_nz family"):
        custom.start_step([1, 2], 16)
    ka = KnapsackAllocator("paper")
    step = ka.start_step([1, 2, 3, 4], 20, rounds=2)
    # The first round's 10 rollouts cannot give four unseen prompts their
    # scaled default of max(2, 8 * 10 // 20) = 4 each.
    with pytest.raises(InvalidArgumentError, match="raise first_share"):
        step.plan_round()
    with pytest.raises(InvalidArgumentError, match="no prompts"):
        ka.start_step([], 8)
    empty = ka.start_step([], 0)
    assert empty.plan_round().counts.size == 0


def test_value_model_names_nonzero_and_grpo():
    beliefs = BetaPosterior([0.0], [3.0])
    for base in (GRPO, NONZERO):
        model = StepGroupValue(base, [3], [0])
        assert model.name == base.name
        assert model.value(np.array([3]), beliefs)[0] == 0.0
    assert repr(StepGroupValue(GRPO, [3], [0])).startswith("StepGroupValue(")


def test_step_rounds_reprs_and_iteration_order():
    ka = KnapsackAllocator("bayes")
    step = ka.start_step(["a", "b", "c"], 30, rounds=3)
    assert isinstance(step, StepRounds) and step.rounds == 3 and step.budget == 30
    seen = []
    for plan in step:
        seen.append(plan.round)
        assert "RoundPlan(round=" in repr(plan)
        assert len(plan) == 3
        assert plan.balance(2).loads.sum() == plan.counts.sum()
        step.record([0] * int(plan.counts.sum()))
    assert seen == [0, 1, 2]


def test_paper_plan_with_costs_leaves_the_remainder_of_equal_shares():
    # Unseen prompts are all fallback candidates; their equal shares of the
    # surplus cannot always spend it to the unit (it used to raise, blaming
    # effective prompts that did not exist).
    ka = KnapsackAllocator("paper")
    plan = ka.plan([0], 17, costs=[2])
    assert plan.counts.tolist() == [8] and plan.metrics["unused_budget"] == 1
    plan = ka.plan([0, 1, 2], 72, costs=[1, 2, 3])
    assert plan.counts.tolist() == [17, 12, 10] and plan.metrics["unused_budget"] == 1
    ka.update([5] * 8, [1, 0] * 4)
    with pytest.raises(InvalidArgumentError, match="every prompt is effective"):
        ka.plan([5], 200, costs=[1])


def test_nan_rewards_are_paid_for_but_carry_no_evidence():
    ka = KnapsackAllocator("bayes", prior=(1.0, 1.0))
    step = ka.start_step(["a", "b"], 16, rounds=2)
    step.plan_round()
    step.record([0, np.nan, 0, 0, 1, np.nan, np.nan, 0])
    assert step.group_sizes.tolist() == [3, 2] and step.group_successes.tolist() == [0, 1]
    second = step.plan_round()
    assert second.metrics["budget"] == 8  # all 8 rollouts of the first round were paid for
    assert second.estimates.tolist() == [0.0, 0.5]
    assert second.sizes.tolist() == [3 + second.counts[0], 2 + second.counts[1]]
    step.record([1] * 8)
    index, rewards = step.rollouts()
    assert np.isnan(rewards).sum() == 3 and index.size == 16
    metrics = step.finish()
    assert metrics["rollouts"] == 13 and metrics["step_cost"] == 16
    assert ka.n_rollouts_ == 13
    other = ka.start_step(["a"], 4, rounds=1)
    other.plan_round()
    with pytest.raises(InvalidArgumentError, match=r"rewards\[1\] == 2.0 is not a valid reward"):
        other.record([np.nan, 2.0, 0, 0])

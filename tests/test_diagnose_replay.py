"""The counterfactual replay and the suggested bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from _diagnose_runs import make_rollouts, oracle, seeded, table_rows, write_csv
from knapsack_alloc import InvalidArgumentError
from knapsack_alloc.diagnose import diagnose
from knapsack_alloc.diagnose.report import json_report, verdict


def p_nonzero(n, p):
    return 1 - p**n - (1 - p) ** n


@pytest.fixture
def run(tmp_path):
    rng = seeded(21)
    rollouts = make_rollouts(rng, steps=8, prompts=30, per_step=12, sizes=(4, 8, 8, 16))
    return rollouts, write_csv(tmp_path / "run.csv", table_rows(rollouts, rng))


def test_the_run_as_it_was_is_scored_by_the_formula(run):
    rollouts, path = run
    result = diagnose([str(path)], presets=())
    expected = oracle(rollouts)
    rate = {f"p{k}": v["wins"] / v["rollouts"] for k, v in expected["prompts"].items()}
    groups = {}
    for step, prompt, _ in rollouts:
        groups[(step, f"p{prompt}")] = groups.get((step, f"p{prompt}"), 0) + 1
    per_step = {}
    for (step, prompt), n in groups.items():
        gradient, budget = per_step.get(step, (0.0, 0))
        per_step[step] = (gradient + n * p_nonzero(n, rate[prompt]), budget + n)
    want = [g / b for _, (g, b) in sorted(per_step.items())]
    got = result.projections["as run"].step_ratio
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_replays_spend_every_steps_budget_within_the_bounds(run):
    _, path = run
    result = diagnose([str(path)], min_rollouts=2, max_rollouts=24, seed=5)
    sampled = result.prompts.sampled
    for name in ("paper", "bayes"):
        projection = result.projections[name]
        total = float(projection.prompt_rollouts @ sampled)
        assert total == pytest.approx(result.rollouts)
        q = projection.rollouts_percentiles
        assert 2 <= q["p0"] <= q["p50"] <= q["p100"]
        if name == "bayes":  # the paper preset's fallback share is not bounded
            assert q["p100"] <= 24
        assert 0.0 <= projection.effective_gradient_ratio <= 1.0


def test_replay_is_seeded(run):
    _, path = run
    first = json_report(diagnose([str(path)], seed=1))["summary"]["projected"]
    again = json_report(diagnose([str(path)], seed=1))["summary"]["projected"]
    other = json_report(diagnose([str(path)], seed=2))["summary"]["projected"]
    assert first == again
    assert first["seed"] == 1 and other["seed"] == 2
    assert first["paper"] != other["paper"] or first["bayes"] != other["bayes"]


def test_suggested_upper_bound_covers_the_hardest_tenth(tmp_path):
    # Every prompt solves 1 of 8: 18 rollouts give a gradient with probability 0.9.
    rows = [
        {"step": step, "prompt_id": f"p{i}", "reward": float(j == 0)}
        for step in (1, 2) for i in range(10) for j in range(8)
    ]  # fmt: skip
    result = diagnose([str(write_csv(tmp_path / "t.csv", rows))], presets=())
    need = math.ceil(math.log(0.1) / math.log(1 - 1 / 8))
    assert need == 18
    assert (result.suggested.min_rollouts, result.suggested.max_rollouts) == (2, 32)
    assert "18 rollouts" in result.suggested.reason


def test_suggested_bounds_fit_every_step(tmp_path):
    # One step has 3 groups sharing 90 rollouts: the upper bound must let it spend them.
    rows = [{"step": 1, "prompt_id": f"p{i}", "reward": float(k % 2)} for i in range(3)
            for k in range(30)]  # fmt: skip
    rows += [{"step": 2, "prompt_id": f"p{i}", "reward": 1.0} for i in range(3) for _ in range(2)]
    result = diagnose([str(write_csv(tmp_path / "t.csv", rows))])
    assert result.suggested.max_rollouts >= 30
    assert result.projections["paper"].rollouts_percentiles["p100"] <= result.bounds.max_rollouts


def test_groups_of_one_make_the_lower_bound_one(tmp_path):
    rows = [{"step": 1, "prompt_id": f"p{i}", "reward": float(i % 2)} for i in range(6)]
    result = diagnose([str(write_csv(tmp_path / "t.csv", rows))])
    assert result.suggested.min_rollouts == 1
    assert result.projections["paper"].effective_gradient_ratio == 0.0  # rates are 0 or 1


@pytest.mark.parametrize(
    ("bounds", "match"),
    [
        (
            {"min_rollouts": 9},
            r"--min-rollouts == 9 is too high for step \d+: it had \d+ rollouts for \d+ groups",
        ),
        ({"max_rollouts": 1}, r"--max-rollouts == 1 is below --min-rollouts == 2"),
        ({"min_rollouts": 1, "max_rollouts": 2}, r"--max-rollouts == 2 is too low for step"),
        ({"min_rollouts": 0}, r"--min-rollouts == 0, must be >= 1"),
    ],
)
def test_bounds_that_cannot_spend_a_budget_are_refused(run, bounds, match):
    _, path = run
    with pytest.raises(InvalidArgumentError, match=match):
        diagnose([str(path)], **bounds)


def test_verdict_says_when_allocation_would_not_help(tmp_path):
    rows = [{"step": s, "prompt_id": f"p{i}", "reward": float(i % 2)} for s in (1, 2, 3)
            for i in range(4) for _ in range(4)]  # fmt: skip
    result = diagnose([str(write_csv(tmp_path / "t.csv", rows))])
    assert result.wasted_rollouts == result.rollouts
    assert verdict(result) == (
        "100% of rollouts (48 of 48) fell in groups with no gradient; knapsack allocation would "
        "not have cut it under the model (100% with the paper preset against 100% for the run "
        "as it was)."
    )

import numpy as np
import pytest

from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.simulate import (
    Knapsack,
    KnapsackRounds,
    LearningModel,
    Population,
    Scenario,
    make_policy,
    run_policy,
)


def scenario(spec="math-rl", prompts=600, batch=32, budget=256, steps=30, rate=0.25):
    return Scenario(
        Population.from_argument(spec, prompts=prompts), batch, budget, steps,
        LearningModel(rate, 1.0),
    )  # fmt: skip


@pytest.mark.parametrize("preset", ["paper", "bayes"])
def test_one_round_policy_is_the_single_plan_policy(preset):
    sc = scenario(steps=25)
    single = run_policy(sc, Knapsack(preset), seed=3)
    one = run_policy(sc, KnapsackRounds(preset, rounds=1), seed=3)
    assert one.rollouts == single.rollouts
    for key in ("rollouts", "effective_ratio", "prompts_with_gradient", "mean_success",
                "rollouts_max", "infogain"):  # fmt: skip
        assert np.array_equal(one.series[key], single.series[key]), key


@pytest.mark.parametrize("preset", ["paper", "bayes"])
@pytest.mark.parametrize("rounds", [2, 3])
def test_rounds_spend_the_step_budget_and_train_one_group_per_prompt(preset, rounds):
    sc = scenario(budget=250, steps=12)
    result = run_policy(sc, KnapsackRounds(preset, rounds=rounds), seed=1)
    assert (result.series["rollouts"] == 250).all()
    assert (result.series["prompts_sampled"] <= 32).all()
    assert (result.series["extra_mixed_after_first_round"] > 0).any()


def test_rounds_give_more_groups_a_gradient_on_a_static_population():
    # Static math-RL population: the second round re-plans with the first
    # round's rewards, so it wastes fewer rollouts on groups already mixed.
    sc = scenario(prompts=2000, batch=64, budget=512, steps=60, rate=0.0)
    one = run_policy(sc, KnapsackRounds("bayes", rounds=1), seed=0).summary()
    two = run_policy(sc, KnapsackRounds("bayes", rounds=2), seed=0).summary()
    assert two["prompts_with_gradient"] > one["prompts_with_gradient"]


def test_names_and_bad_arguments():
    assert make_policy("knapsack-rounds-bayes").name == "knapsack-rounds-bayes"
    assert make_policy("knapsack-rounds-paper").name == "knapsack-rounds-paper"
    assert KnapsackRounds("bayes", rounds=3).name == "knapsack-rounds3-bayes"
    assert KnapsackRounds("paper", first_share=0.25).name == "knapsack-rounds-paper-f0.25"
    with pytest.raises(InvalidArgumentError, match="first_share"):
        KnapsackRounds("bayes", first_share=1.5)
    with pytest.raises(TypeError, match="alpha"):
        KnapsackRounds("bayes", alpha=0.5)

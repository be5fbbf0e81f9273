"""Benchmarks of the simulator.

Run with ``python -m pytest benchmarks/bench_simulate.py --benchmark-only``.

* the default scenario (10,000 prompts, batch 256, budget 2048, 500 steps,
  every built-in policy) in one process and in two worker processes; the
  target is at most 60 s on a 2-core machine;
* one policy's run as the population and the number of steps grow, for the
  cost growth (``extra_info`` holds the sizes): time per step should not
  depend on the population size except through the transfer update, which
  is linear in it.
"""

import pytest

from knapsack_alloc.simulate import (
    POLICIES,
    Population,
    Scenario,
    make_policy,
    run_policy,
    simulate,
)


@pytest.mark.parametrize("jobs", [1, 2])
def test_default_scenario(benchmark, jobs):
    scenario = Scenario()
    benchmark.extra_info.update(policies=len(POLICIES), jobs=jobs)
    report = benchmark.pedantic(simulate, args=(scenario,), kwargs={"jobs": jobs}, rounds=1)
    assert all(r.summary()["rollouts"] == 2048 * 500 for r in report.policies.values())


@pytest.mark.parametrize("policy", ["uniform", "knapsack-paper", "knapsack-bayes", "rounds"])
@pytest.mark.parametrize(("prompts", "steps"), [(2_500, 500), (10_000, 500), (40_000, 500),
                                                (10_000, 125), (10_000, 2_000)])  # fmt: skip
def test_cost_growth(benchmark, policy, prompts, steps):
    scenario = Scenario(Population.from_argument("math-rl", prompts=prompts), steps=steps)
    run_policy(Scenario(steps=2), make_policy(policy), 0)  # load compiled kernels first
    benchmark.extra_info.update(policy=policy, prompts=prompts, steps=steps)
    benchmark.pedantic(run_policy, args=(scenario, make_policy(policy), 0), rounds=1)

"""Simulate GRPO training on a prompt population and compare allocation policies.

>>> from knapsack_alloc.simulate import Population, Scenario, simulate
>>> scenario = Scenario(Population.from_argument("math-rl", prompts=1000), steps=20)
>>> report = simulate(scenario, ["uniform", "knapsack-paper"])
>>> sorted(report.policies)
['knapsack-paper', 'uniform']
>>> report.policies["uniform"].summary()["rollouts"]
40960.0

The model, the policies and their published defaults are described in
``docs/simulator.md``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.simulate.dynamics import LearningModel
from knapsack_alloc.simulate.environment import Environment, Groups
from knapsack_alloc.simulate.loader import Loader
from knapsack_alloc.simulate.matching import compute_to_match
from knapsack_alloc.simulate.policies import (
    POLICIES,
    DynamicSampling,
    Knapsack,
    KnapsackRounds,
    Rounds,
    SelectiveRollout,
    Uniform,
    make_policy,
)
from knapsack_alloc.simulate.policy import Policy, StepContext, StepResult
from knapsack_alloc.simulate.population import PRESETS, Population
from knapsack_alloc.simulate.report import Match, PolicyReport, Report
from knapsack_alloc.simulate.runner import Progress, RunResult, Task, run_policy, run_tasks
from knapsack_alloc.simulate.scenario import Scenario

__all__ = [
    "POLICIES",
    "PRESETS",
    "DynamicSampling",
    "Environment",
    "Groups",
    "Knapsack",
    "KnapsackRounds",
    "LearningModel",
    "Loader",
    "Match",
    "Policy",
    "PolicyReport",
    "Population",
    "Report",
    "Rounds",
    "RunResult",
    "Scenario",
    "SelectiveRollout",
    "StepContext",
    "StepResult",
    "Uniform",
    "compute_to_match",
    "make_policy",
    "run_policy",
    "simulate",
]


def simulate(
    scenario: Scenario | None = None,
    policies: Sequence[str | Policy] = tuple(POLICIES),
    seeds: Sequence[int] = (0,),
    *,
    jobs: int | None = None,
    match: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Run every policy through ``scenario`` once per seed.

    Parameters
    ----------
    scenario : Scenario, optional
        Default: ``Scenario()`` (math-RL population, 10,000 prompts, batch
        256, budget 2048, 500 steps).
    policies : sequence of str or Policy
        Built-in names (see :data:`POLICIES`) or policy objects; default all
        built-ins.
    seeds : sequence of int, default (0,)
        One run per policy and seed.
    jobs : int, optional
        Worker processes; results do not depend on it. Default: one per CPU
        with several seeds or ``match``, else 1 (starting a worker costs
        about 2 s, more than a single seed's policies gain from it).
    match : bool, default False
        Also find the uniform budget that matches each policy's final mean
        success (see :func:`compute_to_match`).
    progress : callable, optional
        Called with numbers of simulated steps completed.

    Returns
    -------
    Report
    """
    started = time.perf_counter()
    scenario = Scenario() if scenario is None else scenario
    objects = [make_policy(p) if isinstance(p, str) else p for p in policies]
    names = [p.name for p in objects]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"policy names must be unique, got {names}.")
    if not objects or not seeds:
        raise InvalidArgumentError("simulate needs at least one policy and one seed.")
    tasks = [Task(scenario, policy, int(seed)) for policy in objects for seed in seeds]
    if jobs is None:
        jobs = (os.cpu_count() or 1) if len(seeds) > 1 or match else 1
    workers = min(jobs, len(tasks))
    runs = run_tasks(tasks, workers, progress)
    reports = {
        name: PolicyReport(name, tuple(runs[i * len(seeds) : (i + 1) * len(seeds)]))
        for i, name in enumerate(names)
    }
    matches = compute_to_match(scenario, list(reports.values()), jobs, progress) if match else ()
    return Report(
        scenario=scenario,
        seeds=tuple(int(s) for s in seeds),
        policies=reports,
        matches=matches,
        elapsed_s=time.perf_counter() - started,
        jobs=workers,
    )

"""Compute to match: the budget uniform needs to reach a policy's final mean success.

For each seed and policy, uniform is run at a grid of budgets (multiples of
the scenario's budget, :data:`GRID`) to bracket the policy's final mean
success, then the bracket is bisected until it is narrower than
:data:`PRECISION` of the budget. The answer is the smallest budget found at
which uniform reaches the target, as a factor of the scenario's budget (the
paper reports about 2). All runs of one bisection level are done in
parallel, and each run is cached, so policies and seeds share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from knapsack_alloc.simulate.policies import Uniform
from knapsack_alloc.simulate.report import Match, PolicyReport
from knapsack_alloc.simulate.runner import Progress, Task, run_tasks
from knapsack_alloc.simulate.scenario import Scenario

#: Budgets tried first, as multiples of the scenario's budget.
GRID = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
#: Bisection stops when the bracket is at most this share of the budget wide.
PRECISION = 0.01


def grid_budgets(scenario: Scenario) -> list[int]:
    """Return the first budgets tried (none below 2 rollouts per prompt of a batch)."""
    floor = 2 * scenario.batch_size
    return sorted({max(floor, round(f * scenario.budget)) for f in GRID})


def bisection_runs(scenario: Scenario) -> int:
    """Upper bound on the uniform runs :func:`compute_to_match` makes per seed and policy."""
    budgets = grid_budgets(scenario)
    widest = max(b - a for a, b in pairwise(budgets))
    runs, width = 0, widest
    while width > max(1, PRECISION * scenario.budget):
        width = (width + 1) // 2
        runs += 1
    return runs


def compute_to_match(
    scenario: Scenario,
    reports: Sequence[PolicyReport],
    jobs: int = 1,
    progress: Progress | None = None,
) -> tuple[Match, ...]:
    """Find, per policy and seed, the uniform budget that reaches its final mean success.

    Parameters
    ----------
    scenario : Scenario
        The scenario the policies ran (its budget is the reference).
    reports : sequence of PolicyReport
        The policies to match (uniform itself is skipped).
    jobs : int, default 1
        Worker processes.
    progress : callable, optional
        Called with numbers of simulated steps completed.

    Returns
    -------
    tuple of Match
    """
    targets = [
        (report.name, run.seed, run.summary()["final_mean_success"])
        for report in reports
        if report.name != "uniform"
        for run in report.runs
    ]
    if scenario.model.static:
        return tuple(Match(n, s, t, "static", None, None, (0, 0)) for n, s, t in targets)
    cache: dict[tuple[int, int], float] = {}

    def evaluate(pairs: set[tuple[int, int]]) -> None:
        todo = sorted(pairs - cache.keys())
        tasks = [Task(scenario.with_budget(budget), Uniform(), seed) for seed, budget in todo]
        for (seed, budget), run in zip(todo, run_tasks(tasks, jobs, progress), strict=True):
            cache[(seed, budget)] = run.summary()["final_mean_success"]

    grid = grid_budgets(scenario)
    evaluate({(seed, budget) for _, seed, _ in targets for budget in grid})
    brackets: dict[int, tuple[int, int]] = {}
    for index, (_, seed, target) in enumerate(targets):
        reached = [b for b in grid if cache[(seed, b)] >= target]
        if reached and reached[0] > grid[0]:
            brackets[index] = (max(b for b in grid if b < reached[0]), reached[0])
    while True:
        open_ = {i: (lo, hi) for i, (lo, hi) in brackets.items()
                 if hi - lo > max(1, PRECISION * scenario.budget)}  # fmt: skip
        if not open_:
            break
        middles = {i: (lo + hi) // 2 for i, (lo, hi) in open_.items()}
        evaluate({(targets[i][1], middle) for i, middle in middles.items()})
        for i, middle in middles.items():
            lo, hi = brackets[i]
            seed, target = targets[i][1], targets[i][2]
            brackets[i] = (lo, middle) if cache[(seed, middle)] >= target else (middle, hi)
    matches = []
    for index, (name, seed, target) in enumerate(targets):
        if index in brackets:
            lo, hi = brackets[index]
            status, budget = "matched", hi
        elif cache[(seed, grid[-1])] < target:
            lo, hi = grid[-1], grid[-1]
            status, budget = "above_range", grid[-1]
        else:
            lo, hi = grid[0], grid[0]
            status, budget = "below_range", grid[0]
        factor = budget / scenario.budget
        matches.append(Match(name, seed, target, status, budget, factor, (lo, hi)))
    return tuple(matches)

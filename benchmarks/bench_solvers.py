"""Solver speed against named baselines, measured side by side.

Run: ``pytest benchmarks/bench_solvers.py --benchmark-group-by=group``.
pytest-benchmark prints, per group, each timing and its ratio to the
fastest entry of the group; every test also checks the answer.
"""

from __future__ import annotations

import numpy as np
import pytest

from knapsack_alloc import allocate
from knapsack_alloc.benchmark import make_instance, objective, python_heap_greedy

PAPER_STEP = make_instance(256)
LARGE_BATCH = make_instance(4096)
INTEGER_COSTS = make_instance(256, per_prompt_costs=True)
RNG = np.random.default_rng(0)
DATASET_RATES = RNG.random(1_000_000)
DATASET_BUDGET = 8_000_000


def run(instance, solver):
    return allocate(
        instance.rates, instance.budget, costs=instance.costs,
        min_rollouts=instance.min_rollouts, max_rollouts=instance.max_rollouts, solver=solver,
    )  # fmt: skip


@pytest.fixture(scope="module")
def textbook_paper_step():
    return run(PAPER_STEP, "textbook")


@pytest.mark.benchmark(group="paper step: 256 prompts, budget 2048, unit costs")
def test_paper_step_textbook_dp(benchmark, textbook_paper_step):
    result = benchmark.pedantic(run, args=(PAPER_STEP, "textbook"), rounds=3, iterations=1)
    assert result.objective == pytest.approx(textbook_paper_step.objective, rel=1e-12)


@pytest.mark.parametrize("solver", ["auto", "greedy", "dp"])
@pytest.mark.benchmark(group="paper step: 256 prompts, budget 2048, unit costs")
def test_paper_step_fast_solvers(benchmark, solver, textbook_paper_step):
    result = benchmark(run, PAPER_STEP, solver)
    assert result.objective >= textbook_paper_step.objective * (1 - 1e-12)


@pytest.mark.benchmark(group="paper step: 256 prompts, budget 2048, unit costs")
def test_paper_step_ortools(benchmark, textbook_paper_step):
    pytest.importorskip("ortools")
    result = benchmark.pedantic(run, args=(PAPER_STEP, "ortools"), rounds=3, iterations=1)
    assert result.objective == pytest.approx(textbook_paper_step.objective, rel=1e-8)


@pytest.mark.benchmark(group="large batch: 4096 prompts, budget 32768, unit costs")
def test_large_batch_python_heap_greedy(benchmark):
    counts = benchmark.pedantic(
        python_heap_greedy, args=(LARGE_BATCH.rates, LARGE_BATCH.budget, 2, 128),
        rounds=5, iterations=1,
    )  # fmt: skip
    assert counts.sum() == LARGE_BATCH.budget


@pytest.mark.benchmark(group="large batch: 4096 prompts, budget 32768, unit costs")
def test_large_batch_greedy(benchmark):
    result = benchmark(run, LARGE_BATCH, "auto")
    reference = python_heap_greedy(LARGE_BATCH.rates, LARGE_BATCH.budget, 2, 128)
    assert result.objective >= objective(LARGE_BATCH, reference) * (1 - 1e-12)


@pytest.mark.benchmark(group="whole dataset: 1e6 prompts, budget 8e6")
def test_dataset_numpy_argsort(benchmark):
    benchmark.pedantic(np.argsort, args=(DATASET_RATES,), rounds=5, iterations=1)


@pytest.mark.benchmark(group="whole dataset: 1e6 prompts, budget 8e6")
def test_dataset_allocate(benchmark):
    result = benchmark.pedantic(
        allocate, args=(DATASET_RATES, DATASET_BUDGET), rounds=5, iterations=1
    )
    assert result.counts.sum() == DATASET_BUDGET and result.status == "optimal"


@pytest.fixture(scope="module")
def textbook_integer_costs():
    return run(INTEGER_COSTS, "textbook")


@pytest.mark.benchmark(group="integer costs: 256 prompts, costs 2..16")
def test_integer_costs_textbook_dp(benchmark, textbook_integer_costs):
    result = benchmark.pedantic(run, args=(INTEGER_COSTS, "textbook"), rounds=3, iterations=1)
    assert result.objective == pytest.approx(textbook_integer_costs.objective, rel=1e-12)


@pytest.mark.parametrize("solver", ["auto", "dp"])
@pytest.mark.benchmark(group="integer costs: 256 prompts, costs 2..16")
def test_integer_costs_exact_solvers(benchmark, solver, textbook_integer_costs):
    result = benchmark(run, INTEGER_COSTS, solver)
    assert result.status == "optimal"
    assert result.objective == pytest.approx(textbook_integer_costs.objective, rel=1e-10)

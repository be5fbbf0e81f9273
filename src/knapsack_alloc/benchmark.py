"""Benchmark instances and baselines shared by ``benchmarks/`` and ``knapsack-alloc bench``.

The instances follow the paper's setting: success rates on a 1/16 grid (the
resolution of a 16-reward window), bounds 2..128, budgets of 8 rollouts per
prompt, and for per-prompt costs integer costs 2..16 per rollout.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.values import GRPO


@dataclass(frozen=True)
class Instance:
    """One allocation problem to time.

    Attributes
    ----------
    name : str
        Short label, e.g. ``"256x2048"``.
    rates : numpy.ndarray
        Success rate per prompt.
    budget : int
        Total budget (rollouts, or cost units when ``costs`` is set).
    costs : numpy.ndarray or None
        Integer cost per rollout of each prompt, None for unit costs.
    min_rollouts, max_rollouts : int
        Bounds per prompt.
    """

    name: str
    rates: NDArray[np.float64]
    budget: int
    costs: NDArray[np.int64] | None = None
    min_rollouts: int = 2
    max_rollouts: int = 128

    @property
    def size(self) -> int:
        """Number of prompts."""
        return int(self.rates.shape[0])


def make_instance(prompts: int, *, per_prompt_costs: bool = False, seed: int = 0) -> Instance:
    """Build an instance of the paper's shape with ``prompts`` prompts and 8 rollouts each.

    Parameters
    ----------
    prompts : int
        Number of prompts.
    per_prompt_costs : bool, default False
        Draw integer costs 2..16 per rollout; the budget is then
        ``8 * mean cost * prompts`` cost units.
    seed : int, default 0
        Seed of the random rates (and costs).

    Returns
    -------
    Instance
    """
    rng = np.random.default_rng(seed)
    rates = rng.integers(0, 17, prompts) / 16.0
    if not per_prompt_costs:
        return Instance(f"{prompts}x{8 * prompts}", rates, 8 * prompts)
    costs = rng.integers(2, 17, prompts).astype(np.int64)
    budget = int(8 * costs.mean() * prompts)
    return Instance(f"{prompts}x{budget} (costs)", rates, budget, costs)


def python_heap_greedy(
    rates: NDArray[np.float64], budget: int, min_rollouts: int, max_rollouts: int
) -> NDArray[np.int64]:
    """Plain-Python greedy with :mod:`heapq`: the baseline for the greedy kernel.

    Gives each next rollout to the prompt with the largest marginal gain of
    the paper's value, as a straightforward implementation would.
    """
    counts = np.full(rates.shape[0], min_rollouts, dtype=np.int64)
    p: list[float] = rates.tolist()

    def gain(i: int, n: int) -> float:
        q = 1.0 - p[i]
        return p[i] * q * q * (p[i] ** n * q + q**n * p[i])

    heap = [(-gain(i, min_rollouts), i) for i in range(len(p)) if max_rollouts > min_rollouts]
    heapq.heapify(heap)
    for _ in range(budget - min_rollouts * len(p)):
        _, i = heapq.heappop(heap)
        counts[i] += 1
        if counts[i] < max_rollouts:
            heapq.heappush(heap, (-gain(i, int(counts[i])), i))
    return counts


def objective(instance: Instance, counts: NDArray[np.int64]) -> float:
    """Return the paper's objective of ``counts`` on ``instance``."""
    return float(np.sum(GRPO.value(counts, instance.rates)))

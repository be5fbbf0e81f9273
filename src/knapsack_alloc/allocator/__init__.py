"""The stateful allocator a training loop calls every step.

* :mod:`~.allocator`: :class:`KnapsackAllocator`, the loop: ``plan``, ``update``, ``save``;
* :mod:`~.parameters`: the allocator's parameters and their checks;
* :mod:`~.presets`: the ``"paper"`` and ``"bayes"`` rules and their defaults;
* :mod:`~.prior`: the empirical Beta prior of ``"bayes"``;
* :mod:`~.history`: reward windows per prompt, and :mod:`~.prompt_index` the id to row map;
* :mod:`~.rewards`: how rewards and rollout costs are read;
* :mod:`~.metrics`: what a plan or an update logs;
* :mod:`~.state` and :mod:`~.checkpoint`: the state file, written atomically.
"""

from __future__ import annotations

from knapsack_alloc.allocator.allocator import KnapsackAllocator, StepPlan
from knapsack_alloc.allocator.presets import PRESETS

__all__ = ["PRESETS", "KnapsackAllocator", "StepPlan"]

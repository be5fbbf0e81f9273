"""The stateful allocator a training loop calls every step.

* :mod:`~.allocator`: :class:`KnapsackAllocator`, the loop: ``plan``, ``update``, ``save``;
* :mod:`~.presets`: the ``"paper"`` and ``"bayes"`` rules and their defaults;
* :mod:`~.history`: reward windows per prompt, and :mod:`~.prompt_index` the id to row map;
* :mod:`~.rewards`: how rewards are read; :mod:`~.metrics`: what a plan or update logs;
* :mod:`~.state` and :mod:`~.checkpoint`: the state file, written atomically.
"""

from __future__ import annotations

from knapsack_alloc.allocator.allocator import KnapsackAllocator, StepPlan
from knapsack_alloc.allocator.presets import PRESETS

__all__ = ["PRESETS", "KnapsackAllocator", "StepPlan"]

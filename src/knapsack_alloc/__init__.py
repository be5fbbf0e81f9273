"""knapsack-alloc: exact, fast rollout-budget allocation for RL training of LLMs.

>>> from knapsack_alloc import allocate
>>> allocate([0.1, 0.5, 0.9], budget=24).counts.tolist()
[15, 7, 2]

Public names are imported on first use, so ``import knapsack_alloc`` stays
cheap (numba, SciPy and OR-Tools load only when a solver needs them).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("knapsack-alloc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_EXPORTS = {
    "allocate": "knapsack_alloc.engine",
    "certify": "knapsack_alloc.certificates",
    "Certificate": "knapsack_alloc.certificates",
    "AllocationResult": "knapsack_alloc.result",
    "BetaPosterior": "knapsack_alloc.values",
    "ValueModel": "knapsack_alloc.values",
    "NonzeroGradientValue": "knapsack_alloc.values",
    "CallableValue": "knapsack_alloc.values",
    "GRPO": "knapsack_alloc.values",
    "NONZERO": "knapsack_alloc.values",
    "KnapsackAllocator": "knapsack_alloc.allocator",
    "StepPlan": "knapsack_alloc.allocator",
    "expand_counts": "knapsack_alloc.batching",
    "balance": "knapsack_alloc.batching",
    "Partition": "knapsack_alloc.batching",
    "KnapsackAllocError": "knapsack_alloc.exceptions",
    "InvalidArgumentError": "knapsack_alloc.exceptions",
    "InvalidArgumentTypeError": "knapsack_alloc.exceptions",
    "CheckpointError": "knapsack_alloc.exceptions",
    "MissingDependencyError": "knapsack_alloc.exceptions",
    "SolverError": "knapsack_alloc.exceptions",
    "KernelCacheWarning": "knapsack_alloc.exceptions",
    "IgnoredArgumentWarning": "knapsack_alloc.exceptions",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from knapsack_alloc.allocator import KnapsackAllocator as KnapsackAllocator
    from knapsack_alloc.allocator import StepPlan as StepPlan
    from knapsack_alloc.batching import Partition as Partition
    from knapsack_alloc.batching import balance as balance
    from knapsack_alloc.batching import expand_counts as expand_counts
    from knapsack_alloc.certificates import Certificate as Certificate
    from knapsack_alloc.certificates import certify as certify
    from knapsack_alloc.engine import allocate as allocate
    from knapsack_alloc.exceptions import CheckpointError as CheckpointError
    from knapsack_alloc.exceptions import IgnoredArgumentWarning as IgnoredArgumentWarning
    from knapsack_alloc.exceptions import InvalidArgumentError as InvalidArgumentError
    from knapsack_alloc.exceptions import InvalidArgumentTypeError as InvalidArgumentTypeError
    from knapsack_alloc.exceptions import KernelCacheWarning as KernelCacheWarning
    from knapsack_alloc.exceptions import KnapsackAllocError as KnapsackAllocError
    from knapsack_alloc.exceptions import MissingDependencyError as MissingDependencyError
    from knapsack_alloc.exceptions import SolverError as SolverError
    from knapsack_alloc.result import AllocationResult as AllocationResult
    from knapsack_alloc.values import GRPO as GRPO
    from knapsack_alloc.values import NONZERO as NONZERO
    from knapsack_alloc.values import BetaPosterior as BetaPosterior
    from knapsack_alloc.values import CallableValue as CallableValue
    from knapsack_alloc.values import NonzeroGradientValue as NonzeroGradientValue
    from knapsack_alloc.values import ValueModel as ValueModel


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'knapsack_alloc' has no attribute {name!r}")
    attribute = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = attribute
    return attribute


def __dir__() -> list[str]:
    return sorted(__all__)

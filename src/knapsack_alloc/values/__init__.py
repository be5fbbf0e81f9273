"""Value models: what ``N`` rollouts of a prompt are worth to training.

* :mod:`~.base`: :class:`ValueModel`, the interface a custom model implements;
* :mod:`~.nonzero`: the built-in models :data:`GRPO` and :data:`NONZERO`;
* :mod:`~.function`: :class:`CallableValue`, a vectorised ``value(N, p)``;
* :mod:`~.step_group`: :class:`StepGroupValue`, a group that already holds rollouts;
* :mod:`~.posterior`: :class:`BetaPosterior`, beliefs about success rates;
* :mod:`~.registry`: the models by name and how ``value=`` is read;
* :mod:`~.gains` and :mod:`~.kernels`: the marginal gains the solvers read.
"""

from __future__ import annotations

from knapsack_alloc.values.base import Estimates, ValueModel, check_estimates
from knapsack_alloc.values.function import CallableValue
from knapsack_alloc.values.nonzero import GRPO, NONZERO, NonzeroGradientValue
from knapsack_alloc.values.posterior import BetaPosterior
from knapsack_alloc.values.registry import BUILT_IN, ValueArgument, ValueName, resolve_value
from knapsack_alloc.values.step_group import StepGroupValue

__all__ = [
    "BUILT_IN",
    "GRPO",
    "NONZERO",
    "BetaPosterior",
    "CallableValue",
    "Estimates",
    "NonzeroGradientValue",
    "StepGroupValue",
    "ValueArgument",
    "ValueModel",
    "ValueName",
    "check_estimates",
    "resolve_value",
]

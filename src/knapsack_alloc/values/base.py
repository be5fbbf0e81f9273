"""The value-model interface: what ``N`` rollouts of a prompt are worth.

A value model maps a number of rollouts ``N`` and a belief about a prompt's
success probability ``p`` (point estimates or a
:class:`~knapsack_alloc.BetaPosterior`) to a value. The solvers read only
the marginal gains ``Value(N + 1) - Value(N)``; see
:mod:`knapsack_alloc.values.gains` for how they get them. The maths is in
``docs/model.md``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import probabilities
from knapsack_alloc.values.gains import GainSource, tabulate
from knapsack_alloc.values.posterior import BetaPosterior

Estimates = NDArray[np.float64] | BetaPosterior


def check_estimates(success_rates: Any) -> Estimates:
    """Validate success rates in ``[0, 1]`` (or pass a :class:`BetaPosterior` through).

    Parameters
    ----------
    success_rates : array_like or BetaPosterior
        One success probability per prompt, or beliefs about them.

    Returns
    -------
    numpy.ndarray of float64 or BetaPosterior
    """
    if isinstance(success_rates, BetaPosterior):
        return success_rates
    return probabilities("success_rates", success_rates)


class ValueModel(ABC):
    """What ``N`` rollouts of a prompt are worth; subclass it to plug in your own model.

    Implement :meth:`value`, and :meth:`gain` too if you have a formula for
    the marginal gain that is more precise or faster than a difference of
    values. The value must not decrease as rollouts are added. A plain
    vectorised function ``value(N, p)`` also works (see
    :class:`~knapsack_alloc.CallableValue`).

    Attributes
    ----------
    name : str
        Name shown in results (default ``"custom"``).

    Examples
    --------
    >>> import numpy as np
    >>> from knapsack_alloc import ValueModel, allocate
    >>> class AnySuccess(ValueModel):
    ...     name = "any-success"
    ...
    ...     def value(self, counts, estimates):
    ...         return 1.0 - (1.0 - estimates) ** counts  # P(at least one success)
    >>> allocate([0.05, 0.5], budget=10, value=AnySuccess()).counts.tolist()
    [6, 4]
    """

    name: str = "custom"

    @abstractmethod
    def value(self, counts: NDArray[np.int64], estimates: Estimates) -> NDArray[np.float64]:
        """Value of ``counts[i]`` rollouts of prompt ``i``.

        Parameters
        ----------
        counts : numpy.ndarray of int64
            Rollouts per prompt, shape ``(n,)``.
        estimates : numpy.ndarray of float64 or BetaPosterior
            Success probabilities of the ``n`` prompts, or beliefs about them.

        Returns
        -------
        numpy.ndarray of float64
            One value per prompt, shape ``(n,)``.
        """

    def gain(self, counts: NDArray[np.int64], estimates: Estimates) -> NDArray[np.float64]:
        """Marginal gain ``Value(counts[i] + 1) - Value(counts[i])`` of each prompt.

        Parameters and returns as in :meth:`value`. The default is the
        difference of two values; override it when a direct formula avoids
        the cancellation.
        """
        gains: NDArray[np.float64] = self.value(counts + 1, estimates) - self.value(
            counts, estimates
        )
        return gains

    def _gains(
        self, estimates: Estimates, lower: NDArray[np.int64], span: NDArray[np.int64]
    ) -> GainSource:
        """Gains of each prompt from ``lower`` to ``lower + span`` rollouts, for the solvers.

        Tabulated from :meth:`value` or :meth:`gain`; the built-in models
        give a recurrence instead.
        """
        return tabulate(self, estimates, lower, span)

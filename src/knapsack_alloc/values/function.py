"""A vectorised function ``value(N, p)`` as a value model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from knapsack_alloc.exceptions import InvalidArgumentError, InvalidArgumentTypeError
from knapsack_alloc.values.base import Estimates, ValueModel
from knapsack_alloc.values.gains import GainSource, value_differences
from knapsack_alloc.values.posterior import BetaPosterior

ValueFunction = Callable[[NDArray[np.int64], NDArray[np.float64]], ArrayLike]


class CallableValue(ValueModel):
    """Adapt a vectorised function ``value(N, p)`` to a value model.

    The function receives an int64 array of rollout counts and a float64
    array of success rates of the same shape and returns values of that
    shape. It must not decrease in ``N``. Only point success rates are
    supported (no :class:`BetaPosterior`).

    Parameters
    ----------
    function : callable
        ``value(N, p) -> array``.
    name : str, optional
        Name shown in results; defaults to the function's ``__name__``.
    """

    def __init__(self, function: ValueFunction, name: str | None = None) -> None:
        if not callable(function):
            raise InvalidArgumentTypeError(
                f"value must be callable, got {type(function).__name__}."
            )
        self.function = function
        self.name = name or str(getattr(function, "__name__", "callable"))

    def __repr__(self) -> str:
        return f"CallableValue({self.name!r})"

    def value(self, counts: NDArray[np.int64], estimates: Estimates) -> NDArray[np.float64]:
        """See :meth:`ValueModel.value`."""
        rates = self._rates(estimates)
        counts = np.asarray(counts, dtype=np.int64)
        return self._evaluate(counts, np.broadcast_to(rates, counts.shape))

    def _gains(
        self, estimates: Estimates, lower: NDArray[np.int64], span: NDArray[np.int64]
    ) -> GainSource:
        """Tabulate ``value(N + 1, p) - value(N, p)`` with one call of the function."""
        rates = self._rates(estimates)
        width = int(span.max(initial=0))
        grid = lower[:, None] + np.minimum(np.arange(width + 1), span[:, None])
        values = self._evaluate(grid, np.broadcast_to(rates[:, None], grid.shape))
        return GainSource.tabulated(value_differences(self.name, values, lower))

    def _rates(self, estimates: Estimates) -> NDArray[np.float64]:
        if isinstance(estimates, BetaPosterior):
            raise InvalidArgumentTypeError(
                f"value {self.name!r} is a callable of point success rates and cannot take a "
                "BetaPosterior; pass success rates as an array, or use value='grpo' or 'nonzero'."
            )
        return estimates

    def _evaluate(self, counts: NDArray[np.int64], rates: Any) -> NDArray[np.float64]:
        result = np.asarray(self.function(counts, rates), dtype=np.float64)
        if result.shape != counts.shape:
            raise InvalidArgumentError(
                f"value {self.name!r} returned shape {result.shape} for inputs of shape "
                f"{counts.shape}; it must be vectorised (one value per (N, p) pair)."
            )
        if not np.isfinite(result).all():
            raise InvalidArgumentError(f"value {self.name!r} returned NaN or inf values.")
        return result

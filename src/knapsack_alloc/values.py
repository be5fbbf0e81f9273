"""Value models: what ``N`` rollouts of a prompt are worth to training.

A value model maps a number of rollouts ``N`` and a belief about a prompt's
success probability ``p`` (a point estimate or a :class:`BetaPosterior`) to
a value. The engine only needs the marginal gains ``Value(N + 1) - Value(N)``
(see :class:`knapsack_alloc._problem.GainSource`); the maths is in
``docs/model.md``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._problem import EMPTY_TABLE, EMPTY_VECTOR, GainSource
from knapsack_alloc._validation import InvalidArgumentError, real_array
from knapsack_alloc.posterior import BetaPosterior

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
    if (
        isinstance(success_rates, np.ndarray)
        and success_rates.dtype == np.float64
        and success_rates.ndim == 1
        and success_rates.flags.c_contiguous
        and (success_rates.size == 0 or 0.0 <= success_rates.min() <= success_rates.max() <= 1.0)
    ):
        return success_rates  # fast path: already valid (NaN fails the comparisons)
    rates = real_array("success_rates", success_rates)
    outside = (rates < 0.0) | (rates > 1.0)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise InvalidArgumentError(
            f"success_rates[{i}] == {float(rates[i])!r}, must be in [0, 1] (a probability)."
        )
    return rates


class ValueModel(ABC):
    """Interface of a value model.

    Subclass it to plug in a custom model; a plain vectorised callable
    ``value(N, p)`` also works (see :class:`CallableValue`).
    """

    name: str

    @abstractmethod
    def value(self, counts: NDArray[np.int64], estimates: Estimates) -> NDArray[np.float64]:
        """Value of ``counts[i]`` rollouts of prompt ``i``.

        Parameters
        ----------
        counts : numpy.ndarray of int64
            Rollouts per prompt.
        estimates : numpy.ndarray or BetaPosterior
            Success probabilities, or beliefs about them.

        Returns
        -------
        numpy.ndarray of float64
            One value per prompt.
        """

    @abstractmethod
    def gains(
        self, estimates: Estimates, lower: NDArray[np.int64], span: NDArray[np.int64]
    ) -> GainSource:
        """Marginal gains of each prompt from ``lower`` to ``lower + span`` rollouts."""


class NonzeroGradientValue(ValueModel):
    """``Value(N, p) = p**p_power * (1 - p)**q_power * P_nz(N, p)``.

    ``P_nz(N, p) = 1 - p**N - (1 - p)**N`` is the probability that ``N``
    rollouts contain both a success and a failure, i.e. that GRPO gets a
    non-zero gradient from the prompt (0 for ``N <= 1``). The weight says what
    such a gradient is worth: ``p * (1 - p)**2`` is the paper's *InfoGain*
    (:data:`GRPO`), a weight of 1 counts prompts with a gradient
    (:data:`NONZERO`).

    Under a :class:`BetaPosterior` the value is the exact posterior
    expectation, a sum of Beta-function ratios.

    Parameters
    ----------
    name : str
        Name shown in results.
    p_power, q_power : int
        Exponents of ``p`` and ``1 - p`` in the weight.
    """

    def __init__(self, name: str, p_power: int, q_power: int) -> None:
        if p_power < 0 or q_power < 0:
            raise InvalidArgumentError(
                f"p_power == {p_power}, q_power == {q_power}: both must be >= 0."
            )
        self.name = name
        self.p_power = int(p_power)
        self.q_power = int(q_power)

    def __repr__(self) -> str:
        return (
            f"NonzeroGradientValue({self.name!r}, p_power={self.p_power}, "
            f"q_power={self.q_power})"
        )

    def value(self, counts: NDArray[np.int64], estimates: Estimates) -> NDArray[np.float64]:
        """See :meth:`ValueModel.value`."""
        j, k = self.p_power, self.q_power
        if not isinstance(estimates, BetaPosterior):
            from knapsack_alloc._value_kernels import point_values

            return point_values(np.asarray(counts, dtype=np.int64), estimates, j, k)
        n = np.asarray(counts, dtype=np.float64)
        weight, all_succeed, all_fail = _beta_moments(estimates, (j, k), (n + j, k), (j, n + k))
        return np.where(n > 1, weight - all_succeed - all_fail, 0.0)

    def gains(
        self, estimates: Estimates, lower: NDArray[np.int64], span: NDArray[np.int64]
    ) -> GainSource:
        """See :meth:`ValueModel.gains`.

        For ``N >= 1`` the gain is ``E[p**(N+j) q**(k+1)] + E[p**(j+1) q**(N+k)]``;
        each term shrinks by a constant factor ``p`` (resp. ``q``) per rollout,
        or under a Beta posterior by ``(a + j + N) / (a + b + j + k + 1 + N)``.
        """
        j, k = self.p_power, self.q_power
        if not isinstance(estimates, BetaPosterior):
            from knapsack_alloc._value_kernels import point_gain_terms

            term_a, term_b, q = point_gain_terms(estimates, lower, j, k)
            return GainSource(term_a, term_b, estimates, q, EMPTY_VECTOR, 0.0, EMPTY_TABLE)
        start = np.maximum(lower, 1).astype(np.float64)
        a, b = estimates.alpha, estimates.beta
        term_a, term_b = _beta_moments(estimates, (start + j, k + 1), (j + 1, start + k))
        return GainSource(
            term_a=term_a,
            term_b=term_b,
            a_num=a + j,
            b_num=b + k,
            den=a + b + (j + k + 1),
            step=1.0,
            table=EMPTY_TABLE,
        )


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

    def __init__(self, function: Callable[..., object], name: str | None = None) -> None:
        if not callable(function):
            raise TypeError(f"value must be callable, got {type(function).__name__}.")
        self.function = function
        self.name = name or str(getattr(function, "__name__", "callable"))

    def __repr__(self) -> str:
        return f"CallableValue({self.name!r})"

    def value(self, counts: NDArray[np.int64], estimates: Estimates) -> NDArray[np.float64]:
        """See :meth:`ValueModel.value`."""
        rates = self._rates(estimates)
        counts = np.asarray(counts, dtype=np.int64)
        return self._evaluate(counts, np.broadcast_to(rates, counts.shape))

    def gains(
        self, estimates: Estimates, lower: NDArray[np.int64], span: NDArray[np.int64]
    ) -> GainSource:
        """Tabulate ``value(N + 1, p) - value(N, p)``; tiny negative noise is cut to 0."""
        rates = self._rates(estimates)
        width = int(span.max(initial=0))
        grid = lower[:, None] + np.minimum(np.arange(width + 1), span[:, None])
        values = self._evaluate(grid, np.broadcast_to(rates[:, None], grid.shape))
        table = np.ascontiguousarray(np.diff(values, axis=1))
        tolerance = 1e-12 * max(float(np.abs(values).max(initial=0.0)), 1e-300)
        decreasing = table < -tolerance
        if decreasing.any():
            i, step = (int(v) for v in np.argwhere(decreasing)[0])
            raise InvalidArgumentError(
                f"value {self.name!r} decreases for prompt {i} from N={grid[i, step]} to "
                f"N={grid[i, step] + 1} ({values[i, step]!r} -> {values[i, step + 1]!r}); "
                "value models must not decrease as rollouts are added."
            )
        np.maximum(table, 0.0, out=table)
        return GainSource.from_table(table)

    def _rates(self, estimates: Estimates) -> NDArray[np.float64]:
        if isinstance(estimates, BetaPosterior):
            raise TypeError(
                f"value {self.name!r} is a callable of point success rates and cannot take a "
                "BetaPosterior; pass success rates as an array, or use value='grpo' or 'nonzero'."
            )
        return estimates

    def _evaluate(
        self, counts: NDArray[np.int64], rates: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        result = np.asarray(self.function(counts, rates), dtype=np.float64)
        if result.shape != counts.shape:
            raise InvalidArgumentError(
                f"value {self.name!r} returned shape {result.shape} for inputs of shape "
                f"{counts.shape}; it must be vectorised (one value per (N, p) pair)."
            )
        if not np.isfinite(result).all():
            raise InvalidArgumentError(f"value {self.name!r} returned NaN or inf values.")
        return result


GRPO = NonzeroGradientValue("grpo", p_power=1, q_power=2)
"""The paper's value: ``P_nz(N, p) * p * (1 - p)**2``."""

NONZERO = NonzeroGradientValue("nonzero", p_power=0, q_power=0)
"""Probability of a non-zero gradient, ``P_nz(N, p)``; sums to the expected
number of prompts with a gradient."""

BUILT_IN: dict[str, ValueModel] = {"grpo": GRPO, "nonzero": NONZERO}


def resolve_value(value: object) -> ValueModel:
    """Turn the ``value`` argument of :func:`allocate` into a value model.

    Parameters
    ----------
    value : str, ValueModel or callable
        A built-in name, a model object, or a vectorised ``value(N, p)``.

    Returns
    -------
    ValueModel
    """
    if isinstance(value, ValueModel):
        return value
    if isinstance(value, str):
        if value not in BUILT_IN:
            listed = ", ".join(repr(name) for name in sorted(BUILT_IN))
            raise InvalidArgumentError(
                f"The 'value' parameter must be a str among {{{listed}}}, a ValueModel or a "
                f"callable value(N, p). Got {value!r} instead."
            )
        return BUILT_IN[value]
    if callable(value):
        return CallableValue(value)
    raise TypeError(
        "The 'value' parameter must be a str among {'grpo', 'nonzero'}, a ValueModel or a "
        f"callable value(N, p). Got {type(value).__name__} instead."
    )


def _beta_moments(
    posterior: BetaPosterior, *exponents: tuple[Any, Any]
) -> list[NDArray[np.float64]]:
    """``E[p**x (1 - p)**y]`` under ``posterior`` for each ``(x, y)`` in ``exponents``.

    ``E[p**x (1-p)**y] = B(a + x, b + y) / B(a, b)``; all log-Gamma values
    come from one call, whose fixed cost dominates at batch sizes.
    """
    from scipy.special import gammaln

    a, b = posterior.alpha, posterior.beta
    size = a.shape[0]
    columns = [a, b, a + b]
    for x, y in exponents:
        columns += [a + x, b + y, a + b + x + y]
    arguments = np.empty((len(columns), size))
    for row, column in enumerate(columns):
        arguments[row] = column
    logs = gammaln(arguments)
    log_norm = logs[0] + logs[1] - logs[2]
    return [
        np.exp(logs[3 * m + 3] + logs[3 * m + 4] - logs[3 * m + 5] - log_norm)
        for m in range(len(exponents))
    ]

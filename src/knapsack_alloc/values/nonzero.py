"""The built-in value models: the weighted probability of a GRPO gradient."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import integer_scalar
from knapsack_alloc.values.base import Estimates, ValueModel
from knapsack_alloc.values.gains import GainSource
from knapsack_alloc.values.posterior import BetaPosterior, exact_exponents


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
        Exponents of ``p`` and ``1 - p`` in the weight, ``>= 0``.
    """

    def __init__(self, name: str, p_power: int, q_power: int) -> None:
        self.name = name
        self.p_power = integer_scalar("p_power", p_power)
        self.q_power = integer_scalar("q_power", q_power)

    def __repr__(self) -> str:
        return (
            f"NonzeroGradientValue({self.name!r}, p_power={self.p_power}, q_power={self.q_power})"
        )

    def value(self, counts: NDArray[np.int64], estimates: Estimates) -> NDArray[np.float64]:
        """See :meth:`ValueModel.value`."""
        j, k = self.p_power, self.q_power
        if not isinstance(estimates, BetaPosterior):
            from knapsack_alloc.values.kernels import point_values

            return point_values(np.asarray(counts, dtype=np.int64), estimates, j, k)
        n = np.ascontiguousarray(counts, dtype=np.int64)
        if exact_exponents(n, n.shape[0]) is not None:
            from knapsack_alloc.values.kernels import beta_values

            return beta_values(n, estimates.alpha, estimates.beta, j, k)
        # Beyond the exact range: E[w] - E[w p**N] - E[w q**N] from log-Gamma values. The
        # same object for equal exponents lets moments() share them.
        x = n.astype(np.float64)
        more_p = x + j if j else x
        more_q = more_p if k == j else (x + k if k else x)
        weight, all_succeed, all_fail = estimates.moments((j, k), (more_p, k), (j, more_q))
        return np.where(x > 1, weight - all_succeed - all_fail, 0.0)

    def _gains(
        self, estimates: Estimates, lower: NDArray[np.int64], span: NDArray[np.int64]
    ) -> GainSource:
        """For ``N >= 1`` the gain is ``E[p**(N+j) q**(k+1)] + E[p**(j+1) q**(N+k)]``.

        Each term shrinks by a constant factor ``p`` (resp. ``q``) per rollout,
        or under a Beta posterior by ``(a + j + N) / (a + b + j + k + 1 + N)``.
        """
        j, k = self.p_power, self.q_power
        if not isinstance(estimates, BetaPosterior):
            from knapsack_alloc.values.kernels import point_gain_terms

            term_a, term_b, q = point_gain_terms(estimates, lower, j, k)
            return GainSource.geometric(term_a, term_b, estimates, q)
        start = np.maximum(lower, 1).astype(np.int64)
        a, b = estimates.alpha, estimates.beta
        term_a, term_b = estimates.moments((start + j, k + 1), (j + 1, start + k))
        return GainSource.beta(term_a, term_b, a + j, b + k, a + b + (j + k + 1))


GRPO = NonzeroGradientValue("grpo", p_power=1, q_power=2)
"""The paper's value: ``P_nz(N, p) * p * (1 - p)**2``."""

NONZERO = NonzeroGradientValue("nonzero", p_power=0, q_power=0)
"""Probability of a non-zero gradient, ``P_nz(N, p)``; sums to the expected
number of prompts with a gradient."""

"""Beta posteriors over each prompt's success probability."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from knapsack_alloc._validation import InvalidArgumentError, real_array, real_scalar


class BetaPosterior:
    """Per-prompt ``Beta(prior_a + successes, prior_b + failures)`` beliefs.

    Pass one to :func:`knapsack_alloc.allocate` instead of point success
    rates: built-in value models then maximise the exact posterior expected
    value.

    Parameters
    ----------
    successes, failures : array_like
        Non-negative counts per prompt (fractional counts, e.g. discounted
        ones, are allowed).
    prior : tuple of float, default (1.0, 1.0)
        ``(a, b) > 0`` of the Beta prior; ``(1, 1)`` is uniform.

    Examples
    --------
    >>> from knapsack_alloc import BetaPosterior, allocate
    >>> beliefs = BetaPosterior([0, 3, 8], [8, 5, 0])
    >>> allocate(beliefs, budget=24, min_rollouts=2, max_rollouts=16).counts.sum()
    np.int64(24)
    """

    __slots__ = ("alpha", "beta", "failures", "prior", "successes")

    def __init__(
        self, successes: ArrayLike, failures: ArrayLike, prior: tuple[float, float] = (1.0, 1.0)
    ) -> None:
        self.successes = _counts("successes", successes)
        self.failures = _counts("failures", failures, length=self.successes.shape[0])
        self.prior = _prior(prior)
        self.alpha: NDArray[np.float64] = self.successes + self.prior[0]
        self.beta: NDArray[np.float64] = self.failures + self.prior[1]

    def __len__(self) -> int:
        return int(self.successes.shape[0])

    def __repr__(self) -> str:
        return f"BetaPosterior(n={len(self)}, prior={self.prior})"

    @property
    def mean(self) -> NDArray[np.float64]:
        """Posterior mean success probability of each prompt."""
        return self.alpha / (self.alpha + self.beta)


def _counts(name: str, value: ArrayLike, length: int | None = None) -> NDArray[np.float64]:
    counts = real_array(name, value, length=length)
    negative = counts < 0
    if negative.any():
        index = int(np.flatnonzero(negative)[0])
        raise InvalidArgumentError(f"{name}[{index}] == {float(counts[index])!r}, must be >= 0.")
    return counts


def _prior(prior: Any) -> tuple[float, float]:
    if not isinstance(prior, (tuple, list)) or len(prior) != 2:
        raise TypeError(f"prior must be a pair (a, b) of positive numbers, got {prior!r}.")
    a = real_scalar("prior[0]", prior[0])
    b = real_scalar("prior[1]", prior[1])
    if a <= 0 or b <= 0:
        raise InvalidArgumentError(f"prior == {tuple(prior)!r}, both entries must be > 0.")
    return (a, b)

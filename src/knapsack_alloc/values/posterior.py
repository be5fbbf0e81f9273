"""Beta posteriors over each prompt's success probability."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from knapsack_alloc._validation import check_prior, non_negative_array

Exponent = float | NDArray[np.floating[Any]] | NDArray[np.integer[Any]]


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
        self.successes = non_negative_array("successes", successes)
        self.failures = non_negative_array("failures", failures, length=self.successes.shape[0])
        self.prior = check_prior(prior)
        self.alpha: NDArray[np.float64] = self.successes + self.prior[0]
        self.beta: NDArray[np.float64] = self.failures + self.prior[1]

    @classmethod
    def _from_checked(
        cls,
        successes: NDArray[np.integer[Any]],
        failures: NDArray[np.integer[Any]],
        prior: tuple[float, float],
    ) -> BetaPosterior:
        """Beliefs from integer counts and a prior already checked (no checks: internal use)."""
        beliefs = cls.__new__(cls)
        beliefs.successes = successes.astype(np.float64)
        beliefs.failures = failures.astype(np.float64)
        beliefs.prior = prior
        beliefs.alpha = beliefs.successes + prior[0]
        beliefs.beta = beliefs.failures + prior[1]
        return beliefs

    def __len__(self) -> int:
        return int(self.successes.shape[0])

    def __repr__(self) -> str:
        return f"BetaPosterior(n={len(self)}, prior={self.prior})"

    @property
    def mean(self) -> NDArray[np.float64]:
        """Posterior mean success probability of each prompt."""
        return self.alpha / (self.alpha + self.beta)

    def moments(self, *exponents: tuple[Exponent, Exponent]) -> list[NDArray[np.float64]]:
        """Return ``E[p**x * (1 - p)**y]`` of every prompt for each ``(x, y)`` in ``exponents``.

        Parameters
        ----------
        *exponents : tuple of (float or numpy.ndarray, float or numpy.ndarray)
            Non-negative exponents, scalars or one per prompt.

        Returns
        -------
        list of numpy.ndarray of float64
            One array per pair, ``B(a + x, b + y) / B(a, b)``.

        Notes
        -----
        Integer exponents up to :data:`EXACT_EXPONENT` (Python or NumPy
        integers, or integer arrays) are computed as products of ratios, exact
        to a few ulps per ratio for any counts. Others go through log-Gamma
        values, which lose digits for large counts (about 1e-7 relative at
        1e4 observed rewards); every log-Gamma value comes from one call, and
        arguments repeated between the pairs (a zero exponent, or the same
        array object twice) are computed once.
        """
        size = self.alpha.shape[0]
        exact = [(exact_exponents(x, size), exact_exponents(y, size)) for x, y in exponents]
        if all(x is not None and y is not None for x, y in exact):
            from knapsack_alloc.values.kernels import beta_moments

            return [beta_moments(self.alpha, self.beta, x, y) for x, y in exact]  # type: ignore[arg-type]
        from scipy.special import gammaln

        a, b = self.alpha, self.beta
        total = a + b
        # Each log-Gamma argument once, keyed by what it sums; rows 0-2 normalise.
        arguments: list[Any] = [a, b, total]
        where: dict[tuple[Any, ...], int] = {("a",): 0, ("b",): 1, ("ab",): 2}

        def column(key: tuple[Any, ...], base: NDArray[np.float64], *offsets: Exponent) -> int:
            row = where.get(key)
            if row is None:
                row = where[key] = len(arguments)
                for offset in offsets:
                    if isinstance(offset, np.ndarray) or offset != 0:
                        base = base + offset
                arguments.append(base)
            return row

        terms: list[tuple[int, int, int] | None] = []
        for x, y in exponents:
            kx, ky = _key(x), _key(y)
            if kx == ky == ():
                terms.append(None)  # E[1] = 1 exactly
                continue
            both = ("ab", *sorted((kx, ky)))
            terms.append((column(("a", *kx), a, x), column(("b", *ky), b, y),
                          column(both, total, x, y)))  # fmt: skip
        logs = gammaln(np.stack(arguments))
        log_norm = logs[0] + logs[1] - logs[2]
        return [
            np.ones(a.shape[0]) if term is None
            else np.exp(logs[term[0]] + logs[term[1]] - logs[term[2]] - log_norm)
            for term in terms
        ]  # fmt: skip


#: The largest integer exponent :meth:`BetaPosterior.moments` computes as a product.
EXACT_EXPONENT = 4096


def exact_exponents(x: Exponent | int, size: int) -> NDArray[np.int64] | None:
    """``x`` as one int64 per prompt if it is an integer type in ``[0, EXACT_EXPONENT]``, else None.

    These are the exponents :meth:`BetaPosterior.moments` and the built-in
    values compute exactly, as products of ratios.
    """
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "iu" or not x.size:
            return None
        if x.min() < 0 or x.max() > EXACT_EXPONENT:
            return None
        return np.broadcast_to(x.astype(np.int64, copy=False), (size,))
    if isinstance(x, (int, np.integer)) and 0 <= x <= EXACT_EXPONENT:
        return np.full(size, x, dtype=np.int64)
    return None


def _key(x: Exponent) -> tuple[Any, ...]:
    """Identify an exponent: by its value if a scalar, as an object if an array (() for 0)."""
    # isinstance, not np.ndim: this runs a dozen times per plan, and np.ndim is slow on scalars.
    if isinstance(x, np.ndarray):
        return (("array", id(x)),)
    return () if x == 0 else (("scalar", float(x)),)

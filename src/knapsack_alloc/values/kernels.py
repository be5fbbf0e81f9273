"""Numba kernels for the built-in value models, at point success rates and under Beta posteriors."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._jit import kernel


@kernel
def power(x: float, n: int) -> float:
    """``x**n`` for small ``n >= 0`` by binary exponentiation (cheaper than ``pow``)."""
    result = 1.0
    while n > 0:
        if n & 1:
            result *= x
        x *= x
        n >>= 1
    return result


# Below this min(p, 1 - p), 1 - p**N - (1 - p)**N loses digits to cancellation.
_CANCELLATION = 1e-3


@kernel
def _nonzero_probability(x: float, n: int) -> float:
    """``1 - x**n - (1 - x)**n`` to full relative precision (0 for ``n <= 1``)."""
    if n <= 1:
        return 0.0
    small = min(x, 1.0 - x)  # exact: 1 - x has no rounding error when x >= 0.5
    if small >= _CANCELLATION:
        return 1.0 - x**n - (1.0 - x) ** n
    # 1 - (1 - s)**n = -expm1(n log1p(-s)) keeps the digits the subtraction would lose.
    return -math.expm1(n * math.log1p(-small)) - power(small, n)


@kernel
def point_values(
    counts: NDArray[np.int64], p: NDArray[np.float64], p_power: int, q_power: int
) -> NDArray[np.float64]:
    """``p**p_power * q**q_power * (1 - p**N - q**N)`` per prompt (0 when ``N <= 1``)."""
    out = np.empty(p.shape[0], dtype=np.float64)
    for i in range(p.shape[0]):
        n = counts[i]
        if n == 0:
            out[i] = 0.0
        else:
            x = p[i]
            out[i] = power(x, p_power) * power(1.0 - x, q_power) * _nonzero_probability(x, n)
    return out


@kernel
def point_gain_terms(
    p: NDArray[np.float64], lower: NDArray[np.int64], p_power: int, q_power: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Gain terms at ``N0 = max(lower, 1)``: ``p**(N0+j) q**(k+1)``, ``p**(j+1) q**(N0+k)``.

    Also returns ``q = 1 - p``, the ratio of the second term.
    """
    size = p.shape[0]
    term_a = np.empty(size, dtype=np.float64)
    term_b = np.empty(size, dtype=np.float64)
    q = np.empty(size, dtype=np.float64)
    for i in range(size):
        x = p[i]
        y = 1.0 - x
        start = max(lower[i], 1)
        term_a[i] = power(x, start + p_power) * power(y, q_power + 1)
        term_b[i] = power(x, p_power + 1) * power(y, start + q_power)
        q[i] = y
    return term_a, term_b, q


@kernel
def _beta_moment(a: float, b: float, x: int, y: int) -> float:
    """``E[p**x (1 - p)**y]`` under ``Beta(a, b)`` for integers ``x, y >= 0``.

    ``B(a + x, b + y) / B(a, b)`` as a product of ``x + y`` ratios, each at most
    1: exact to a few ulps per ratio whatever the size of ``a`` and ``b``,
    where differences of log-Gamma values lose digits.
    """
    result = 1.0
    total = a + b
    for t in range(x):
        result *= (a + t) / (total + t)
    for t in range(y):
        result *= (b + t) / (total + x + t)
    return result


@kernel
def beta_moments(
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    x: NDArray[np.int64],
    y: NDArray[np.int64],
) -> NDArray[np.float64]:
    """``E[p**x[i] (1 - p)**y[i]]`` under ``Beta(alpha[i], beta[i])`` per prompt."""
    out = np.empty(alpha.shape[0], dtype=np.float64)
    for i in range(alpha.shape[0]):
        out[i] = _beta_moment(alpha[i], beta[i], x[i], y[i])
    return out


@kernel
def beta_values(
    counts: NDArray[np.int64],
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    p_power: int,
    q_power: int,
) -> NDArray[np.float64]:
    """``E[p**j q**k (1 - p**N - q**N)]`` under each prompt's Beta posterior.

    The sum of the gains from 1 to ``N`` rollouts, ``E[p**(m+j) q**(k+1)] +
    E[p**(j+1) q**(m+k)]`` for ``m = 1 .. N - 1``, walked with the solvers'
    recurrence: a sum of positive terms, so it keeps full relative precision
    where ``E[w] - E[w p**N] - E[w q**N]`` would cancel (a posterior
    concentrated near 0 or 1).
    """
    out = np.empty(alpha.shape[0], dtype=np.float64)
    for i in range(alpha.shape[0]):
        a = alpha[i]
        b = beta[i]
        term_a = _beta_moment(a, b, p_power + 1, q_power + 1)
        term_b = term_a
        a_num = a + p_power
        b_num = b + q_power
        den = a + b + (p_power + q_power + 1)
        value = 0.0
        for m in range(1, counts[i]):
            value += term_a + term_b
            term_a = term_a * ((a_num + m) / (den + m))
            term_b = term_b * ((b_num + m) / (den + m))
        out[i] = value
    return out

"""Numba kernels for the built-in value models at point success rates."""

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

"""Numba kernels for the built-in value models at point success rates."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._jit import kernel


@kernel
def _power(x: float, n: int) -> float:
    """``x**n`` for small ``n >= 0`` by binary exponentiation (cheaper than ``pow``)."""
    result = 1.0
    while n > 0:
        if n & 1:
            result *= x
        x *= x
        n >>= 1
    return result


@kernel
def point_values(
    counts: NDArray[np.int64], p: NDArray[np.float64], p_power: int, q_power: int
) -> NDArray[np.float64]:
    """``p**p_power * q**q_power * (1 - p**N - q**N)`` per prompt (0 when ``N == 0``)."""
    out = np.empty(p.shape[0], dtype=np.float64)
    for i in range(p.shape[0]):
        n = counts[i]
        if n == 0:
            out[i] = 0.0
        else:
            x = p[i]
            y = 1.0 - x
            out[i] = _power(x, p_power) * _power(y, q_power) * (1.0 - x**n - y**n)
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
        term_a[i] = _power(x, start + p_power) * _power(y, q_power + 1)
        term_b[i] = _power(x, p_power + 1) * _power(y, start + q_power)
        q[i] = y
    return term_a, term_b, q

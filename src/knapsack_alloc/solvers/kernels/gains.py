"""Scalar gain arithmetic shared by every kernel.

A prompt's state is ``(n, a, b)``: it holds ``n`` rollouts, and for gain
recurrences ``a + b`` is the gain of its next rollout (see
:class:`knapsack_alloc.values.gains.GainSource`). Keeping this arithmetic in one
place makes all kernels see bit-identical gains.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._jit import kernel


@kernel
def next_gain(
    i: int, extra: int, n: int, a: float, b: float, table: NDArray[np.float64], use_table: bool
) -> float:
    """Gain of rollout ``n + 1`` of prompt ``i`` holding ``extra`` rollouts above its minimum."""
    if use_table:
        return float(table[i, extra])
    if n == 0:
        return 0.0
    return a + b


@kernel
def advance(
    i: int,
    n: int,
    a: float,
    b: float,
    a_num: NDArray[np.float64],
    b_num: NDArray[np.float64],
    den: NDArray[np.float64],
    step: float,
    use_table: bool,
) -> tuple[float, float]:
    """Recurrence terms after prompt ``i`` goes from ``n`` to ``n + 1`` rollouts."""
    if use_table or n == 0:
        return a, b
    if step == 0.0:
        return a * a_num[i], b * b_num[i]
    return a * ((a_num[i] + n) / (den[i] + n)), b * ((b_num[i] + n) / (den[i] + n))


@kernel
def gain_table(
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
    term_a: NDArray[np.float64],
    term_b: NDArray[np.float64],
    a_num: NDArray[np.float64],
    b_num: NDArray[np.float64],
    den: NDArray[np.float64],
    step: float,
) -> NDArray[np.float64]:
    """Tabulate a gain recurrence: row ``i`` holds gains from ``lower[i]`` on (zero padded)."""
    size = lower.shape[0]
    width = 0
    for i in range(size):
        width = max(width, span[i])
    table = np.zeros((size, width), dtype=np.float64)
    for i in range(size):
        a = term_a[i]
        b = term_b[i]
        for extra in range(span[i]):
            n = lower[i] + extra
            table[i, extra] = next_gain(i, extra, n, a, b, table, False)
            a, b = advance(i, n, a, b, a_num, b_num, den, step, False)
    return table

"""The allocation problem as the solver kernels see it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

EMPTY_TABLE = np.zeros((0, 0), dtype=np.float64)
EMPTY_VECTOR = np.zeros(0, dtype=np.float64)


@dataclass(frozen=True)
class GainSource:
    """Marginal gains ``Value(N + 1) - Value(N)`` of every prompt.

    Built-in value models give a *recurrence*: for ``N >= 1`` the gain is
    ``a(N) + b(N)`` with ``a(N + 1) = a(N) * (a_num + N) / (den + N)`` when
    ``step == 1`` and ``a(N + 1) = a(N) * a_num`` when ``step == 0`` (``den``
    unused), likewise ``b``, started at ``N0 = max(lower, 1)``; the gain
    from 0 to 1 rollout is 0. Every kernel walks the same recurrence, so they all see
    bit-identical gains, and each factor is at most 1, so gains never
    increase with ``N`` (also in floating point).

    Other value models give a dense *table*: row ``i`` holds the gains from
    ``lower[i]`` upwards; entries past ``span[i]`` are unused.
    """

    term_a: NDArray[np.float64]
    term_b: NDArray[np.float64]
    a_num: NDArray[np.float64]
    b_num: NDArray[np.float64]
    den: NDArray[np.float64]
    step: float
    table: NDArray[np.float64]

    @classmethod
    def from_table(cls, table: NDArray[np.float64]) -> GainSource:
        """Wrap a dense ``(n, max_span)`` table of gains."""
        return cls(EMPTY_VECTOR, EMPTY_VECTOR, EMPTY_VECTOR, EMPTY_VECTOR, EMPTY_VECTOR, 0.0, table)

    @property
    def use_table(self) -> bool:
        """Whether the gains come from a dense table."""
        return bool(self.table.shape[0] > 0)


@dataclass(frozen=True)
class Problem:
    """A validated instance: rollouts ``lower + extra`` with ``0 <= extra <= span``.

    The budget is already reduced to ``capacity``: what is left after every
    prompt's minimum, in units of the greatest common divisor of the costs;
    ``unit_cost`` says whether every rollout then costs one unit.
    """

    lower: NDArray[np.int64]
    span: NDArray[np.int64]
    costs: NDArray[np.int64]
    capacity: int
    gains: GainSource
    concave: bool
    unit_cost: bool

    @property
    def size(self) -> int:
        """Number of prompts."""
        return int(self.lower.shape[0])


def gains_are_concave(
    gains: GainSource, lower: NDArray[np.int64], span: NDArray[np.int64]
) -> bool:
    """Whether every prompt's gains never increase with ``N`` within its span."""
    if not gains.use_table:
        # Recurrence factors are <= 1, so only the step from 0 to 1 rollout
        # (gain 0) can be followed by a larger gain.
        if lower.size == 0 or lower.min() > 0:
            return True
        first_gain = gains.term_a + gains.term_b
        return not bool(np.any((lower == 0) & (span >= 2) & (first_gain > 0)))
    table = gains.table
    if table.shape[1] < 2:
        return True
    inside = np.arange(1, table.shape[1]) < span[:, None]
    return not bool(np.any((table[:, 1:] > table[:, :-1]) & inside))

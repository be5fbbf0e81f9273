"""Marginal gains ``Value(N + 1) - Value(N)`` in the form the solver kernels read.

Value models state what ``N`` rollouts are worth; the solvers only need the
gain of each next rollout of each prompt, from its minimum ``lower`` up to
``lower + span``. A :class:`GainSource` holds them in one of three forms:

* ``geometric`` (built-in models at point success rates): for ``N >= 1`` the
  gain is ``a(N) + b(N)`` with ``a(N + 1) = a(N) * ratio_a`` and
  ``b(N + 1) = b(N) * ratio_b``;
* ``beta`` (built-in models under a Beta posterior): the same with the
  factors ``(a_num + N) / (den + N)`` and ``(b_num + N) / (den + N)``;
* ``table`` (any other model): row ``i`` holds the gains from ``lower[i]``
  on; entries past ``span[i]`` are unused.

Both recurrences start at ``N0 = max(lower, 1)`` and give a gain of 0 from 0
to 1 rollout. Every kernel walks the same recurrence, so all of them see
bit-identical gains, and each factor is at most 1, so the gains never
increase with ``N`` (also in floating point).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import InvalidArgumentError

if TYPE_CHECKING:
    from knapsack_alloc.values.base import Estimates, ValueModel

Vector = NDArray[np.float64]
#: The kernels' gain arguments: ``term_a, term_b, a_num, b_num, den, step, table, use_table``.
Recurrence = tuple[Vector, Vector, Vector, Vector, Vector, float, NDArray[np.float64], bool]

_EMPTY_VECTOR = np.zeros(0, dtype=np.float64)
_EMPTY_TABLE = np.zeros((0, 0), dtype=np.float64)
# The kernels' mode switch: a table, or a recurrence with constant or Beta factors.
_GEOMETRIC, _BETA = 0.0, 1.0


@dataclass(frozen=True)
class GainSource:
    """Marginal gains of every prompt.

    Build one with :meth:`geometric`, :meth:`beta` or :meth:`tabulated`; the
    fields are the kernels' arguments (see :meth:`recurrence`).
    """

    term_a: NDArray[np.float64]
    term_b: NDArray[np.float64]
    a_num: NDArray[np.float64]
    b_num: NDArray[np.float64]
    den: NDArray[np.float64]
    step: float
    table: NDArray[np.float64]

    @classmethod
    def geometric(
        cls,
        term_a: NDArray[np.float64],
        term_b: NDArray[np.float64],
        ratio_a: NDArray[np.float64],
        ratio_b: NDArray[np.float64],
    ) -> GainSource:
        """Gains ``a + b`` whose terms shrink by the constant factors ``ratio_a``, ``ratio_b``."""
        return cls(term_a, term_b, ratio_a, ratio_b, _EMPTY_VECTOR, _GEOMETRIC, _EMPTY_TABLE)

    @classmethod
    def beta(
        cls,
        term_a: NDArray[np.float64],
        term_b: NDArray[np.float64],
        a_num: NDArray[np.float64],
        b_num: NDArray[np.float64],
        den: NDArray[np.float64],
    ) -> GainSource:
        """Gains ``a + b`` whose terms shrink by ``(a_num + N) / (den + N)`` and so on."""
        return cls(term_a, term_b, a_num, b_num, den, _BETA, _EMPTY_TABLE)

    @classmethod
    def tabulated(cls, table: NDArray[np.float64]) -> GainSource:
        """Wrap a dense ``(n, max_span)`` table of gains."""
        return cls(
            _EMPTY_VECTOR, _EMPTY_VECTOR, _EMPTY_VECTOR, _EMPTY_VECTOR, _EMPTY_VECTOR,
            _GEOMETRIC, np.ascontiguousarray(table, dtype=np.float64),
        )  # fmt: skip

    @property
    def use_table(self) -> bool:
        """Whether the gains come from a dense table."""
        return bool(self.table.shape[0] > 0)

    def recurrence(self) -> Recurrence:
        """Return the kernels' gain arguments, ``term_a`` ... ``table``, ``use_table``."""
        return (self.term_a, self.term_b, self.a_num, self.b_num, self.den, self.step,
                self.table, self.use_table)  # fmt: skip

    def dense(self, lower: NDArray[np.int64], span: NDArray[np.int64]) -> NDArray[np.float64]:
        """Return the gains as a table: row ``i`` from ``lower[i]`` on, zero past ``span[i]``."""
        if self.use_table:
            return self.table
        from knapsack_alloc.solvers.kernels.gains import gain_table

        return gain_table(lower, span, self.term_a, self.term_b, self.a_num, self.b_num,
                          self.den, self.step)  # fmt: skip

    def concave(self, lower: NDArray[np.int64], span: NDArray[np.int64]) -> bool:
        """Whether every prompt's gains never increase with ``N`` within its span."""
        if not self.use_table:
            # Recurrence factors are <= 1, so only the step from 0 to 1 rollout
            # (gain 0) can be followed by a larger gain.
            if lower.size == 0 or lower.min() > 0:
                return True
            first_gain = self.term_a + self.term_b
            return not bool(np.any((lower == 0) & (span >= 2) & (first_gain > 0)))
        table = self.table
        if table.shape[1] < 2:
            return True
        inside = np.arange(1, table.shape[1]) < span[:, None]
        return not bool(np.any((table[:, 1:] > table[:, :-1]) & inside))


def tabulate(
    model: ValueModel,
    estimates: Estimates,
    lower: NDArray[np.int64],
    span: NDArray[np.int64],
) -> GainSource:
    """Tabulate a model's gains from its public methods, one call per rollout count.

    A model that overrides :meth:`~knapsack_alloc.ValueModel.gain` is asked
    for its gains; otherwise they are differences of its values.
    """
    from knapsack_alloc.values.base import ValueModel

    width = int(span.max(initial=0))
    size = lower.shape[0]
    if type(model).gain is not ValueModel.gain:
        # Gains at N = lower + k, k < span (the last rollout's gain repeats past the span).
        last = np.maximum(span - 1, 0)
        columns = [
            _checked(model, model.gain(lower + np.minimum(k, last), estimates), size, "gain")
            for k in range(width)
        ]
        table = np.stack(columns, axis=1) if columns else np.zeros((size, 0))
        return GainSource.tabulated(checked_gains(model.name, table, lower, None))
    values = np.stack(
        [
            _checked(model, model.value(lower + np.minimum(k, span), estimates), size, "value")
            for k in range(width + 1)
        ],
        axis=1,
    ) if size else np.zeros((0, width + 1))  # fmt: skip
    return GainSource.tabulated(value_differences(model.name, values, lower))


def value_differences(
    name: str, values: NDArray[np.float64], lower: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Gains as differences of the values ``values[i, k]`` of ``lower[i] + k`` rollouts."""
    return checked_gains(name, np.diff(values, axis=1), lower, values)


def checked_gains(
    name: str,
    table: NDArray[np.float64],
    lower: NDArray[np.int64],
    values: NDArray[np.float64] | None,
) -> NDArray[np.float64]:
    """Refuse gains that are negative beyond rounding; cut rounding noise to 0.

    The tolerance is relative to the largest value (or gain, when no values
    are given): a difference of two values carries their rounding errors.
    """
    scale = table if values is None else values
    tolerance = 1e-12 * max(float(np.abs(scale).max(initial=0.0)), 1e-300)
    decreasing = table < -tolerance
    if decreasing.any():
        i, step = (int(v) for v in np.argwhere(decreasing)[0])
        n = int(lower[i]) + step
        change = (
            f"gain {table[i, step]!r}"
            if values is None
            else f"{values[i, step]!r} -> {values[i, step + 1]!r}"
        )
        raise InvalidArgumentError(
            f"value {name!r} decreases for prompt {i} from N={n} to N={n + 1} ({change}); "
            "value models must not decrease as rollouts are added."
        )
    return np.ascontiguousarray(np.maximum(table, 0.0))


def _checked(model: ValueModel, result: Any, size: int, method: str) -> NDArray[np.float64]:
    array = np.asarray(result, dtype=np.float64)
    if array.shape != (size,):
        raise InvalidArgumentError(
            f"value {model.name!r}: {method}() returned shape {array.shape} for {size} prompts; "
            f"it must return one number per prompt."
        )
    if not np.isfinite(array).all():
        raise InvalidArgumentError(f"value {model.name!r}: {method}() returned NaN or inf.")
    return array

"""The value of a group that already holds some of this step's rollouts.

When a step is sampled in rounds, prompt ``i``'s group holds ``h_i`` rollouts
with ``s_i`` successes when a later round is planned. Under GRPO the rollouts
of every round form one group, so the group's value at a final size
``N >= h_i`` is ``w(p) * P(the group holds a success and a failure)`` given
what it holds:

* already both (``0 < s_i < h_i``): ``w(p)``, whatever ``N``;
* only failures (``s_i = 0 < h_i``): ``w(p) (1 - q**(N - h_i))``;
* only successes (``s_i = h_i > 0``): ``w(p) (1 - p**(N - h_i))``;
* nothing yet (``h_i = 0``): ``w(p) (1 - p**N - q**N)``, the usual value.

Under a :class:`~knapsack_alloc.BetaPosterior` (updated with the step's
rewards) each is a sum of Beta-function ratios, and the marginal gains keep
the recurrence of :class:`~knapsack_alloc.NonzeroGradientValue` with the
exponents shifted by ``h_i``, so every exact solver of
:func:`~knapsack_alloc.allocate` applies. The maths is in ``docs/rounds.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import integer_array
from knapsack_alloc.exceptions import InvalidArgumentError, InvalidArgumentTypeError
from knapsack_alloc.values.base import Estimates, ValueModel
from knapsack_alloc.values.gains import GainSource
from knapsack_alloc.values.nonzero import NonzeroGradientValue
from knapsack_alloc.values.posterior import BetaPosterior


class StepGroupValue(ValueModel):
    """Value of each prompt's whole group when it already holds some rollouts.

    Counts given to :meth:`value` and the bounds given to
    :func:`~knapsack_alloc.allocate` are the groups' *final* sizes, so the
    lower bound of prompt ``i`` must be at least ``held[i]``; the extra
    rollouts of the round are the counts minus ``held``.

    Parameters
    ----------
    base : NonzeroGradientValue
        The value of a fresh group (:data:`~knapsack_alloc.GRPO` or
        :data:`~knapsack_alloc.NONZERO`), whose weight ``w(p)`` is kept.
    held : array_like of int
        Rollouts each prompt's group already holds.
    successes : array_like of int
        Successes among them.

    Examples
    --------
    >>> from knapsack_alloc import NONZERO, BetaPosterior
    >>> model = StepGroupValue(NONZERO, held=[4, 4], successes=[0, 2])
    >>> beliefs = BetaPosterior([0, 2], [4, 2])  # the step's rewards, uniform prior
    >>> model.value(np.array([6, 6]), beliefs).round(4).tolist()  # 2 more each
    [0.2857, 1.0]
    """

    def __init__(self, base: NonzeroGradientValue, held: Any, successes: Any) -> None:
        if not isinstance(base, NonzeroGradientValue):
            raise InvalidArgumentTypeError(
                f"base must be a NonzeroGradientValue (e.g. GRPO or NONZERO), got {base!r}."
            )
        self.base = base
        self.name = base.name
        self.held = integer_array("held", held, length=int(np.size(held)))
        self.successes = integer_array("successes", successes, length=self.held.size)
        above = self.successes > self.held
        if above.any():
            i = int(np.flatnonzero(above)[0])
            raise InvalidArgumentError(
                f"successes[{i}] == {self.successes[i]} > held[{i}] == {self.held[i]}; a group "
                "cannot hold more successes than rollouts."
            )
        #: The group may still lack a failure (``p**`` term) or a success (``q**`` term).
        self.no_failure = self.successes == self.held
        self.no_success = self.successes == 0

    def __repr__(self) -> str:
        return f"StepGroupValue({self.base!r}, groups={self.held.size})"

    def value(self, counts: NDArray[np.int64], estimates: Estimates) -> NDArray[np.float64]:
        """Return the expected value of each whole group at final size ``counts[i] >= held[i]``."""
        counts = np.asarray(counts, dtype=np.int64)
        more = self._more(counts, estimates, "counts")
        j, k = self.base.p_power, self.base.q_power
        if isinstance(estimates, BetaPosterior):
            x = more  # integers: moments() computes them exactly
            more_p = x + j if j else x
            more_q = more_p if k == j else (x + k if k else x)
            weight, all_succeed, all_fail = estimates.moments((j, k), (more_p, k), (j, more_q))
        else:
            p = estimates
            weight = p**j * (1.0 - p) ** k
            all_succeed = weight * p**more
            all_fail = weight * (1.0 - p) ** more
        values = (
            weight
            - np.where(self.no_failure, all_succeed, 0.0)
            - np.where(self.no_success, all_fail, 0.0)
        )
        # A group of at most one rollout cannot hold both outcomes.
        return np.where(counts <= 1, 0.0, values)

    def _gains(
        self, estimates: Estimates, lower: NDArray[np.int64], span: NDArray[np.int64]
    ) -> GainSource:
        """Gains as a recurrence, shifted by the rollouts each group holds.

        For ``N >= max(lower, 1)`` the gain is ``[no failure] E[p**(N - h + j)
        q**(k + 1)] + [no success] E[p**(j + 1) q**(N - h + k)]``, each term
        shrinking per rollout by ``p`` (``q``), or under a Beta posterior by
        ``(a + j + N - h) / (a + b + j + k + 1 + N - h)``.
        """
        start = np.maximum(lower, 1)
        more = self._more(start, estimates, "min_rollouts")
        j, k = self.base.p_power, self.base.q_power
        if isinstance(estimates, BetaPosterior):
            term_a, term_b = estimates.moments((j + more, k + 1), (j + 1, k + more))
            shift = self.held.astype(np.float64)
            return GainSource.beta(
                np.where(self.no_failure, term_a, 0.0),
                np.where(self.no_success, term_b, 0.0),
                estimates.alpha + j - shift,
                estimates.beta + k - shift,
                estimates.alpha + estimates.beta + (j + k + 1) - shift,
            )
        p = estimates
        q = 1.0 - p
        term_a = p ** (j + more) * q ** (k + 1)
        term_b = p ** (j + 1) * q ** (k + more)
        return GainSource.geometric(
            np.where(self.no_failure, term_a, 0.0), np.where(self.no_success, term_b, 0.0), p, q
        )

    def _more(
        self, counts: NDArray[np.int64], estimates: Estimates, name: str
    ) -> NDArray[np.int64]:
        """Rollouts beyond those held; refuse a count below them."""
        if counts.shape != self.held.shape or len(estimates) != self.held.size:
            raise InvalidArgumentError(
                f"this StepGroupValue describes {self.held.size} groups, got {counts.size} "
                f"{name} and {len(estimates)} estimates."
            )
        more = counts - self.held
        below = more < 0
        if below.any():
            i = int(np.flatnonzero(below)[0])
            raise InvalidArgumentError(
                f"{name}[{i}] == {counts[i]} is below the {self.held[i]} rollouts group {i} "
                "already holds; counts are final group sizes, at least the rollouts held."
            )
        return more

"""How training moves each prompt's success probability (the learning model).

A prompt whose group yields a gradient (at least one success and one failure)
moves by ``learning_rate * InfoGain(p)`` with ``InfoGain(p) = p (1 - p)^2``,
the paper's approximation of the success-probability increase from one
update. Learning also carries over to other prompts: after each step, every
prompt's log-odds shift by the same amount ``delta``, chosen so that the
population's summed success probability grows (to first order) by
``transfer`` times what the trained prompts gained directly. A prompt at
exactly 0 or 1 is fixed under that shift: it stands for a problem the model
can never solve (or never fails). ``learning_rate = 0`` freezes everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import real_scalar
from knapsack_alloc.exceptions import InvalidArgumentError

#: Largest learning rate for which one update never pushes ``p`` above 1.
MAX_LEARNING_RATE = 4.0


@dataclass(frozen=True)
class LearningModel:
    """The learning model; see the module docstring and ``docs/simulator.md``.

    Parameters
    ----------
    learning_rate : float
        Scale of a prompt's own step, ``learning_rate * p (1 - p)^2``; in
        ``[0, 4]``.
    transfer : float
        Learning shared with all prompts, as a multiple of the direct gains;
        ``>= 0``.
    """

    learning_rate: float
    transfer: float

    def __post_init__(self) -> None:
        rate = real_scalar("learning_rate", self.learning_rate)
        if not 0.0 <= rate <= MAX_LEARNING_RATE:
            raise InvalidArgumentError(
                f"learning_rate == {self.learning_rate!r}, must be in [0, {MAX_LEARNING_RATE:g}] "
                "(0 freezes the population; above 4 one update could push p past 1)."
            )
        transfer = real_scalar("transfer", self.transfer)
        if transfer < 0.0:
            raise InvalidArgumentError(
                f"transfer == {self.transfer!r}, must be >= 0 (0: no learning carries over)."
            )

    @property
    def static(self) -> bool:
        """True when nothing ever moves."""
        return self.learning_rate == 0.0

    def apply(self, success: NDArray[np.float64], learned: NDArray[np.int64]) -> None:
        """Apply one step's updates to ``success`` in place.

        Parameters
        ----------
        success : numpy.ndarray of float64
            Every prompt's success probability; updated in place.
        learned : numpy.ndarray of int64
            Prompt index of each trained group that had a gradient (repeats
            apply one step each).
        """
        if self.static or learned.size == 0:
            return
        p = success[learned]
        steps = self.learning_rate * p * (1.0 - p) ** 2
        np.add.at(success, learned, steps)
        np.minimum(success, 1.0, out=success)
        gain = float(steps.sum())
        if self.transfer > 0.0 and gain > 0.0:
            # A plain sum, not a dot product: BLAS threads slow large populations down.
            spread = float(np.sum(success * (1.0 - success)))
            if spread > 0.0:
                # p e^d / (1 - p + p e^d) = p / (p + (1 - p) e^-d); when e^-d underflows
                # (almost every prompt stuck at 0 or 1) every movable prompt goes to 1.
                shrink = np.exp(-self.transfer * gain / spread)
                if shrink > 0.0:
                    success /= success + (1.0 - success) * shrink
                else:
                    success[:] = success > 0.0

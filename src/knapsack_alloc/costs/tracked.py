"""Costs learned from the costs given to ``update`` (``cost_model="tracked"``)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import InvalidArgumentError


def tracked_costs(
    mean: NDArray[np.float64], known: NDArray[np.bool_], overall: float | None
) -> NDArray[np.float64]:
    """Per-rollout cost of each prompt of a batch, from the means tracked so far.

    Parameters
    ----------
    mean : numpy.ndarray of float64
        Each prompt's tracked mean cost (ignored where not ``known``).
    known : numpy.ndarray of bool
        Prompts that have reported costs.
    overall : float or None
        Mean over every tracked prompt that reported costs, None if none did.

    Returns
    -------
    numpy.ndarray of float64
        The tracked means; a prompt without one is charged the mean of the
        batch's known prompts, or else ``overall``.

    Raises
    ------
    InvalidArgumentError
        If no prompt has reported costs yet.
    """
    if known.all():
        return mean
    fill = float(mean[known].mean()) if known.any() else overall
    if fill is None:
        raise InvalidArgumentError(
            "cost_model == 'tracked' but no prompt has reported costs yet; pass costs= to "
            "plan() for this step (e.g. the maximum response length), and per-rollout "
            "costs= to update()."
        )
    return np.where(known, mean, fill)

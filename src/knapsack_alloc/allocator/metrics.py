"""Predicted training signal of an allocation."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.values import NONZERO, Estimates


def predicted_effective_ratio(counts: NDArray[np.int64], estimates: Estimates) -> float:
    """Predict the share of rollouts that land in groups with a non-zero GRPO gradient.

    Parameters
    ----------
    counts : numpy.ndarray of int64
        Rollouts per prompt.
    estimates : numpy.ndarray or BetaPosterior
        Success probabilities, or beliefs about them.

    Returns
    -------
    float
        ``sum_i N_i * P_nz(N_i, p_i) / sum_i N_i`` (0 for no rollouts).
    """
    total = int(counts.sum())
    if total == 0:
        return 0.0
    return float(counts @ NONZERO.value(counts, estimates)) / total


def uniform_counts(size: int, budget: int, lower: int, upper: int) -> NDArray[np.int64]:
    """Spread ``budget`` rollouts as evenly as the bounds allow, earlier prompts first.

    Parameters
    ----------
    size : int
        Number of prompts.
    budget : int
        Rollouts to spread.
    lower, upper : int
        Bounds per prompt.

    Returns
    -------
    numpy.ndarray of int64
        ``budget // size`` each (clipped to the bounds), one more for the
        first ``budget % size`` prompts.
    """
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.full(size, budget // size, dtype=np.int64)
    counts[: budget % size] += 1
    return np.clip(counts, lower, upper)

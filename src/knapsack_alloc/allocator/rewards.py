"""How rewards are read: each rollout's reward becomes a success or a failure."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import positive_costs
from knapsack_alloc.exceptions import InvalidArgumentError, InvalidArgumentTypeError

#: Rewards checked together; a large update is checked a chunk at a time, so it
#: makes no float copy of all of them.
REWARD_CHUNK = 1 << 19


def read_rewards(
    rewards: Any, size: int, success_threshold: float
) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    """Check one reward per rollout; return them as an array (not copied) and each success.

    Parameters
    ----------
    rewards : array_like
        0/1, -1/1 (-1 is a failure), bools, or floats in ``[0, 1]``.
    size : int
        Rollouts, the number of rewards expected.
    success_threshold : float
        A float reward counts as a success when it is at least this.

    Returns
    -------
    rewards : numpy.ndarray
        The rewards as an array of their own dtype (bool, int or float).
    success : numpy.ndarray of bool
        Whether each rollout succeeded.

    Raises
    ------
    InvalidArgumentError, InvalidArgumentTypeError
        If the rewards are not one number or bool per rollout in the ranges above.
    """
    if isinstance(rewards, (str, bytes)):
        raise InvalidArgumentTypeError(
            f"rewards must be an array of numbers or bools, not a string: {rewards!r}."
        )
    try:
        array = np.asarray(rewards)
    except ValueError as error:
        raise InvalidArgumentError(f"rewards could not be read as a 1-d array: {error}") from None
    if array.ndim != 1:
        raise InvalidArgumentError(
            f"rewards must be 1-dimensional (one reward per rollout), got shape {array.shape}."
        )
    if array.size != size:
        raise InvalidArgumentError(
            f"rollout_prompt_ids and rewards must have one entry per rollout each, got "
            f"{size} ids and {array.size} rewards."
        )
    if array.dtype == np.bool_:
        return array, array
    if array.dtype.kind not in "iuf":
        raise InvalidArgumentTypeError(
            f"rewards must be numbers or bools, got an array of dtype {array.dtype}; "
            "map them to 0/1 first."
        )
    success = np.empty(size, dtype=np.bool_)
    for start in range(0, size, REWARD_CHUNK):
        raw = array[start : start + REWARD_CHUNK].astype(np.float64)
        bad = ~np.isfinite(raw) | (raw > 1.0) | ((raw < 0.0) & (raw != -1.0))
        if bad.any():
            i = start + int(np.flatnonzero(bad)[0])
            raise InvalidArgumentError(
                f"rewards[{i}] == {array[i].item()!r} is not a valid reward. Rewards must be "
                f"0/1, -1/1 (-1 is a failure), bools, or floats in [0, 1] (a success when >= "
                f"success_threshold == {success_threshold!r}); rescale them into "
                "[0, 1] or map them to 0/1."
            )
        np.greater_equal(raw, success_threshold, out=success[start : start + raw.size])
    return array, success


def read_round_rewards(
    rewards: Any, size: int, success_threshold: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Read a round's rewards, where NaN marks a rollout that got none.

    Returns
    -------
    rewards : numpy.ndarray of float64
        A copy of the rewards, NaN kept.
    success : numpy.ndarray of bool
        Whether each rollout succeeded (False where NaN).
    """
    try:
        probe = np.asarray(rewards, dtype=np.float64)
    except (TypeError, ValueError):
        probe = None  # not numbers: read_rewards names the problem
    unscored = None
    if probe is not None and probe.shape == (size,) and np.isnan(probe).any():
        unscored = np.isnan(probe)
        rewards = np.where(unscored, 0.0, probe)
    values, success = read_rewards(rewards, size, success_threshold)
    values, success = values.astype(np.float64), success.copy()
    if unscored is not None:
        values[unscored] = np.nan
        success[unscored] = False
    return values, success


def read_rollout_costs(costs: Any, size: int) -> NDArray[np.float64]:
    """Check one positive cost per rollout (e.g. its response tokens).

    Parameters
    ----------
    costs : array_like
        The costs given to ``update``.
    size : int
        Rollouts, the number of costs expected.

    Returns
    -------
    numpy.ndarray of float64
    """
    if np.ndim(costs) == 1 and len(costs) != size:
        raise InvalidArgumentError(
            f"costs must have one entry per rollout, got {len(costs)} costs for {size} rollouts."
        )
    return positive_costs("costs", costs, length=size)

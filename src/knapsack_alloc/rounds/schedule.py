"""The schedule of a step in rounds: the share of the budget each round may spend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from knapsack_alloc._validation import integer_scalar, real_array, real_scalar
from knapsack_alloc.exceptions import InvalidArgumentError

# Shares must sum to 1 within this.
_SHARE_TOLERANCE = 1e-9


def round_shares(
    rounds: Any = None, first_share: Any = None, shares: Sequence[Any] | None = None
) -> tuple[float, ...]:
    """Share of the step's budget each round may spend.

    Parameters
    ----------
    rounds : int, optional
        Number of rounds; default 2, or the length of ``shares``.
    first_share : float, optional
        Share of the first round, in ``(0, 1]``; the other rounds split the
        rest equally. Default: every round gets ``1 / rounds``.
    shares : sequence of float, optional
        Every round's share, each in ``(0, 1]``, summing to 1.

    Returns
    -------
    tuple of float

    Examples
    --------
    >>> round_shares(2), round_shares(3, first_share=0.5), round_shares(shares=[0.25, 0.75])
    ((0.5, 0.5), (0.5, 0.25, 0.25), (0.25, 0.75))
    """
    if shares is not None:
        if first_share is not None:
            raise InvalidArgumentError(
                "pass either shares or first_share, not both; shares lists every round's share."
            )
        if rounds is not None and rounds != np.size(shares):
            raise InvalidArgumentError(
                f"rounds == {rounds!r} but shares lists {np.size(shares)} rounds; pass one of them."
            )
        if isinstance(shares, (str, bytes)) or np.ndim(shares) != 1 or len(shares) == 0:
            raise InvalidArgumentError(
                f"shares must be a non-empty list of numbers (one per round), got {shares!r}."
            )
        values = real_array("shares", shares)
        bad = (values <= 0) | (values > 1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidArgumentError(f"shares[{i}] == {shares[i]!r}, must be in (0, 1].")
        if abs(float(values.sum()) - 1.0) > _SHARE_TOLERANCE:
            raise InvalidArgumentError(
                f"shares == {list(shares)!r} sum to {float(values.sum())!r}; they must sum to 1."
            )
        return tuple(float(v) for v in values)
    count = integer_scalar("rounds", 2 if rounds is None else rounds, minimum=1)
    if first_share is None:
        return (1.0 / count,) * count
    first = real_scalar("first_share", first_share)
    if count == 1:
        if first != 1.0:
            raise InvalidArgumentError(
                f"first_share == {first_share!r} with rounds == 1; a single round spends the "
                "whole budget (pass first_share=None or 1)."
            )
        return (1.0,)
    if not 0.0 < first < 1.0:
        raise InvalidArgumentError(
            f"first_share == {first_share!r}, must be in (0, 1) with {count} rounds (the "
            "other rounds share the rest)."
        )
    return (first, *((1.0 - first) / (count - 1),) * (count - 1))

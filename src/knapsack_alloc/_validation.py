"""Argument checks shared by the public entry points.

Every check raises :class:`~knapsack_alloc.exceptions.InvalidArgumentError`
(a ``ValueError``) or :class:`~knapsack_alloc.exceptions.InvalidArgumentTypeError`
(a ``TypeError``) with a message of one shape: the argument's name, the
offending value, and what is allowed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import InvalidArgumentError, InvalidArgumentTypeError

#: Largest whole number an argument may hold (rollouts, cost units, budgets):
#: every such number and every sum the solvers form stays exact in float64
#: and far from int64 overflow.
MAX_INTEGER = 2**53
_MAX_TEXT = "2**53 = 9007199254740992"


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Check that ``value`` is one of the ``allowed`` strings.

    Parameters
    ----------
    name : str
        Argument name used in the error message.
    value : Any
        The value given by the user.
    allowed : iterable of str
        The accepted values.

    Returns
    -------
    str
        ``value`` itself.
    """
    options = sorted(allowed)
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise InvalidArgumentError(
            f"The {name!r} parameter must be a str among {{{listed}}}. "
            f"Got {_describe(value)} instead."
        )
    return value


def real_array(name: str, value: Any, *, length: int | None = None) -> NDArray[np.float64]:
    """Convert ``value`` to a finite, 1-d float64 array.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : array_like
        Numbers (lists, tuples, numpy arrays of any real dtype).
    length : int, optional
        Required length, when it must match another argument.

    Returns
    -------
    numpy.ndarray
        A new contiguous float64 array.
    """
    if isinstance(value, (str, bytes)):
        raise InvalidArgumentTypeError(
            f"{name} must be a 1-d array of numbers, not a string: {_describe(value)}."
        )
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged nested lists and the like
        raise InvalidArgumentError(
            f"{name} must be a 1-d array of numbers; could not convert {_describe(value)}: {error}"
        ) from None
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise InvalidArgumentTypeError(
            f"{name} must hold real numbers (int or float dtype), got dtype {array.dtype}."
        )
    if array.ndim != 1:
        raise InvalidArgumentError(
            f"{name} must be 1-dimensional (one entry per prompt), got shape {array.shape}. "
            "Flatten it, or pass one batch at a time."
        )
    if length is not None and array.shape[0] != length:
        raise InvalidArgumentError(
            f"{name} has {array.shape[0]} entries but there are {length} prompts; "
            "pass one entry per prompt."
        )
    result = np.ascontiguousarray(array, dtype=np.float64)
    bad = ~np.isfinite(result)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise InvalidArgumentError(
            f"{name}[{index}] == {float(result[index])!r}, must be finite (no NaN or inf)."
        )
    return result


def integer_array(
    name: str, value: Any, *, length: int, minimum: int = 0, maximum: int = MAX_INTEGER
) -> NDArray[np.int64]:
    """Convert a scalar or per-prompt sequence of integers to an int64 array.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : int or array_like of int
        A scalar broadcast to every prompt, or one value per prompt. Floats
        are accepted only when they hold whole numbers.
    length : int
        Number of prompts.
    minimum : int, default 0
        Smallest allowed value.
    maximum : int, default ``MAX_INTEGER``
        Largest allowed value; checked before any conversion to int64.

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(length,)``.
    """
    if type(value) is int and minimum <= value <= maximum:
        return np.full(length, value, dtype=np.int64)
    if np.ndim(value) == 0:
        scalar = integer_scalar(name, value, minimum=minimum, maximum=maximum)
        return np.full(length, scalar, dtype=np.int64)
    floats = real_array(name, value, length=length)
    whole = np.floor(floats) == floats
    if not whole.all():
        index = int(np.flatnonzero(~whole)[0])
        raise InvalidArgumentError(
            f"{name}[{index}] == {float(floats[index])!r}, must be a whole number of rollouts."
        )
    too_small = floats < minimum
    if too_small.any():
        index = int(np.flatnonzero(too_small)[0])
        raise InvalidArgumentError(
            f"{name}[{index}] == {int(floats[index])}, must be >= {minimum}."
        )
    # Integer input is compared exactly: above 2**53 its float copy is rounded.
    original = np.asarray(value)
    exact = original if original.dtype.kind in "iu" else floats
    too_large = exact > maximum
    if too_large.any():
        index = int(np.flatnonzero(too_large)[0])
        # Show the caller's number: numpy turns a list mixing huge and small ints into floats.
        shown = value[index] if isinstance(value, (list, tuple)) else exact[index].item()
        raise InvalidArgumentError(_too_large(f"{name}[{index}]", shown, maximum))
    return floats.astype(np.int64)


def integer_scalar(name: str, value: Any, *, minimum: int = 0, maximum: int = MAX_INTEGER) -> int:
    """Check that ``value`` is a whole number ``>= minimum`` and return it as int.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : Any
        An ``int``, a numpy integer, or a float holding a whole number.
    minimum : int, default 0
        Smallest allowed value.
    maximum : int, default ``MAX_INTEGER``
        Largest allowed value.

    Returns
    -------
    int
        The value as a Python int.
    """
    number = real_scalar(name, value)
    whole = int(value) if isinstance(value, numbers.Integral) else int(number)
    if whole > maximum:
        raise InvalidArgumentError(_too_large(name, value, maximum))
    if number != whole:
        raise InvalidArgumentError(f"{name} == {_describe(value)}, must be a whole number.")
    if whole < minimum:
        raise InvalidArgumentError(f"{name} == {_describe(value)}, must be >= {minimum}.")
    return whole


def _too_large(name: str, value: Any, maximum: int) -> str:
    limit = _MAX_TEXT if maximum == MAX_INTEGER else str(maximum)
    return (
        f"{name} == {_describe(value)} is too large; at most {limit} is supported, "
        "pass a smaller value."
    )


def rollout_bounds(
    min_rollouts: Any, max_rollouts: Any, size: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Check ``min_rollouts`` and ``max_rollouts`` (scalars or one per prompt).

    Parameters
    ----------
    min_rollouts, max_rollouts : int or array_like of int
        Bounds on each prompt's rollouts.
    size : int
        Number of prompts.

    Returns
    -------
    lower, upper : numpy.ndarray of int64
        One bound per prompt, ``0 <= lower <= upper <= 2**53``.
    """
    lower = integer_array("min_rollouts", min_rollouts, length=size)
    upper = integer_array("max_rollouts", max_rollouts, length=size)
    inverted = lower > upper
    if inverted.any():
        i = int(np.flatnonzero(inverted)[0])
        raise InvalidArgumentError(
            f"min_rollouts[{i}] == {lower[i]} > max_rollouts[{i}] == {upper[i]}; "
            "each prompt needs min_rollouts <= max_rollouts."
        )
    return lower, upper


def real_scalar(name: str, value: Any) -> float:
    """Check that ``value`` is a finite real number (not a bool) and return it.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : Any
        The value given by the user.

    Returns
    -------
    float
        The value as a Python float.
    """
    if type(value) is int or type(value) is float:
        number = float(value)
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidArgumentTypeError(
            f"{name} must be a real number, not {type(value).__name__}: {_describe(value)}."
        )
    else:
        number = float(value)
    if not math.isfinite(number):
        raise InvalidArgumentError(f"{name} == {_describe(value)}, must be finite.")
    return number


def probabilities(name: str, value: Any) -> NDArray[np.float64]:
    """Convert ``value`` to a 1-d float64 array of probabilities in ``[0, 1]``.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : array_like
        The probabilities.

    Returns
    -------
    numpy.ndarray of float64
        ``value`` itself when it already is a valid contiguous float64 array.
    """
    if (
        isinstance(value, np.ndarray)
        and value.dtype == np.float64
        and value.ndim == 1
        and value.flags.c_contiguous
        and (value.size == 0 or 0.0 <= value.min() <= value.max() <= 1.0)
    ):
        return value  # fast path: already valid (NaN fails the comparisons)
    rates = real_array(name, value)
    i = first_outside_unit_interval(rates)
    if i >= 0:
        raise InvalidArgumentError(
            f"{name}[{i}] == {float(rates[i])!r}, must be in [0, 1] (a probability)."
        )
    return rates


def first_outside_unit_interval(values: NDArray[np.float64]) -> int:
    """Index of the first value outside ``[0, 1]`` (NaN included), -1 if none."""
    outside = ~((values >= 0.0) & (values <= 1.0))
    return int(np.argmax(outside)) if outside.any() else -1


def non_negative_array(name: str, value: Any, *, length: int | None = None) -> NDArray[np.float64]:
    """Convert ``value`` to a finite 1-d float64 array of numbers ``>= 0`` (e.g. counts)."""
    array = real_array(name, value, length=length)
    negative = array < 0
    if negative.any():
        i = int(np.flatnonzero(negative)[0])
        raise InvalidArgumentError(f"{name}[{i}] == {float(array[i])!r}, must be >= 0.")
    return array


def positive_costs(name: str, value: Any, *, length: int) -> NDArray[np.float64]:
    """Convert per-rollout costs to a finite 1-d float64 array of numbers ``> 0``."""
    costs = real_array(name, value, length=length)
    not_positive = costs <= 0
    if not_positive.any():
        i = int(np.flatnonzero(not_positive)[0])
        raise InvalidArgumentError(
            f"{name}[{i}] == {float(costs[i])!r}, must be > 0 (cost of one rollout)."
        )
    return costs


def check_prior(prior: Any) -> tuple[float, float]:
    """Check a Beta prior ``(a, b)`` of two positive numbers and return it as floats."""
    if isinstance(prior, str) or not isinstance(prior, (tuple, list)) or len(prior) != 2:
        raise InvalidArgumentTypeError(
            f"prior must be a pair (a, b) of positive numbers, got {_describe(prior)}."
        )
    a = real_scalar("prior[0]", prior[0])
    b = real_scalar("prior[1]", prior[1])
    if a <= 0 or b <= 0:
        raise InvalidArgumentError(f"prior == {tuple(prior)!r}, both entries must be > 0.")
    return (a, b)

"""Argument checks shared by the public entry points.

Every check raises :class:`InvalidArgumentError` (a ``ValueError``) or
``TypeError`` with a message of one shape: the argument's name, the offending
value, and what is allowed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray


class InvalidArgumentError(ValueError):
    """An argument has the right type but a value that is not allowed."""


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
        raise TypeError(f"{name} must be a 1-d array of numbers, not a string: {_describe(value)}.")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged nested lists and the like
        raise InvalidArgumentError(
            f"{name} must be a 1-d array of numbers; could not convert {_describe(value)}: {error}"
        ) from None
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(
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
    name: str, value: Any, *, length: int, minimum: int = 0
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

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(length,)``.
    """
    if type(value) is int and value >= minimum:
        return np.full(length, value, dtype=np.int64)
    if np.ndim(value) == 0:
        scalar = integer_scalar(name, value, minimum=minimum)
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
    return floats.astype(np.int64)


def integer_scalar(name: str, value: Any, *, minimum: int = 0) -> int:
    """Check that ``value`` is a whole number ``>= minimum`` and return it as int.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : Any
        An ``int``, a numpy integer, or a float holding a whole number.
    minimum : int, default 0
        Smallest allowed value.

    Returns
    -------
    int
        The value as a Python int.
    """
    number = real_scalar(name, value)
    whole = int(value) if isinstance(value, numbers.Integral) else int(number)
    if number != whole:
        raise InvalidArgumentError(f"{name} == {_describe(value)}, must be a whole number.")
    if whole < minimum:
        raise InvalidArgumentError(f"{name} == {_describe(value)}, must be >= {minimum}.")
    return whole


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
        raise TypeError(
            f"{name} must be a real number, not {type(value).__name__}: {_describe(value)}."
        )
    else:
        number = float(value)
    if not math.isfinite(number):
        raise InvalidArgumentError(f"{name} == {_describe(value)}, must be finite.")
    return number

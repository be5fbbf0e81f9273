"""The built-in value models by name, and how the ``value`` argument is read."""

from __future__ import annotations

from typing import Literal

from knapsack_alloc.exceptions import InvalidArgumentError, InvalidArgumentTypeError
from knapsack_alloc.values.base import ValueModel
from knapsack_alloc.values.function import CallableValue, ValueFunction
from knapsack_alloc.values.nonzero import GRPO, NONZERO

ValueName = Literal["grpo", "nonzero"]
#: What the ``value`` argument of :func:`~knapsack_alloc.allocate` accepts.
ValueArgument = ValueName | ValueModel | ValueFunction

BUILT_IN: dict[ValueName, ValueModel] = {"grpo": GRPO, "nonzero": NONZERO}

_EXPECTED = (
    "The 'value' parameter must be a str among {"
    + ", ".join(repr(name) for name in sorted(BUILT_IN))
    + "}, a ValueModel or a callable value(N, p)."
)


def resolve_value(value: object) -> ValueModel:
    """Turn the ``value`` argument of :func:`~knapsack_alloc.allocate` into a value model.

    Parameters
    ----------
    value : str, ValueModel or callable
        A built-in name, a model object, or a vectorised ``value(N, p)``.

    Returns
    -------
    ValueModel
    """
    if isinstance(value, ValueModel):
        return value
    if isinstance(value, str):
        if value not in BUILT_IN:
            raise InvalidArgumentError(f"{_EXPECTED} Got {value!r} instead.")
        return BUILT_IN[value]
    if callable(value):
        return CallableValue(value)
    raise InvalidArgumentTypeError(f"{_EXPECTED} Got {type(value).__name__} instead.")

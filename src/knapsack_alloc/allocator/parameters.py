"""The allocator's parameters: their constraints, checked once when it is created."""

from __future__ import annotations

from typing import Any

import numpy as np

from knapsack_alloc._validation import check_prior, choice, integer_scalar, real_scalar
from knapsack_alloc.allocator.presets import PRESETS, PresetName
from knapsack_alloc.engine import check_solver, check_time_limit
from knapsack_alloc.exceptions import InvalidArgumentError, InvalidArgumentTypeError
from knapsack_alloc.values import resolve_value

#: Largest ``window``: rewards kept per prompt.
MAX_WINDOW = 1024
#: Parameters every preset takes; each preset adds those of :data:`PRESETS`.
COMMON = (
    "min_rollouts", "max_rollouts", "window", "min_history", "value", "solver", "prior",
    "success_threshold", "cost_model", "cost_resolution", "time_limit", "allow_unused_budget",
)  # fmt: skip
#: Every parameter name, in the order of :meth:`KnapsackAllocator.get_params`.
ALL = ("default_rollouts", *COMMON[:4], "alpha", *COMMON[4:])
COST_MODELS = ("unit", "tracked")


def preset_parameters(preset: PresetName) -> tuple[str, ...]:
    """Names of the parameters ``preset`` takes, in :data:`ALL` order."""
    own = PRESETS[preset]
    return tuple(name for name in ALL if name in COMMON or name in own)


def defaults(preset: PresetName) -> dict[str, Any]:
    """Default of every parameter of ``preset``, from the signature and :data:`PRESETS`."""
    import inspect

    from knapsack_alloc.allocator.allocator import KnapsackAllocator

    signature = inspect.signature(KnapsackAllocator)
    names = preset_parameters(preset)
    found = {name: signature.parameters[name].default for name in names}
    return {"preset": preset, **found, **PRESETS[preset]}


def check_parameters(preset: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Check the parameters of a new allocator and fill in the preset's defaults.

    Parameters
    ----------
    preset : str
        The preset name, checked here.
    given : dict
        Every keyword argument, None where the caller left a preset-dependent
        one out.

    Returns
    -------
    dict
        The preset's parameters, checked and converted (ints, floats, bools).

    Raises
    ------
    InvalidArgumentError, InvalidArgumentTypeError
        On a bad value, or a parameter the preset does not take.
    """
    name: PresetName = choice("preset", preset, PRESETS)  # type: ignore[assignment]
    names = preset_parameters(name)
    for key in ALL:
        if key not in names and given[key] is not None:
            raise InvalidArgumentTypeError(
                f"{key!r} is not a parameter of the {name!r} preset; its parameters are: "
                f"{', '.join(sorted(names))}."
            )
    params = {key: given[key] for key in names}
    for key, default in PRESETS[name].items():
        if params[key] is None:
            params[key] = default
    return _checked(params)


def _checked(params: dict[str, Any]) -> dict[str, Any]:
    checked = dict(params)
    for name in ("min_rollouts", "window", "min_history"):
        checked[name] = integer_scalar(
            name, params[name], minimum=0 if name == "min_rollouts" else 1
        )
    if checked["window"] > MAX_WINDOW:
        raise InvalidArgumentError(f"window == {params['window']!r}, must be <= {MAX_WINDOW}.")
    checked["max_rollouts"] = integer_scalar(
        "max_rollouts", params["max_rollouts"], minimum=max(checked["min_rollouts"], 1)
    )
    if "default_rollouts" in params:
        checked["default_rollouts"] = integer_scalar(
            "default_rollouts", params["default_rollouts"], minimum=1
        )
    if "alpha" in params:
        checked["alpha"] = _open_unit("alpha", params["alpha"])
    threshold = real_scalar("success_threshold", params["success_threshold"])
    if not 0.0 < threshold <= 1.0:
        raise InvalidArgumentError(
            f"success_threshold == {params['success_threshold']!r}, must be in (0, 1]."
        )
    checked["success_threshold"] = threshold
    resolve_value(params["value"])
    check_solver(params["solver"])
    choice("cost_model", params["cost_model"], COST_MODELS)
    checked["prior"] = _prior(params["prior"])
    if params["cost_resolution"] is not None:
        number = real_scalar("cost_resolution", params["cost_resolution"])
        if number <= 0:
            raise InvalidArgumentError(
                f"cost_resolution == {params['cost_resolution']!r}, must be > 0 (or None)."
            )
        checked["cost_resolution"] = number
    elif params["cost_model"] == "tracked":
        raise InvalidArgumentError(
            "cost_model == 'tracked' needs cost_resolution: tracked costs are means, "
            "rarely whole numbers; pass e.g. cost_resolution=1.0 to count whole tokens."
        )
    if params["time_limit"] is not None:
        # Warns here, once, if the solver ignores it (user, __init__, check_parameters, _checked).
        check_time_limit(params["solver"], params["time_limit"], warn_depth=5)
        checked["time_limit"] = real_scalar("time_limit", params["time_limit"])
    if not isinstance(params["allow_unused_budget"], (bool, np.bool_)):
        raise InvalidArgumentTypeError(
            "allow_unused_budget must be a bool, got "
            f"{type(params['allow_unused_budget']).__name__}."
        )
    checked["allow_unused_budget"] = bool(params["allow_unused_budget"])
    return checked


def _open_unit(name: str, value: Any) -> float:
    number = real_scalar(name, value)
    if not 0.0 < number < 1.0:
        raise InvalidArgumentError(f"{name} == {value!r}, must be in (0, 1).")
    return number


def _prior(prior: Any) -> str | tuple[float, float]:
    if isinstance(prior, str):
        if prior == "empirical":
            return prior
        raise InvalidArgumentError(
            f"prior must be 'empirical' or a pair (a, b) of positive numbers, got {prior!r}."
        )
    return check_prior(prior)

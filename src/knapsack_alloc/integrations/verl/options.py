"""The ``knapsack`` section of a verl config: its defaults and what it builds.

Every allocator parameter defaults to ``None``, meaning the preset's own
default (see :data:`knapsack_alloc.allocator.PRESETS`), so a Hydra override
such as ``knapsack.max_rollouts=96`` needs no ``+``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from knapsack_alloc.integrations.groups import GroupStability

__all__ = [
    "ALLOCATOR_KEYS",
    "KNAPSACK_DEFAULTS",
    "build_allocator",
    "build_stability",
    "planner_options",
]

#: Allocator parameters that ``knapsack.<name>`` overrides (``None``: the preset's default).
ALLOCATOR_KEYS = (
    "min_rollouts",
    "max_rollouts",
    "window",
    "min_history",
    "default_rollouts",
    "alpha",
    "value",
    "solver",
    "prior",
    "success_threshold",
    "time_limit",
)

#: The ``knapsack`` config node with its defaults.
KNAPSACK_DEFAULTS: dict[str, Any] = {
    "preset": "paper",
    **dict.fromkeys(ALLOCATOR_KEYS),
    # Batch field that identifies a prompt across epochs (verl's datasets copy
    # extra_info.index there).
    "prompt_key": "index",
    # Agent-loop workers the prompts are balanced across; None: the number
    # actor_rollout_ref.rollout.agent.num_workers starts.
    "num_workers": None,
    "advantage_clip": None,
    "group_weighting": "none",
    # Write the allocator into each global_step_N checkpoint folder and read it on resume.
    "save_state": True,
}


def _plain(node: Any) -> dict[str, Any]:
    """Return the ``knapsack`` node as a plain dict, every default filled in."""
    if type(node).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        node = OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, Mapping):
        raise TypeError(f"The knapsack config must be a mapping, got {type(node).__name__}.")
    unknown = sorted(set(node) - set(KNAPSACK_DEFAULTS))
    if unknown:
        listed = ", ".join(sorted(KNAPSACK_DEFAULTS))
        raise ValueError(
            f"knapsack.{unknown[0]} is not a knapsack option; the options are: {listed}."
        )
    return {**KNAPSACK_DEFAULTS, **node}


def build_allocator(node: Any) -> Any:
    """Create the `KnapsackAllocator` a ``knapsack`` config node describes.

    Parameters
    ----------
    node : mapping or omegaconf.DictConfig
        The ``knapsack`` section; missing keys take :data:`KNAPSACK_DEFAULTS`.

    Returns
    -------
    KnapsackAllocator

    Raises
    ------
    ValueError, TypeError
        On an unknown key or a bad value, naming ``knapsack.<key>``.
    """
    from knapsack_alloc.allocator import KnapsackAllocator

    options = _plain(node)
    params = {k: options[k] for k in ALLOCATOR_KEYS if options[k] is not None}
    if isinstance(params.get("prior"), list):
        params["prior"] = tuple(params["prior"])
    try:
        return KnapsackAllocator(options["preset"], **params)
    except (TypeError, ValueError) as error:
        raise type(error)(f"knapsack config: {error}") from None


def build_stability(node: Any) -> GroupStability:
    """Create the clipping and weighting options of a ``knapsack`` config node.

    Parameters
    ----------
    node : mapping or omegaconf.DictConfig
        The ``knapsack`` section.

    Returns
    -------
    GroupStability
    """
    options = _plain(node)
    try:
        return GroupStability(options["advantage_clip"], options["group_weighting"])
    except (TypeError, ValueError) as error:
        raise type(error)(f"knapsack config: {error}") from None


def planner_options(node: Any) -> dict[str, Any]:
    """Validate and return the options of a ``knapsack`` config node that are not the allocator's.

    Parameters
    ----------
    node : mapping or omegaconf.DictConfig
        The ``knapsack`` section.

    Returns
    -------
    dict
        ``prompt_key`` (str), ``num_workers`` (int or None), ``save_state`` (bool).
    """
    options = _plain(node)
    if not isinstance(options["prompt_key"], str) or not options["prompt_key"]:
        raise ValueError(
            f"knapsack.prompt_key == {options['prompt_key']!r}, must name the batch field that "
            "identifies a prompt (verl's datasets carry extra_info.index as 'index')."
        )
    workers = options["num_workers"]
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise TypeError(f"knapsack.num_workers must be an int or null, got {workers!r}.")
    if workers is not None and workers < 1:
        raise ValueError(f"knapsack.num_workers == {workers}, must be >= 1 (or null).")
    if not isinstance(options["save_state"], bool):
        value = options["save_state"]
        raise TypeError(f"knapsack.save_state must be true or false, got {value!r}.")
    return {k: options[k] for k in ("prompt_key", "num_workers", "save_state")}

"""The allocator's state: its parameters and reward history, as data and as a file.

:func:`state_dict` turns an allocator into plain values and numeric arrays,
:func:`from_state` checks such a dict and builds the allocator back;
:func:`save` and :func:`load` write and read them as one checkpoint file
(:mod:`.checkpoint`: atomic, versioned, never executes code on load).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from knapsack_alloc.allocator.checkpoint import read_checkpoint, write_checkpoint
from knapsack_alloc.allocator.history import RewardHistory
from knapsack_alloc.allocator.prompt_index import IdKind
from knapsack_alloc.exceptions import CheckpointError, InvalidArgumentError

if TYPE_CHECKING:
    from knapsack_alloc.allocator.allocator import KnapsackAllocator

FORMAT = "knapsack-alloc/KnapsackAllocator"
VERSION = 1
# The object kind written in the checkpoint header.
_KIND = "KnapsackAllocator"


def state_dict(allocator: KnapsackAllocator) -> dict[str, Any]:
    """Return ``allocator``'s parameters and learned state (call it under its lock).

    Raises
    ------
    InvalidArgumentError
        If ``value`` is a custom object (it cannot be stored as data).
    """
    params = allocator.get_params()
    if not isinstance(params["value"], str):
        raise InvalidArgumentError(
            f"value == {params['value']!r} is a custom value model, which cannot be saved "
            "as data; save an allocator with value='grpo' or 'nonzero'."
        )
    if isinstance(params["prior"], tuple):
        params["prior"] = list(params["prior"])
    return {
        "format": FORMAT,
        "version": VERSION,
        "params": params,
        "id_kind": allocator.history_.id_kind,
        "n_updates": allocator.n_updates_,
        "n_rollouts": allocator.n_rollouts_,
        "arrays": allocator.history_.to_arrays(),
    }


def from_state(state: Any) -> KnapsackAllocator:
    """Build an allocator from :func:`state_dict` output, checking every part of it.

    Raises
    ------
    InvalidArgumentError
        If ``state`` is not a valid allocator state.
    """
    from knapsack_alloc.allocator.allocator import KnapsackAllocator

    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InvalidArgumentError(
            "state is not a KnapsackAllocator state dict (its 'format' is missing or wrong)."
        )
    version = state.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise InvalidArgumentError(
            f"state has version {version!r}; this version reads versions up to {VERSION}."
        )
    params = state.get("params")
    arrays = state.get("arrays")
    id_kind: IdKind | None = state.get("id_kind")
    n_updates, n_rollouts = state.get("n_updates"), state.get("n_rollouts")
    if not isinstance(params, dict) or not isinstance(arrays, dict) or "preset" not in params:
        raise InvalidArgumentError("state lacks its 'params' or 'arrays'.")
    if not all(isinstance(c, int) and c >= 0 for c in (n_updates, n_rollouts)):
        raise InvalidArgumentError("state's 'n_updates' and 'n_rollouts' must be ints >= 0.")
    params = dict(params)
    unknown = sorted(set(params) - set(KnapsackAllocator.parameter_names()))
    if unknown:
        raise InvalidArgumentError(f"state's params hold unknown parameters: {unknown}.")
    if isinstance(params.get("prior"), list):
        params["prior"] = tuple(params["prior"])
    allocator = KnapsackAllocator(**params)
    allocator.history_ = RewardHistory.from_arrays(allocator.window, id_kind, arrays)
    allocator.n_updates_, allocator.n_rollouts_ = int(n_updates), int(n_rollouts)  # type: ignore[arg-type]
    return allocator


def save(allocator: KnapsackAllocator, path: str | os.PathLike[str]) -> None:
    """Write ``allocator`` to ``path`` atomically."""
    state = allocator.state_dict()
    arrays = state.pop("arrays")
    write_checkpoint(path, _KIND, state, arrays)


def load(path: str | os.PathLike[str]) -> KnapsackAllocator:
    """Read an allocator written by :func:`save`.

    Raises
    ------
    CheckpointError
        If the file is missing, empty, truncated, corrupted, foreign, from a
        newer format version, or holds an invalid allocator.
    """
    meta, arrays = read_checkpoint(path, _KIND)
    try:
        return from_state({**meta, "arrays": arrays})
    except (InvalidArgumentError, TypeError) as error:
        raise CheckpointError(f"{os.fspath(path)!r} holds an invalid allocator: {error}") from None

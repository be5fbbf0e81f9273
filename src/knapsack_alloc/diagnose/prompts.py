"""Rollouts as arrays, and dense ids for the prompts of a run."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Characters of a prompt's text kept while reading (the shared template is cut later).
KEPT_CHARS = 200
#: Characters of a prompt's text shown in the report.
PREVIEW_CHARS = 80


@dataclass(frozen=True)
class RolloutBatch:
    """Rollouts read from one block of a file, one entry per rollout.

    Attributes
    ----------
    steps : numpy.ndarray of int64
        Training step of each rollout.
    prompts : numpy.ndarray of int64
        Dense prompt id (see :class:`PromptRegistry`).
    groups : numpy.ndarray of int64
        Group within the step and prompt: 0, or a hash of the trainer's
        group id when the input has one (verl's ``uid``).
    rewards : numpy.ndarray of float64
    """

    steps: NDArray[np.int64]
    prompts: NDArray[np.int64]
    groups: NDArray[np.int64]
    rewards: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.rewards.size)


class PromptRegistry:
    """Give each distinct prompt key a dense id, keeping a label and a preview of each.

    Long texts are keyed by a 128-bit BLAKE2b digest, so memory grows with
    the number of prompts, not with their length.
    """

    def __init__(self) -> None:
        self._ids: dict[Hashable, int] = {}
        self.labels: list[int | str] = []
        self.previews: list[str] = []

    def __len__(self) -> int:
        return len(self.labels)

    def ids(
        self,
        keys: Sequence[Hashable],
        *,
        texts: Sequence[str] | None = None,
        labels: Sequence[int | str | None] | None = None,
        digest: bool = False,
    ) -> NDArray[np.int64]:
        """Dense id of every key, registering new ones.

        Parameters
        ----------
        keys : sequence of int or str
            One key per rollout.
        texts : sequence of str, optional
            Prompt text of each rollout, for the preview (default: the key).
        labels : sequence of int, str or None, optional
            Label of each rollout's prompt in the report (where None or not
            given: the key, or the first 16 hex digits of its digest).
        digest : bool, default False
            Key by a 128-bit digest of the (string) key.

        Returns
        -------
        numpy.ndarray of int64
        """
        local: dict[Hashable, int] = {}
        inverse = np.fromiter(
            (local.setdefault(key, len(local)) for key in keys), dtype=np.int64, count=len(keys)
        )
        _, first = np.unique(inverse, return_index=True)
        dense = np.empty(len(local), dtype=np.int64)
        for slot, (key, row) in enumerate(zip(local, first.tolist(), strict=True)):
            stored: Hashable = _digest(key) if digest else key
            found = self._ids.get(stored)
            if found is None:
                found = len(self.labels)
                self._ids[stored] = found
                if labels is not None and labels[row] is not None:
                    self.labels.append(labels[row])
                elif isinstance(stored, bytes):
                    self.labels.append(stored.hex()[:16])
                else:
                    self.labels.append(key)  # type: ignore[arg-type]
                text = texts[row] if texts is not None else str(key)
                self.previews.append(" ".join(text[: 2 * KEPT_CHARS].split())[:KEPT_CHARS])
            dense[slot] = found
        return dense[inverse]


def previews(kept: list[str]) -> list[str]:
    """Short previews of prompts, past the text they all start with (a chat template).

    Parameters
    ----------
    kept : list of str
        The start of each prompt's text (whitespace collapsed), as registered.

    Returns
    -------
    list of str
        At most :data:`PREVIEW_CHARS` characters of each, from the first word
        where the prompts differ.
    """
    shared = os.path.commonprefix(kept) if len(kept) > 1 else ""  # noqa: RUF071 - text, not paths
    cut = shared.rfind(" ") + 1 if " " in shared else 0
    shown = []
    for text in kept:
        rest = text[cut:] or text
        shown.append(rest if len(rest) <= PREVIEW_CHARS else rest[: PREVIEW_CHARS - 3] + "...")
    return shown


def _digest(key: Hashable) -> bytes:
    return hashlib.blake2b(str(key).encode("utf-8"), digest_size=16).digest()


def hash64(texts: Sequence[str]) -> NDArray[np.int64]:
    """64-bit BLAKE2b hash of each string (one digest per distinct string)."""
    local: dict[str, int] = {}
    inverse = np.fromiter(
        (local.setdefault(text, len(local)) for text in texts), dtype=np.int64, count=len(texts)
    )
    hashed = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little",
                           signed=True)
            for t in local
        ),
        dtype=np.int64,
        count=len(local),
    )  # fmt: skip
    return hashed[inverse]

"""The order in which prompts reach a policy: epochs without replacement."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_LOADER_STREAM = 0x10ADE7


class Loader:
    """Prompt indices as a shuffling data loader yields them.

    Each epoch is a fresh random permutation of all prompts; a request that
    runs past the end of an epoch continues into the next one. Two loaders
    with the same ``prompts`` and ``seed`` yield the same stream, whatever
    pieces it is taken in, so every policy of a run reads the same sequence
    of prompts, each at its own pace.

    Parameters
    ----------
    prompts : int
        Size of the population.
    seed : int
        Seed of the permutations.

    Attributes
    ----------
    taken : int
        Prompts handed out so far.
    """

    def __init__(self, prompts: int, seed: int) -> None:
        self._prompts = prompts
        self._seed = seed
        self._epoch = -1
        self._order = np.zeros(0, dtype=np.int64)
        self._position = 0
        self.taken = 0

    @property
    def epoch(self) -> int:
        """Index of the epoch the next prompt comes from (0 for the first)."""
        return self.taken // self._prompts

    def take(self, count: int) -> NDArray[np.int64]:
        """Return the next ``count`` prompt indices of the stream."""
        pieces = []
        while count > 0:
            if self._position == self._order.size:
                self._epoch += 1
                rng = np.random.default_rng([self._seed, _LOADER_STREAM, self._epoch])
                self._order = rng.permutation(self._prompts).astype(np.int64)
                self._position = 0
            piece = self._order[self._position : self._position + count]
            self._position += piece.size
            count -= piece.size
            self.taken += piece.size
            pieces.append(piece)
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)

"""Rewards and their cost: the only way a policy learns anything about a prompt.

Every reward is a Bernoulli draw ``u < p`` with ``p`` the prompt's current
success probability and ``u`` a *common random number*: a hash of
``(seed, step, prompt, k)`` where ``k`` counts the prompt's rollouts so far in
the step. Two policies that sample the same prompt at the same step therefore
see the same outcomes for their first rollouts, and differences between
policies come from their decisions, not from luck. The hash is splitmix64's
finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014), applied in sequence to each key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import InvalidArgumentError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_SHIFTS = (np.uint64(30), np.uint64(27), np.uint64(31))
_MANTISSA = np.uint64(11)


def _mix(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Splitmix64's finaliser on an array (uint64 arithmetic wraps around)."""
    z = (z ^ (z >> _SHIFTS[0])) * _MIX_1
    z = (z ^ (z >> _SHIFTS[1])) * _MIX_2
    return z ^ (z >> _SHIFTS[2])


def common_uniforms(
    seed: int, step: int, prompts: NDArray[np.int64], ranks: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Uniform numbers in ``[0, 1)`` keyed by ``(seed, step, prompt, rank)``.

    Parameters
    ----------
    seed, step : int
        Run seed and training step.
    prompts, ranks : numpy.ndarray of int64
        Prompt index and rollout rank of each number; same shape.

    Returns
    -------
    numpy.ndarray of float64
        The same key always gives the same number.
    """
    state = _mix(np.full(prompts.shape, np.uint64(seed), dtype=np.uint64) + _GOLDEN)
    state = _mix(state ^ (np.uint64(step) + _GOLDEN))
    state = _mix(state ^ (prompts.astype(np.uint64) + _GOLDEN))
    state = _mix(state ^ (ranks.astype(np.uint64) + _GOLDEN))
    return (state >> _MANTISSA).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class Groups:
    """Rollout groups: one entry per (prompt, group) pair.

    Attributes
    ----------
    prompts : numpy.ndarray of int64
        Prompt index of each group.
    sizes : numpy.ndarray of int64
        Rollouts in the group.
    successes : numpy.ndarray of int64
        Rollouts that succeeded.
    """

    prompts: NDArray[np.int64]
    sizes: NDArray[np.int64]
    successes: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.prompts.size)

    @property
    def has_gradient(self) -> NDArray[np.bool_]:
        """Groups holding both a success and a failure (a non-zero GRPO advantage)."""
        return (self.successes > 0) & (self.successes < self.sizes)

    @property
    def rollouts(self) -> int:
        """Total rollouts in the groups."""
        return int(self.sizes.sum())

    def select(self, which: NDArray[np.bool_] | NDArray[np.int64] | slice) -> Groups:
        """Return the groups picked by a mask, an index array or a slice."""
        return Groups(self.prompts[which], self.sizes[which], self.successes[which])

    @staticmethod
    def concat(parts: list[Groups]) -> Groups:
        """All groups of ``parts``, in order."""
        if not parts:
            return EMPTY_GROUPS
        return Groups(
            np.concatenate([g.prompts for g in parts]),
            np.concatenate([g.sizes for g in parts]),
            np.concatenate([g.successes for g in parts]),
        )


EMPTY_GROUPS = Groups(
    np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
)


class Environment:
    """Draws the rewards of one run and counts every rollout.

    Parameters
    ----------
    success : numpy.ndarray of float64
        Each prompt's current success probability; read, never written (the
        learning model updates it in place between steps).
    seed : int
        Key of the common random numbers.

    Attributes
    ----------
    spent : int
        Rollouts drawn in the current step.
    total : int
        Rollouts drawn since the start of the run.
    """

    def __init__(self, success: NDArray[np.float64], seed: int) -> None:
        self._success = success
        self._seed = seed
        self._step = -1
        self._budget = 0
        self._ranks = np.zeros(success.size, dtype=np.int64)
        self._touched: list[NDArray[np.int64]] = []
        self.spent = 0
        self.total = 0

    def begin_step(self, step: int, budget: int) -> None:
        """Start step ``step``, whose rollouts may cost at most ``budget``."""
        for prompts in self._touched:
            self._ranks[prompts] = 0
        self._touched.clear()
        self._step = step
        self._budget = budget
        self.spent = 0

    @property
    def left(self) -> int:
        """Rollouts the current step may still draw."""
        return self._budget - self.spent

    def rollout(
        self, prompts: NDArray[np.int64], counts: NDArray[np.int64]
    ) -> tuple[Groups, NDArray[np.bool_]]:
        """Draw ``counts[i]`` rewards for prompt ``prompts[i]``.

        Parameters
        ----------
        prompts : numpy.ndarray of int64
            Prompt indices (repeats allowed: each is its own group).
        counts : numpy.ndarray of int64
            Rollouts per group, ``>= 0``.

        Returns
        -------
        groups : Groups
            One group per entry of ``prompts``.
        rewards : numpy.ndarray of bool
            Every reward, group after group (what a trainer would log).

        Raises
        ------
        InvalidArgumentError
            If the step's budget would be exceeded, or an argument is malformed.
        """
        prompts = np.asarray(prompts, dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        if prompts.shape != counts.shape or prompts.ndim != 1:
            raise InvalidArgumentError(
                f"prompts and counts must be 1-d with one entry per group, got shapes "
                f"{prompts.shape} and {counts.shape}."
            )
        if prompts.size and (prompts.min() < 0 or prompts.max() >= self._success.size):
            raise InvalidArgumentError(
                f"prompt indices must be in [0, {self._success.size}), got "
                f"{int(prompts.min())}..{int(prompts.max())}."
            )
        if counts.size and counts.min() < 0:
            raise InvalidArgumentError(f"counts must be >= 0, got {int(counts.min())}.")
        size = int(counts.sum())
        if size > self.left:
            raise InvalidArgumentError(
                f"a policy asked for {size} rollouts at step {self._step}, but only "
                f"{self.left} of the step's budget of {self._budget} are left."
            )
        group = np.repeat(np.arange(prompts.size), counts)
        rollout_prompts = prompts[group]
        # Rank of each rollout among its prompt's rollouts this step, so that the
        # k-th rollout of a prompt keys the same uniform whichever group it is in.
        starts = np.cumsum(counts) - counts
        within = np.arange(size) - starts[group]
        earlier = _earlier_in_call(prompts, counts)
        ranks = self._ranks[rollout_prompts] + earlier[group] + within
        rewards = (
            common_uniforms(self._seed, self._step, rollout_prompts, ranks)
            < (self._success[rollout_prompts])
        )
        np.add.at(self._ranks, prompts, counts)
        self._touched.append(prompts)
        self.spent += size
        self.total += size
        successes = np.bincount(group[rewards], minlength=prompts.size).astype(np.int64)
        return Groups(prompts, counts, successes), rewards


def _earlier_in_call(prompts: NDArray[np.int64], counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """Rollouts of the same prompt in earlier groups of one call (0 without repeats)."""
    if np.unique(prompts).size == prompts.size:
        return np.zeros_like(counts)
    order = np.argsort(prompts, kind="stable")
    sorted_prompts = prompts[order]
    sorted_counts = counts[order]
    running = np.cumsum(sorted_counts) - sorted_counts
    first = np.r_[True, sorted_prompts[1:] != sorted_prompts[:-1]]
    run_start = np.maximum.accumulate(np.where(first, np.arange(prompts.size), 0))
    earlier = np.empty_like(counts)
    earlier[order] = running - running[run_start]
    return earlier

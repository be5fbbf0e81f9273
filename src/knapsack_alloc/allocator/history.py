"""Per-prompt reward windows for many prompts, stored in numpy ring buffers.

:class:`RewardHistory` keeps, for every prompt it has seen, the successes of
its most recent ``window`` rewards, how many rewards it has seen in total, the
size and successes of its latest update, and a running mean of its
per-rollout cost. A :class:`~knapsack_alloc.allocator.prompt_index.PromptIndex`
maps prompt ids to rows; everything else lives in flat arrays, so a million
prompts with a 16-reward window take tens of megabytes, and an update is a
handful of vectorised numpy operations whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.allocator.prompt_index import IdKind, PromptIndex, expect_array
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.values import BetaPosterior

_FIRST_CAPACITY = 1024
#: Rollouts of an update processed together; larger updates go a group of
#: prompts at a time, which bounds their temporary memory.
UPDATE_CHUNK = 1 << 19
# The arrays of the statistics, with their dtype and the shape of one row.
_ROW_ARRAYS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "total": (np.int64, ()),
    "last_n": (np.int32, ()),
    "last_s": (np.int32, ()),
    "cost_mean": (np.float64, ()),
    "cost_n": (np.int64, ()),
}


@dataclass(frozen=True)
class WindowCounts:
    """Reward counts behind each prompt's estimate.

    Attributes
    ----------
    successes, trials : numpy.ndarray of int64
        Successes and rewards in the estimation window: the most recent
        ``window`` rewards, or all rewards of the latest update when that
        update alone held ``window`` or more for the prompt. Both 0 for a
        prompt never seen.
    total : numpy.ndarray of int64
        Rewards seen in total for the prompt.
    """

    successes: NDArray[np.int64]
    trials: NDArray[np.int64]
    total: NDArray[np.int64]

    def beliefs(self, prior: tuple[float, float]) -> BetaPosterior:
        """Each prompt's ``Beta(a + successes, b + failures)`` under ``prior = (a, b)``."""
        return BetaPosterior._from_checked(self.successes, self.trials - self.successes, prior)

    @cached_property
    def rates(self) -> NDArray[np.float64]:
        """Window success rate of each prompt (NaN for a prompt without rewards), read-only."""
        rates = np.full(self.trials.shape, np.nan)
        np.divide(self.successes, self.trials, out=rates, where=self.trials > 0)
        rates.flags.writeable = False
        return rates


@dataclass
class UpdateSummary:
    """Counts over one update's prompts (a prompt's rollouts form its group).

    Attributes
    ----------
    rollouts, new_prompts : int
        Rewards in the update, and prompts seen for the first time.
    prompts, successes : int
        Distinct prompts, and successful rollouts.
    prompts_with_gradient, rollouts_with_gradient : int
        Prompts whose rewards are not all equal (a GRPO gradient), and their rollouts.
    prompts_all_correct, prompts_all_wrong : int
        Prompts whose rollouts all succeeded, or all failed.
    """

    rollouts: int
    new_prompts: int
    prompts: int = 0
    successes: int = 0
    prompts_with_gradient: int = 0
    rollouts_with_gradient: int = 0
    prompts_all_correct: int = 0
    prompts_all_wrong: int = 0

    def add(
        self, sizes: NDArray[np.int64], wins: NDArray[np.int64], mixed: NDArray[np.bool_]
    ) -> None:
        """Count groups of ``sizes`` rollouts with ``wins`` successes; ``mixed`` have a gradient."""
        self.prompts += int(sizes.size)
        self.successes += int(wins.sum())
        self.prompts_with_gradient += int(mixed.sum())
        self.rollouts_with_gradient += int(sizes[mixed].sum())
        self.prompts_all_correct += int((wins == sizes).sum())
        self.prompts_all_wrong += int((wins == 0).sum())


class RewardHistory:
    """Success windows and rollout costs of every tracked prompt.

    Parameters
    ----------
    window : int, default 16
        Number of most recent rewards kept per prompt.

    Attributes
    ----------
    index : PromptIndex
        Row of each tracked prompt id.
    revision : int
        Number of non-empty updates recorded, to key caches of derived values.

    Notes
    -----
    Memory per tracked prompt: ``window`` bytes of successes, 32 bytes of
    counters and cost statistics, and its entry in the index. Arrays grow by
    doubling.
    """

    def __init__(self, window: int = 16) -> None:
        self.window = window
        self.index = PromptIndex()
        self._success = np.zeros((0, window), dtype=np.int8)
        self._total = np.zeros(0, dtype=np.int64)
        self._last_n = np.zeros(0, dtype=np.int32)
        self._last_s = np.zeros(0, dtype=np.int32)
        self._cost_mean = np.zeros(0, dtype=np.float64)
        self._cost_n = np.zeros(0, dtype=np.int64)
        # hist[n, s]: number of tracked prompts whose ring holds n rewards, s successes.
        self._hist = np.zeros((window + 1, window + 1), dtype=np.int64)
        self.revision = 0
        self._reserve(1)

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"RewardHistory(prompts={len(self)}, window={self.window})"

    @property
    def id_kind(self) -> IdKind | None:
        """Kind of the tracked prompt ids, None before the first."""
        return self.index.kind

    def check_kind(self, kind: IdKind | None, name: str) -> None:
        """See :meth:`PromptIndex.check_kind`."""
        self.index.check_kind(kind, name)

    def lookup(self, ids: NDArray[Any]) -> NDArray[np.int64]:
        """See :meth:`PromptIndex.lookup`."""
        return self.index.lookup(ids)

    def counts(self, rows: NDArray[np.int64]) -> WindowCounts:
        """Window successes, trials and totals for ``rows`` (-1 rows give zeros).

        Parameters
        ----------
        rows : numpy.ndarray of int64
            Rows from :meth:`lookup`.

        Returns
        -------
        WindowCounts
        """
        # Row `len(self)` is never written before it is inserted: all zeros.
        safe = np.where(rows >= 0, rows, len(self))
        total = self._total[safe]
        ring_s = self._success[safe].sum(axis=1, dtype=np.int64)
        last_n = self._last_n[safe].astype(np.int64)
        large = last_n >= self.window
        return WindowCounts(
            successes=np.where(large, self._last_s[safe], ring_s),
            trials=np.where(large, last_n, np.minimum(total, self.window)),
            total=total,
        )

    def costs(self, rows: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Tracked mean per-rollout cost of ``rows`` and whether one is known.

        Parameters
        ----------
        rows : numpy.ndarray of int64
            Rows from :meth:`lookup`.

        Returns
        -------
        mean : numpy.ndarray of float64
            Mean cost (0 where unknown).
        known : numpy.ndarray of bool
            True where the prompt has reported costs.
        """
        safe = np.where(rows >= 0, rows, 0)
        known = (rows >= 0) & (self._cost_n[safe] > 0)
        return np.where(known, self._cost_mean[safe], 0.0), known

    def mean_cost(self) -> float | None:
        """Average of the tracked mean costs over prompts that reported costs."""
        reported = self._cost_n[: len(self)] > 0
        if not reported.any():
            return None
        return float(self._cost_mean[: len(self)][reported].mean())

    def window_histogram(self) -> NDArray[np.int64]:
        """Return the count of tracked prompts by ``(rewards in ring, successes in ring)``.

        Returns
        -------
        numpy.ndarray of int64, shape (window + 1, window + 1)
            A read-only view; entry ``[n, s]`` counts prompts whose ring holds
            ``n`` rewards of which ``s`` are successes.
        """
        view = self._hist.view()
        view.flags.writeable = False
        return view

    def record(
        self,
        ids: NDArray[Any],
        kind: IdKind | None,
        success: NDArray[np.bool_],
        costs: NDArray[np.float64] | None = None,
        rewards: NDArray[Any] | None = None,
    ) -> UpdateSummary:
        """Append one update's rewards (already validated).

        Parameters
        ----------
        ids : numpy.ndarray
            Prompt id of each rollout.
        kind : {'int', 'str'} or None
            Kind of ``ids``; checked with :meth:`check_kind` beforehand.
        success : numpy.ndarray of bool
            Whether each rollout succeeded.
        costs : numpy.ndarray of float64, optional
            Positive cost of each rollout.
        rewards : numpy.ndarray, optional
            The raw rewards behind ``success``; a prompt whose rewards are not
            all equal has a GRPO gradient. Default: ``success``.

        Returns
        -------
        UpdateSummary
            What the update held, for the caller's metrics.

        Notes
        -----
        Large updates are processed a group of prompts at a time, each group
        holding about :data:`UPDATE_CHUNK` rollouts, so the temporary memory
        stays bounded (about 100 bytes a rollout of a group, plus 18 bytes a
        rollout of the whole update); the result is the same as at once.
        """
        raw = success if rewards is None else rewards
        rows, new = self.index.rows(ids, kind)
        self._reserve(len(self) + 1)  # keep a zero row at index `len(self)` for unknown ids
        self._hist[0, 0] += new
        summary = UpdateSummary(rollouts=ids.size, new_prompts=new)
        if not ids.size:
            return summary
        self.revision += 1
        if ids.size <= UPDATE_CHUNK:
            self._record_group(rows, success, costs, raw, summary)
            return summary
        for group in _groups_of_prompts(rows, len(self)):
            self._record_group(rows[group], success[group],
                               None if costs is None else costs[group], raw[group],
                               summary)  # fmt: skip
        return summary

    def _record_group(
        self,
        row_of: NDArray[np.int64],
        success: NDArray[np.bool_],
        costs: NDArray[np.float64] | None,
        raw: NDArray[Any],
        summary: UpdateSummary,
    ) -> None:
        """Record the rollouts of a set of prompts that holds all of their rollouts."""
        size = row_of.size
        order = np.argsort(row_of, kind="stable")
        sorted_rows = row_of[order]
        boundary = np.ones(size, dtype=np.bool_)
        np.not_equal(sorted_rows[1:], sorted_rows[:-1], out=boundary[1:])
        starts = np.flatnonzero(boundary)
        rows = sorted_rows[starts]
        sizes = np.diff(np.append(starts, size))
        group = np.cumsum(boundary) - 1
        rank = np.arange(size) - starts[group]
        success_sorted = success[order]
        wins = np.add.reduceat(success_sorted.astype(np.int64), starts)
        # Only the last `window` rewards of a prompt reach its ring: no slot is written twice.
        keep = rank >= (sizes - self.window)[group]
        ring_rows = rows[group[keep]]
        slots = (self._total[ring_rows] + rank[keep]) % self.window

        old_n = np.minimum(self._total[rows], self.window)
        old_s = self._success[rows].sum(axis=1, dtype=np.int64)
        self._success[ring_rows, slots] = success_sorted[keep]
        self._total[rows] += sizes
        self._last_n[rows] = np.minimum(sizes, np.iinfo(np.int32).max)
        self._last_s[rows] = np.minimum(wins, np.iinfo(np.int32).max)
        new_n = np.minimum(self._total[rows], self.window)
        new_s = self._success[rows].sum(axis=1, dtype=np.int64)
        self._shift_hist(old_n, old_s, -1)
        self._shift_hist(new_n, new_s, +1)
        if costs is not None:
            self._record_costs(rows, np.add.reduceat(costs[order], starts) / sizes, sizes)
        raw_sorted = raw[order]
        mixed = np.minimum.reduceat(raw_sorted, starts) != np.maximum.reduceat(raw_sorted, starts)
        summary.add(sizes, wins, mixed)

    def _record_costs(
        self, rows: NDArray[np.int64], batch_mean: NDArray[np.float64], sizes: NDArray[np.int64]
    ) -> None:
        seen = self._cost_n[rows]
        weight = sizes / np.minimum(seen + sizes, np.maximum(self.window, sizes))
        self._cost_mean[rows] += weight * (batch_mean - self._cost_mean[rows])
        self._cost_n[rows] = seen + sizes

    def _shift_hist(self, n: NDArray[np.int64], s: NDArray[np.int64], sign: int) -> None:
        flat = np.bincount(n * (self.window + 1) + s, minlength=self._hist.size)
        self._hist += sign * flat.reshape(self._hist.shape)

    def _reserve(self, size: int) -> None:
        capacity = self._total.size
        if size <= capacity:
            return
        capacity = max(size, 2 * capacity, _FIRST_CAPACITY)
        self._success = _grown(self._success, capacity)
        for name in _ROW_ARRAYS:
            setattr(self, f"_{name}", _grown(getattr(self, f"_{name}"), capacity))

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        """Return the state as numeric arrays (no Python objects), trimmed to size.

        Returns
        -------
        dict of str to numpy.ndarray
            The index's ids (see :meth:`PromptIndex.to_arrays`), then
            ``success``, ``total``, ``last_n``, ``last_s``, ``cost_mean``,
            ``cost_n``.
        """
        n = len(self)
        arrays = self.index.to_arrays()
        arrays["success"] = self._success[:n].copy()
        for name in _ROW_ARRAYS:
            arrays[name] = getattr(self, f"_{name}")[:n].copy()
        return arrays

    @classmethod
    def from_arrays(
        cls, window: int, id_kind: IdKind | None, arrays: dict[str, NDArray[Any]]
    ) -> RewardHistory:
        """Rebuild a history from :meth:`to_arrays` output, checking every array.

        Parameters
        ----------
        window : int
            Window the arrays were saved with.
        id_kind : {'int', 'str'} or None
            Kind of the saved ids.
        arrays : dict of str to numpy.ndarray
            As returned by :meth:`to_arrays`.

        Returns
        -------
        RewardHistory

        Raises
        ------
        InvalidArgumentError
            If an array is missing, has the wrong dtype or shape, or holds
            inconsistent values.
        """
        index = PromptIndex.from_arrays(id_kind, arrays)
        n = len(index)
        expect_array(arrays, "success", np.int8, (n, window))
        for name, (dtype, row) in _ROW_ARRAYS.items():
            expect_array(arrays, name, dtype, (n, *row))
        success, total = arrays["success"], arrays["total"]
        last_n, last_s = arrays["last_n"], arrays["last_s"]
        cost_mean, cost_n = arrays["cost_mean"], arrays["cost_n"]
        checks = [
            ("success holds values other than 0 and 1", ((success != 0) & (success != 1)).any()),
            ("total is negative", (total < 0).any()),
            ("last_n is outside [0, total]", ((last_n < 0) | (last_n > total)).any()),
            ("last_s is outside [0, last_n]", ((last_s < 0) | (last_s > last_n)).any()),
            (
                "success has ones beyond the rewards seen",
                (success.sum(axis=1) > np.minimum(total, window)).any(),
            ),
            ("cost_n is negative", (cost_n < 0).any()),
            (
                "cost_mean is negative or not finite",
                (~np.isfinite(cost_mean) | (cost_mean < 0)).any(),
            ),
        ]
        for message, failed in checks:
            if failed:
                raise InvalidArgumentError(f"Inconsistent saved history: {message}.")
        history = cls(window)
        history.index = index
        capacity = max(n + 1, _FIRST_CAPACITY)
        history._success = _grown(success, capacity)
        for name in _ROW_ARRAYS:
            setattr(history, f"_{name}", _grown(arrays[name], capacity))
        history._shift_hist(np.minimum(total, window), success.sum(axis=1, dtype=np.int64), +1)
        return history


def _groups_of_prompts(rows: NDArray[np.int64], tracked: int) -> list[NDArray[np.int64]]:
    """Split rollouts into groups of whole prompts, about ``UPDATE_CHUNK`` rollouts each.

    Groups are ranges of rows; each lists its rollouts' positions in input
    order (a stable radix sort by group number).
    """
    ends = np.cumsum(np.bincount(rows, minlength=tracked))  # rollouts of rows 0..r
    # A group ends at the first row where the rollouts so far reach a multiple of the chunk.
    cuts = np.searchsorted(ends, np.arange(UPDATE_CHUNK, rows.size, UPDATE_CHUNK), side="left")
    bounds = np.unique(np.concatenate(([0], cuts + 1, [tracked])))
    number = np.min_scalar_type(bounds.size)
    group_of_row = np.repeat(np.arange(bounds.size - 1, dtype=number), np.diff(bounds))
    order = np.argsort(group_of_row[rows], kind="stable")
    sizes = np.diff(ends[bounds[1:] - 1], prepend=0)
    return [group for group in np.split(order, np.cumsum(sizes)[:-1]) if group.size]


def _grown(array: NDArray[Any], capacity: int) -> NDArray[Any]:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: array.shape[0]] = array
    return grown

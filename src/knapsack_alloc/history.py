"""Per-prompt reward windows for many prompts, stored in numpy ring buffers.

:class:`RewardHistory` keeps, for every prompt it has seen, the successes of
its most recent ``window`` rewards, how many rewards it has seen in total, the
size and successes of its latest update, and a running mean of its
per-rollout cost. Prompt ids (ints or strings) map to rows through one dict;
everything else lives in flat arrays, so a million prompts with a 16-reward
window take tens of megabytes, and an update is a handful of vectorised
numpy operations whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import InvalidArgumentError

IdKind = Literal["int", "str"]

_INT64_MAX = np.iinfo(np.int64).max
_FIRST_CAPACITY = 1024
#: Rollouts of an update processed together; larger updates go a group of
#: prompts at a time, which bounds their temporary memory.
UPDATE_CHUNK = 1 << 19
# Int ids in [0, max(_DENSE_MIN, _DENSE_FACTOR * prompts)) use a dense id -> row array.
_DENSE_MIN = 1 << 20
_DENSE_FACTOR = 4


def as_prompt_ids(ids: Any, name: str) -> tuple[NDArray[Any], IdKind | None]:
    """Convert prompt ids to a 1-d int64 or unicode array.

    Parameters
    ----------
    ids : sequence of int or sequence of str or numpy.ndarray
        One id per entry: all ints (a dataset index) or all strings (a hash of
        the prompt).
    name : str
        Argument name used in error messages.

    Returns
    -------
    ids : numpy.ndarray
        int64 array or numpy unicode array.
    kind : {'int', 'str'} or None
        The kind of id, None when ``ids`` is empty.

    Raises
    ------
    TypeError
        If ``ids`` is a scalar, or holds something other than ints or strings,
        or mixes the two.
    InvalidArgumentError
        If ``ids`` is not 1-dimensional or an int id does not fit in int64.
    """
    if isinstance(ids, (set, frozenset, dict)):
        raise TypeError(
            f"{name} must be an ordered sequence (list, tuple or array), not a "
            f"{type(ids).__name__}."
        )
    if isinstance(ids, (str, bytes)) or np.ndim(ids) == 0:
        raise TypeError(
            f"{name} must be a 1-d sequence of prompt ids, got the scalar {ids!r}; "
            "wrap a single id in a list."
        )
    if not isinstance(ids, np.ndarray):
        kinds = set(map(type, ids))
        if not kinds:
            return np.empty(0, dtype=np.int64), None
        if all(issubclass(k, str) for k in kinds):
            return np.asarray(ids, dtype=np.str_), "str"
        if all(
            issubclass(k, (int, np.integer)) and not issubclass(k, (bool, np.bool_)) for k in kinds
        ):
            try:
                return np.asarray(ids, dtype=np.int64), "int"
            except OverflowError:
                raise InvalidArgumentError(
                    f"{name} holds an int id outside the int64 range; "
                    "use ids below 2**63 or pass them as strings."
                ) from None
        names = ", ".join(sorted(k.__name__ for k in kinds))
        raise TypeError(
            f"{name} must hold only ints or only strings, got elements of type: {names}."
        )
    array = _check_1d(ids, name)
    if array.dtype.kind in "iu":
        if array.dtype.kind == "u" and array.size and int(array.max()) > _INT64_MAX:
            raise InvalidArgumentError(
                f"{name} holds an int id outside the int64 range; "
                "use ids below 2**63 or pass them as strings."
            )
        return array.astype(np.int64, copy=False), ("int" if array.size else None)
    if array.dtype.kind == "U":
        return array, ("str" if array.size else None)
    if array.dtype.kind == "O":
        return as_prompt_ids(array.tolist(), name)
    raise TypeError(
        f"{name} must hold ints or strings, got an array of dtype {array.dtype}; "
        "convert float or bytes ids to int or str first."
    )


def _check_1d(array: NDArray[Any], name: str) -> NDArray[Any]:
    if array.ndim != 1:
        raise InvalidArgumentError(
            f"{name} must be 1-dimensional (one id per entry), got shape {array.shape}."
        )
    return array


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

    Notes
    -----
    Memory per tracked prompt: ``window`` bytes of successes, 32 bytes of
    counters and cost statistics, and one dict entry from id to row (about
    100 bytes for an int id). Arrays grow by doubling.
    """

    def __init__(self, window: int = 16) -> None:
        self.window = window
        self.id_kind: IdKind | None = None
        # Non-negative int ids below a bound map to rows through a dense array
        # (`_dense[id]`, -1 if unseen); other ids through the dict `_rows`.
        self._dense: NDArray[np.int64] | None = np.full(0, -1, dtype=np.int64)
        self._rows: dict[Any, int] = {}
        self._keys: list[Any] = []
        self._size = 0
        self._success = np.zeros((0, window), dtype=np.int8)
        self._total = np.zeros(0, dtype=np.int64)
        self._last_n = np.zeros(0, dtype=np.int32)
        self._last_s = np.zeros(0, dtype=np.int32)
        self._cost_mean = np.zeros(0, dtype=np.float64)
        self._cost_n = np.zeros(0, dtype=np.int64)
        # hist[n, s]: number of tracked prompts whose ring holds n rewards, s successes.
        self._hist = np.zeros((window + 1, window + 1), dtype=np.int64)
        #: Number of non-empty updates recorded, to key caches of derived values.
        self.revision = 0
        self._reserve(1)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"RewardHistory(prompts={self._size}, window={self.window})"

    def check_kind(self, kind: IdKind | None, name: str) -> None:
        """Raise ``TypeError`` if ids of ``kind`` cannot be used with this history.

        Parameters
        ----------
        kind : {'int', 'str'} or None
            Kind of the ids about to be used (None for no ids).
        name : str
            Argument name used in the error message.
        """
        if kind is not None and self.id_kind is not None and kind != self.id_kind:
            raise TypeError(
                f"{name} are {kind} ids, but this allocator tracks {self.id_kind} ids; "
                "use one kind of prompt id throughout."
            )

    def lookup(self, ids: NDArray[Any]) -> NDArray[np.int64]:
        """Rows of ``ids``, -1 for ids never seen.

        Parameters
        ----------
        ids : numpy.ndarray
            Ids as returned by :func:`as_prompt_ids`.

        Returns
        -------
        numpy.ndarray of int64
        """
        dense = self._dense
        if dense is None:
            # Look each distinct id up once: lookups in the big dict miss the CPU cache.
            first, inverse = _distinct(ids)
            rows = map(self._rows.get, ids[first].tolist(), repeat(-1))
            return np.fromiter(rows, dtype=np.int64, count=first.size)[inverse]
        found = np.full(ids.size, -1, dtype=np.int64)
        if ids.dtype.kind == "i":
            inside = (ids >= 0) & (ids < dense.size)
            found[inside] = dense[ids[inside]]
        return found

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
        # Row `_size` is never written before it is inserted: all zeros.
        safe = np.where(rows >= 0, rows, self._size)
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
        reported = self._cost_n[: self._size] > 0
        if not reported.any():
            return None
        return float(self._cost_mean[: self._size][reported].mean())

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
        rows, new = self._rows_of(ids, kind)
        summary = UpdateSummary(rollouts=ids.size, new_prompts=new)
        if not ids.size:
            return summary
        self.revision += 1
        if ids.size <= UPDATE_CHUNK:
            self._record_group(rows, success, costs, raw, summary)
            return summary
        for group in _groups_of_prompts(rows, self._size):
            self._record_group(rows[group], success[group],
                               None if costs is None else costs[group], raw[group],
                               summary)  # fmt: skip
        return summary

    def _rows_of(self, ids: NDArray[Any], kind: IdKind | None) -> tuple[NDArray[np.int64], int]:
        """Row of every rollout's prompt, rows appended (in sorted id order) for new prompts."""
        size = ids.size
        rows = np.empty(size, dtype=np.int64)
        missing = []
        for start in range(0, size, UPDATE_CHUNK):
            chunk = ids[start : start + UPDATE_CHUNK]
            # Rollouts of one prompt usually come in runs: look up each run once
            # (lookup itself looks each distinct id up once).
            heads = np.ones(chunk.size, dtype=np.bool_)
            np.not_equal(chunk[1:], chunk[:-1], out=heads[1:])
            run_starts = np.flatnonzero(heads)
            found = self.lookup(chunk[run_starts])
            run_lengths = np.diff(run_starts, append=chunk.size)
            rows[start : start + chunk.size] = np.repeat(found, run_lengths)
            if (found < 0).any():
                missing.append(np.unique(chunk[run_starts[found < 0]]))
        if not missing:
            return rows, 0
        new_ids = np.unique(np.concatenate(missing))
        self._insert(new_ids, kind)
        for start in range(0, size, UPDATE_CHUNK):
            part = rows[start : start + UPDATE_CHUNK]
            unknown = np.flatnonzero(part < 0)
            if unknown.size:
                part[unknown] = self.lookup(ids[start + unknown])
        return rows, int(new_ids.size)

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

    def _insert(self, keys: NDArray[Any], kind: IdKind | None) -> NDArray[np.int64]:
        if self.id_kind is None:
            self.id_kind = kind
        start = self._size
        stop = start + keys.size
        self._reserve(stop + 1)  # keep a zero row at index `_size` for unknown ids
        self._index(keys, start)
        self._size = stop
        self._hist[0, 0] += keys.size
        return np.arange(start, stop, dtype=np.int64)

    def _index(self, keys: NDArray[Any], start: int) -> None:
        """Map ``keys`` (new, distinct) to rows ``start, start + 1, ...``."""
        rows = np.arange(start, start + keys.size, dtype=np.int64)
        listed = keys.tolist()
        dense = self._dense
        if dense is not None and keys.size and keys.dtype.kind == "i":
            low, high = int(keys.min()), int(keys.max())
            if low >= 0 and high < max(_DENSE_MIN, _DENSE_FACTOR * (start + keys.size)):
                if high >= dense.size:
                    grown = np.full(max(high + 1, 2 * dense.size), -1, dtype=np.int64)
                    grown[: dense.size] = dense
                    self._dense = dense = grown
                dense[keys] = rows
                self._keys.extend(listed)
                return
        if dense is not None and keys.size:
            self._rows = dict(zip(self._keys, range(start), strict=True))
            self._dense = None
        self._rows.update(zip(listed, rows.tolist(), strict=True))
        self._keys.extend(listed)

    def _reserve(self, size: int) -> None:
        capacity = self._total.size
        if size <= capacity:
            return
        capacity = max(size, 2 * capacity, _FIRST_CAPACITY)
        self._success = _grown(self._success, capacity)
        self._total = _grown(self._total, capacity)
        self._last_n = _grown(self._last_n, capacity)
        self._last_s = _grown(self._last_s, capacity)
        self._cost_mean = _grown(self._cost_mean, capacity)
        self._cost_n = _grown(self._cost_n, capacity)

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        """Return the state as numeric arrays (no Python objects), trimmed to size.

        Returns
        -------
        dict of str to numpy.ndarray
            ``ids`` (int64) for int ids, or ``ids_utf8`` (uint8) and
            ``ids_offsets`` (int64) for string ids; ``success``, ``total``,
            ``last_n``, ``last_s``, ``cost_mean``, ``cost_n``.
        """
        n = self._size
        arrays: dict[str, NDArray[Any]] = {}
        if self.id_kind == "str":
            encoded = [k.encode("utf-8") for k in self._keys]
            lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
            arrays["ids_utf8"] = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
            arrays["ids_offsets"] = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        else:
            arrays["ids"] = np.array(self._keys, dtype=np.int64).reshape(n)
        arrays["success"] = self._success[:n].copy()
        arrays["total"] = self._total[:n].copy()
        arrays["last_n"] = self._last_n[:n].copy()
        arrays["last_s"] = self._last_s[:n].copy()
        arrays["cost_mean"] = self._cost_mean[:n].copy()
        arrays["cost_n"] = self._cost_n[:n].copy()
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
        keys = _decode_ids(id_kind, arrays)
        n = len(keys)
        expected = {
            "success": (np.int8, (n, window)),
            "total": (np.int64, (n,)),
            "last_n": (np.int32, (n,)),
            "last_s": (np.int32, (n,)),
            "cost_mean": (np.float64, (n,)),
            "cost_n": (np.int64, (n,)),
        }
        for name, (dtype, shape) in expected.items():
            _expect_array(arrays, name, dtype, shape)
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
        key_array = np.array(keys, dtype=np.str_ if id_kind == "str" else np.int64).reshape(n)
        if np.unique(key_array).size != n:
            raise InvalidArgumentError("Inconsistent saved history: prompt ids are not unique.")
        history = cls(window)
        history.id_kind = id_kind if n else None
        history._index(key_array, 0)
        history._size = n
        capacity = max(n + 1, _FIRST_CAPACITY)
        history._success = _grown(success, capacity)
        history._total = _grown(total, capacity)
        history._last_n = _grown(last_n, capacity)
        history._last_s = _grown(last_s, capacity)
        history._cost_mean = _grown(cost_mean, capacity)
        history._cost_n = _grown(cost_n, capacity)
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


# FNV-1a's 64-bit prime: a multiplier that spreads code points over all bits.
_HASH_MULTIPLIER = np.uint64(1099511628211)


def _distinct(ids: NDArray[Any]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """First index of each distinct id, and for each id the number of its distinct id.

    Strings are grouped by a 64-bit hash computed column by column in numpy,
    far cheaper than hashing each one in Python; the grouping is then checked
    against the strings, and a hash collision falls back to sorting them.
    """
    if ids.dtype.kind == "U" and ids.size:
        codes = np.ascontiguousarray(ids).view(np.uint32).reshape(ids.size, -1)
        hashed = np.zeros(ids.size, dtype=np.uint64)
        for column in codes.T:
            hashed = (hashed ^ column) * _HASH_MULTIPLIER
        _, first, inverse = np.unique(hashed, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        if np.array_equal(ids[first][inverse], ids):
            return first, inverse
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def _grown(array: NDArray[Any], capacity: int) -> NDArray[Any]:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: array.shape[0]] = array
    return grown


def _expect_array(
    arrays: dict[str, NDArray[Any]], name: str, dtype: Any, shape: tuple[int, ...]
) -> None:
    if name not in arrays:
        raise InvalidArgumentError(f"Saved history lacks the array {name!r}.")
    array = arrays[name]
    if not isinstance(array, np.ndarray) or array.dtype != np.dtype(dtype) or array.shape != shape:
        got = (
            f"dtype {array.dtype}, shape {array.shape}"
            if isinstance(array, np.ndarray)
            else type(array).__name__
        )
        raise InvalidArgumentError(
            f"Saved history array {name!r} must have dtype {np.dtype(dtype)} and shape {shape}, "
            f"got {got}."
        )


def _decode_ids(id_kind: IdKind | None, arrays: dict[str, NDArray[Any]]) -> list[Any]:
    if id_kind == "str":
        offsets = arrays.get("ids_offsets")
        if not isinstance(offsets, np.ndarray) or offsets.ndim != 1 or offsets.size == 0:
            raise InvalidArgumentError("Saved history array 'ids_offsets' must be 1-d, non-empty.")
        _expect_array(arrays, "ids_offsets", np.int64, offsets.shape)
        if offsets[0] != 0 or (np.diff(offsets) < 0).any():
            raise InvalidArgumentError("Saved history array 'ids_offsets' must rise from 0.")
        _expect_array(arrays, "ids_utf8", np.uint8, (int(offsets[-1]),))
        data = arrays["ids_utf8"].tobytes()
        bounds = zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
        try:
            return [data[a:b].decode("utf-8") for a, b in bounds]
        except UnicodeDecodeError:
            raise InvalidArgumentError("Saved history string ids are not valid UTF-8.") from None
    if id_kind == "int" or id_kind is None:
        ids = arrays.get("ids")
        if not isinstance(ids, np.ndarray) or ids.dtype != np.int64 or ids.ndim != 1:
            raise InvalidArgumentError("Saved history array 'ids' must be a 1-d int64 array.")
        if id_kind is None and ids.size:
            raise InvalidArgumentError("Saved history has ids but no id kind.")
        return list(ids.tolist())
    raise InvalidArgumentError(f"Saved history id kind must be 'int' or 'str', got {id_kind!r}.")

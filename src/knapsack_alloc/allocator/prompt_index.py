"""Prompt ids to rows: the index behind the reward history.

Prompt ids are ints (a dataset index) or strings (a hash of the prompt);
each tracked prompt owns one row of the history's arrays. Non-negative int
ids below a bound map to rows through a dense array (``dense[id]``, -1 if
unseen); other ids go through one dict, looked up once per distinct id.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import InvalidArgumentError, InvalidArgumentTypeError

IdKind = Literal["int", "str"]

_INT64_MAX = np.iinfo(np.int64).max
#: Ids of an update looked up together; larger updates go a chunk at a time.
LOOKUP_CHUNK = 1 << 19
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
        raise InvalidArgumentTypeError(
            f"{name} must be an ordered sequence (list, tuple or array), not a "
            f"{type(ids).__name__}."
        )
    if isinstance(ids, (str, bytes)) or np.ndim(ids) == 0:
        raise InvalidArgumentTypeError(
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
        raise InvalidArgumentTypeError(
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
    raise InvalidArgumentTypeError(
        f"{name} must hold ints or strings, got an array of dtype {array.dtype}; "
        "convert float or bytes ids to int or str first."
    )


def _check_1d(array: NDArray[Any], name: str) -> NDArray[Any]:
    if array.ndim != 1:
        raise InvalidArgumentError(
            f"{name} must be 1-dimensional (one id per entry), got shape {array.shape}."
        )
    return array


class PromptIndex:
    """Rows of the prompts seen so far, in the order they were first seen.

    Notes
    -----
    Memory per prompt: one list entry and, for ids that are not small
    non-negative ints, one dict entry (about 100 bytes for an int id).
    """

    def __init__(self) -> None:
        self.kind: IdKind | None = None
        self._dense: NDArray[np.int64] | None = np.full(0, -1, dtype=np.int64)
        self._rows: dict[Any, int] = {}
        self._keys: list[Any] = []

    def __len__(self) -> int:
        return len(self._keys)

    def check_kind(self, kind: IdKind | None, name: str) -> None:
        """Raise ``InvalidArgumentTypeError`` if ids of ``kind`` cannot be used with this index.

        Parameters
        ----------
        kind : {'int', 'str'} or None
            Kind of the ids about to be used (None for no ids).
        name : str
            Argument name used in the error message.
        """
        if kind is not None and self.kind is not None and kind != self.kind:
            raise InvalidArgumentTypeError(
                f"{name} are {kind} ids, but this allocator tracks {self.kind} ids; "
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

    def rows(self, ids: NDArray[Any], kind: IdKind | None) -> tuple[NDArray[np.int64], int]:
        """Row of every id, adding the new ones (in sorted id order) after the others.

        Parameters
        ----------
        ids : numpy.ndarray
            Ids as returned by :func:`as_prompt_ids`, checked with :meth:`check_kind`.
        kind : {'int', 'str'} or None
            Their kind.

        Returns
        -------
        rows : numpy.ndarray of int64
        new : int
            Number of ids seen for the first time.
        """
        size = ids.size
        rows = np.empty(size, dtype=np.int64)
        missing = []
        for start in range(0, size, LOOKUP_CHUNK):
            chunk = ids[start : start + LOOKUP_CHUNK]
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
        if self.kind is None:
            self.kind = kind
        self._add(new_ids)
        for start in range(0, size, LOOKUP_CHUNK):
            part = rows[start : start + LOOKUP_CHUNK]
            unknown = np.flatnonzero(part < 0)
            if unknown.size:
                part[unknown] = self.lookup(ids[start + unknown])
        return rows, int(new_ids.size)

    def _add(self, keys: NDArray[Any]) -> None:
        """Map ``keys`` (new, distinct) to the next rows."""
        start = len(self._keys)
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

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        """Return the ids as numeric arrays, in row order.

        Returns
        -------
        dict of str to numpy.ndarray
            ``ids`` (int64) for int ids, or ``ids_utf8`` (uint8) and
            ``ids_offsets`` (int64) for string ids.
        """
        n = len(self._keys)
        if self.kind == "str":
            encoded = [k.encode("utf-8") for k in self._keys]
            lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
            return {
                "ids_utf8": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
                "ids_offsets": np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
            }
        return {"ids": np.array(self._keys, dtype=np.int64).reshape(n)}

    @classmethod
    def from_arrays(cls, kind: IdKind | None, arrays: dict[str, NDArray[Any]]) -> PromptIndex:
        """Rebuild an index from :meth:`to_arrays` output, checking it.

        Raises
        ------
        InvalidArgumentError
            If the arrays are missing or malformed, or the ids are not unique.
        """
        keys = _decode_ids(kind, arrays)
        n = len(keys)
        key_array = np.array(keys, dtype=np.str_ if kind == "str" else np.int64).reshape(n)
        if np.unique(key_array).size != n:
            raise InvalidArgumentError("Inconsistent saved history: prompt ids are not unique.")
        index = cls()
        index.kind = kind if n else None
        index._add(key_array)
        return index


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


def expect_array(
    arrays: dict[str, NDArray[Any]], name: str, dtype: Any, shape: tuple[int, ...]
) -> None:
    """Raise ``InvalidArgumentError`` unless ``arrays[name]`` has ``dtype`` and ``shape``."""
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
        expect_array(arrays, "ids_offsets", np.int64, offsets.shape)
        if offsets[0] != 0 or (np.diff(offsets) < 0).any():
            raise InvalidArgumentError("Saved history array 'ids_offsets' must rise from 0.")
        expect_array(arrays, "ids_utf8", np.uint8, (int(offsets[-1]),))
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

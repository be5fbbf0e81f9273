"""Turning per-prompt rollout counts into a rollout batch, and balancing it across workers.

* :func:`expand_counts`: which prompt each rollout belongs to, and a group id
  per rollout, so any framework can repeat prompt ``i`` ``counts[i]`` times
  and compute group-normalised advantages.
* :func:`balance`: split prompts into ``k`` parts (data-parallel workers)
  whose rollout or cost totals are as equal as possible, optionally with
  equal prompt counts, and report how far the heaviest part can be from the
  best possible split.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import integer_array, integer_scalar, real_array
from knapsack_alloc.exceptions import InvalidArgumentError


def expand_counts(counts: Any, order: Any = None) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Repeat prompt ``i`` ``counts[i]`` times.

    Parameters
    ----------
    counts : array_like of int
        Rollouts per prompt (non-negative).
    order : array_like of int, optional
        A permutation of the prompt indices giving the order of the groups
        in the expanded batch, e.g. :attr:`Partition.order`; default batch
        order.

    Returns
    -------
    index : numpy.ndarray of int64
        Batch index of the prompt of each rollout.
    group : numpy.ndarray of int64
        Group id of each rollout: ``0, 1, 2, ...`` in the order the groups
        appear in the expanded batch, so ``numpy.bincount(group)`` gives the
        group sizes. Prompts with 0 rollouts get no group.

    Examples
    --------
    >>> index, group = expand_counts([2, 0, 3])
    >>> index.tolist(), group.tolist()
    ([0, 0, 2, 2, 2], [0, 0, 1, 1, 1])
    """
    if np.ndim(counts) != 1:
        raise InvalidArgumentError(
            f"counts must be 1-dimensional (one count per prompt), got shape {np.shape(counts)}."
        )
    sizes = integer_array("counts", counts, length=len(counts), minimum=0)
    if order is None:
        prompts = np.arange(sizes.size, dtype=np.int64)
    else:
        prompts = integer_array("order", order, length=sizes.size, minimum=0)
        if not np.array_equal(np.sort(prompts), np.arange(sizes.size)):
            raise InvalidArgumentError(
                f"order must be a permutation of 0..{sizes.size - 1} (each prompt once)."
            )
    prompts = prompts[sizes[prompts] > 0]
    group_sizes = sizes[prompts]
    index = np.repeat(prompts, group_sizes)
    group = np.repeat(np.arange(prompts.size, dtype=np.int64), group_sizes)
    return index, group


@dataclass(frozen=True, repr=False)
class Partition:
    """A split of prompts into parts, one per worker.

    Attributes
    ----------
    parts : tuple of numpy.ndarray of int64
        Prompt indices of each part, ascending.
    loads : numpy.ndarray of float64
        Total weight of each part.
    lower_bound : float
        No split can have a heaviest part lighter than this:
        ``max(total / k, largest weight)``, rounded up for integer weights.
    method : str
        The heuristic whose split was kept (``'lpt'`` or ``'karmarkar-karp'``).
    """

    parts: tuple[NDArray[np.int64], ...]
    loads: NDArray[np.float64]
    lower_bound: float
    method: str

    @property
    def max_load(self) -> float:
        """Weight of the heaviest part."""
        return float(self.loads.max(initial=0.0))

    @property
    def gap(self) -> float:
        """``max_load / lower_bound - 1``: an upper bound on the distance from optimal."""
        return self.max_load / self.lower_bound - 1.0 if self.lower_bound > 0 else 0.0

    @property
    def order(self) -> NDArray[np.int64]:
        """Prompt indices part after part: the batch order that puts part ``j`` on worker ``j``."""
        return np.concatenate([*self.parts, np.zeros(0, dtype=np.int64)])

    @property
    def assignment(self) -> NDArray[np.int64]:
        """Part of each prompt."""
        result = np.empty(sum(p.size for p in self.parts), dtype=np.int64)
        for j, part in enumerate(self.parts):
            result[part] = j
        return result

    def __repr__(self) -> str:
        return (
            f"Partition(parts={len(self.parts)}, max_load={self.max_load:g}, "
            f"lower_bound={self.lower_bound:g}, gap={self.gap:.3g}, method={self.method!r})"
        )


def balance(weights: Any, workers: Any, *, equal_size: bool = False) -> Partition:
    """Split prompts into ``workers`` parts with totals as equal as possible.

    Parameters
    ----------
    weights : array_like
        Non-negative load of each prompt: its rollout count, or its rollout
        count times its cost per rollout (e.g. expected tokens).
    workers : int
        Number of parts (data-parallel workers), >= 1.
    equal_size : bool, default False
        Give every part the same number of prompts (sizes differ by at most
        one when ``workers`` does not divide the number of prompts).

    Returns
    -------
    Partition
        The parts, their loads, and ``lower_bound``, so ``gap`` bounds how far
        the heaviest part is from the best split.

    Notes
    -----
    Minimising the heaviest part is NP-hard (multiway number partitioning).
    Two heuristics run and the split with the lighter heaviest part is kept:
    LPT (longest processing time first: prompts in decreasing weight, each to
    the currently lightest part) and the Karmarkar-Karp largest differencing
    method. Without ``equal_size`` the result is at most
    ``(4/3 - 1/(3k))`` times the optimum (Graham's bound for LPT, 1969). With
    ``equal_size`` the prompts are padded with zero weights to a multiple of
    ``k`` and both heuristics keep every part's size fixed; no constant
    factor is claimed, and ``gap`` measures each instance.

    References
    ----------
    R. L. Graham, "Bounds on multiprocessing timing anomalies", SIAM J. Appl.
    Math. 17 (1969). N. Karmarkar and R. M. Karp, "The differencing method of
    set partitioning", UC Berkeley tech. report (1982).

    Examples
    --------
    >>> split = balance([8, 2, 2, 40, 8, 4], workers=2)
    >>> split.max_load, split.lower_bound
    (40.0, 40.0)
    """
    loads = real_array("weights", weights)
    negative = loads < 0
    if negative.any():
        i = int(np.flatnonzero(negative)[0])
        raise InvalidArgumentError(f"weights[{i}] == {float(loads[i])!r}, must be >= 0.")
    k = integer_scalar("workers", workers, minimum=1)
    size = loads.size
    padded = -size % k if equal_size else 0
    values = np.concatenate([loads, np.zeros(padded)])
    # Decreasing weight, ties by batch index, so the result is deterministic.
    ranked = np.lexsort((np.arange(values.size), -values))
    candidates = [
        _lpt(values, ranked, k, equal_size, size),
        _karmarkar_karp(values, ranked, k, equal_size),
    ]
    heaviest = [max(float(values[part].sum()) for part in c) for c in candidates]
    best = int(np.argmin(heaviest))
    parts = tuple(
        np.sort(np.asarray([i for i in part if i < size], dtype=np.int64))
        for part in candidates[best]
    )
    total = float(loads.sum())
    bound = max(total / k, float(loads.max(initial=0.0)))
    if np.array_equal(loads, np.floor(loads)):
        bound = float(math.ceil(bound))
    return Partition(
        parts=parts,
        loads=np.array([loads[p].sum() for p in parts], dtype=np.float64),
        lower_bound=bound,
        method=("lpt", "karmarkar-karp")[best],
    )


def _lpt(
    values: NDArray[np.float64], ranked: NDArray[np.intp], k: int, equal_size: bool, size: int
) -> list[list[int]]:
    capacity = values.size // k if equal_size else values.size
    parts: list[list[int]] = [[] for _ in range(k)]
    # The zero-weight padding (indices >= size, fewer than k) goes one to a part
    # up front: left to the heap, several could share a part and leave it short.
    for j, pad in enumerate(range(size, values.size)):
        parts[k - 1 - j].append(pad)
    heap = [(0.0, j) for j in range(k) if len(parts[j]) < capacity]
    for i in ranked.tolist():
        if i >= size:
            continue
        load, j = heapq.heappop(heap)
        parts[j].append(i)
        if len(parts[j]) < capacity:
            heapq.heappush(heap, (load + float(values[i]), j))
    return parts


def _karmarkar_karp(
    values: NDArray[np.float64], ranked: NDArray[np.intp], k: int, equal_size: bool
) -> list[list[int]]:
    order = ranked.tolist()
    # Subsets are nodes of a forest: a leaf is a prompt, an inner node the union of its
    # two children, -1 the empty set. A state is k subsets sorted by decreasing sum.
    children: list[tuple[int, int]] = [(-1, -1)] * len(order)
    states: list[tuple[float, int, list[float], list[int]]] = []
    step = k if equal_size else 1
    for serial, start in enumerate(range(0, len(order), step)):
        chunk = order[start : start + step]
        sums = [float(values[i]) for i in chunk] + [0.0] * (k - len(chunk))
        states.append((sums[-1] - sums[0], serial, sums, chunk + [-1] * (k - len(chunk))))
    heapq.heapify(states)
    serial = len(states)
    while len(states) > 1:
        _, _, sums_a, nodes_a = heapq.heappop(states)
        _, _, sums_b, nodes_b = heapq.heappop(states)
        # The heaviest subsets of one state join the lightest of the other.
        merged = []
        for j in range(k):
            a, b = nodes_a[j], nodes_b[k - 1 - j]
            node = a if b < 0 else b if a < 0 else len(children)
            if node == len(children):
                children.append((a, b))
            merged.append((sums_a[j] + sums_b[k - 1 - j], node))
        merged.sort(key=lambda pair: -pair[0])
        sums = [total for total, _ in merged]
        heapq.heappush(states, (sums[-1] - sums[0], serial, sums, [n for _, n in merged]))
        serial += 1
    roots = states[0][3] if states else [-1] * k
    return [_leaves(root, children) for root in roots]


def _leaves(root: int, children: list[tuple[int, int]]) -> list[int]:
    leaves = []
    stack = [root] if root >= 0 else []
    while stack:
        node = stack.pop()
        left, right = children[node]
        if left < 0:
            leaves.append(node)
        else:
            stack += [left, right]
    return leaves

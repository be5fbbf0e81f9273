import itertools
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from knapsack_alloc.batching import balance, expand_counts
from knapsack_alloc.exceptions import InvalidArgumentError


def naive_expand(counts, order):
    index, group = [], []
    g = 0
    for prompt in order:
        if counts[prompt]:
            index += [prompt] * counts[prompt]
            group += [g] * counts[prompt]
            g += 1
    return index, group


def best_split(weights, k, equal_size):
    """Smallest possible heaviest part, by trying every assignment."""
    n = len(weights)
    sizes_ok = {n // k, -(-n // k)}
    best = math.inf
    for assignment in itertools.product(range(k), repeat=n):
        loads = [0.0] * k
        counts = [0] * k
        for w, part in zip(weights, assignment, strict=True):
            loads[part] += w
            counts[part] += 1
        if equal_size and not set(counts) <= sizes_ok:
            continue
        best = min(best, max(loads))
    return best


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_expand_matches_naive(data):
    counts = data.draw(st.lists(st.integers(0, 6), max_size=12))
    order = data.draw(st.permutations(range(len(counts))))
    index, group = expand_counts(counts, order)
    assert (index.tolist(), group.tolist()) == naive_expand(counts, order)
    plain_index, _ = expand_counts(counts)
    assert plain_index.tolist() == naive_expand(counts, range(len(counts)))[0]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 40), min_size=0, max_size=8),
    st.integers(1, 3),
    st.booleans(),
)
@example(weights=[0, 0, 0, 0], k=3, equal_size=True)  # the padding once filled one part
@example(weights=[10, 10, 0, 0, 0, 0, 0], k=3, equal_size=True)
def test_balance_against_brute_force(weights, k, equal_size):
    split = balance(weights, k, equal_size=equal_size)
    assert sorted(np.concatenate(split.parts).tolist()) == list(range(len(weights)))
    assert split.loads.tolist() == [sum(weights[i] for i in p) for p in split.parts]
    assert split.assignment[split.order].tolist() == sorted(split.assignment.tolist())
    sizes = [p.size for p in split.parts]
    if equal_size:
        assert max(sizes) - min(sizes) <= 1
    optimum = best_split(weights, k, equal_size)
    assert split.lower_bound <= optimum <= split.max_load
    if not equal_size:
        assert split.max_load <= (4 / 3 - 1 / (3 * k)) * optimum + 1e-9


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(2, 128), min_size=64, max_size=512),
    st.sampled_from([2, 4, 8, 16]),
    st.booleans(),
)
def test_balance_is_close_to_the_bound_on_rollout_counts(weights, k, equal_size):
    split = balance(weights, k, equal_size=equal_size)
    assert split.max_load >= split.lower_bound
    # Many small items: both heuristics land within a few rollouts of the bound.
    assert split.max_load - split.lower_bound <= 128


def test_balance_examples_and_repr():
    split = balance([8, 2, 2, 40, 8, 4], 2)
    assert (split.max_load, split.lower_bound, split.gap) == (40.0, 40.0, 0.0)
    assert split.parts[0].tolist() == [3] or split.parts[1].tolist() == [3]
    assert repr(split).startswith("Partition(parts=2, max_load=40, lower_bound=40, gap=0")
    assert balance([1.5, 1.5, 1.0], 2).lower_bound == 2.0
    even = balance([5, 1, 1, 1], 2, equal_size=True)
    assert sorted(p.size for p in even.parts) == [2, 2]
    assert even.max_load == 6.0
    empty = balance([], 3)
    assert empty.max_load == 0.0 and empty.gap == 0.0 and empty.order.tolist() == []


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: balance([1, -2], 2), InvalidArgumentError, "weights[1] == -2.0, must be >= 0."),
        (lambda: balance([1, 2], 0), InvalidArgumentError, "workers == 0, must be >= 1."),
        (
            lambda: balance([1, float("nan")], 2),
            InvalidArgumentError,
            "weights[1] == nan, must be finite (no NaN or inf).",
        ),
        (
            lambda: expand_counts([1, -1]),
            InvalidArgumentError,
            "counts[1] == -1, must be >= 0.",
        ),
        (
            lambda: expand_counts([1, 2], [0, 0]),
            InvalidArgumentError,
            "order must be a permutation of 0..1 (each prompt once).",
        ),
        (
            lambda: expand_counts([[1, 2]]),
            InvalidArgumentError,
            "counts must be 1-dimensional (one count per prompt), got shape (1, 2).",
        ),
        (
            lambda: expand_counts([1.5]),
            InvalidArgumentError,
            "counts[0] == 1.5, must be a whole number of rollouts.",
        ),
    ],
)
def test_bad_inputs(call, error, message):
    with pytest.raises(error) as raised:
        call()
    assert str(raised.value) == message

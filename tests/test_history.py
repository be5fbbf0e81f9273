import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _oracles_allocator import NaiveHistory
from knapsack_alloc.allocator.history import RewardHistory
from knapsack_alloc.allocator.prompt_index import as_prompt_ids
from knapsack_alloc.exceptions import InvalidArgumentError

# A step: (prompt id, its rewards) per group.
updates_strategy = st.lists(
    st.lists(
        st.tuples(st.integers(0, 6), st.lists(st.booleans(), min_size=1, max_size=40)),
        min_size=0,
        max_size=5,
    ),
    min_size=1,
    max_size=8,
)


def _flatten(update):
    ids, rewards = [], []
    for prompt, outcomes in update:
        ids += [prompt] * len(outcomes)
        rewards += outcomes
    return ids, rewards


ID_FORMS = {
    "index": lambda i: i,
    "hashed": lambda i: i * 2**40 + 7,
    "string": lambda i: f"prompt-{i}",
}


@settings(max_examples=200, deadline=None)
@given(
    updates_strategy,
    st.integers(1, 20),
    st.sampled_from(sorted(ID_FORMS)),
    st.booleans(),
    st.data(),
)
def test_counts_match_naive_history(updates, window, form, shuffle, data):
    to_id = ID_FORMS[form]
    fast, slow = RewardHistory(window), NaiveHistory(window)
    for update in updates:
        ids, rewards = _flatten(update)
        if shuffle:  # rewards of one update in any order
            order = data.draw(st.permutations(range(len(ids))), label="order")
            ids, rewards = [ids[i] for i in order], [rewards[i] for i in order]
        ids = [to_id(i) for i in ids]
        array, kind = as_prompt_ids(ids, "ids")
        fast.record(array, kind, np.array(rewards, dtype=bool))
        slow.record(ids, rewards)
    prompts = [to_id(i) for i in range(8)]
    got = fast.counts(fast.lookup(as_prompt_ids(prompts, "ids")[0]))
    for i, prompt in enumerate(prompts):
        assert (got.successes[i], got.trials[i], got.total[i]) == slow.counts(prompt)
    histogram = np.zeros((window + 1, window + 1), dtype=np.int64)
    for prompt in slow.updates:
        s, n = slow.ring(prompt)
        histogram[n, s] += 1
    assert np.array_equal(fast.window_histogram(), histogram)


def test_latest_update_with_a_full_window_is_the_estimate():
    history = RewardHistory(4)
    history.record(np.array([7] * 3), "int", np.array([True, True, True]))
    history.record(np.array([7] * 6), "int", np.array([True, False, False, False, False, False]))
    counts = history.counts(np.array([0]))
    assert (counts.successes[0], counts.trials[0], counts.total[0]) == (1, 6, 9)
    history.record(np.array([7]), "int", np.array([True]))
    counts = history.counts(np.array([0]))
    # Ring: the last 3 of the 6-reward update, then the new success.
    assert (counts.successes[0], counts.trials[0]) == (1, 4)


def test_string_ids_and_unknown_ids():
    history = RewardHistory(16)
    ids, kind = as_prompt_ids(["x", "y", "x"], "ids")
    history.record(ids, kind, np.array([True, False, False]))
    rows = history.lookup(np.array(["y", "z", "x"]))
    assert rows.tolist() == [1, -1, 0]
    counts = history.counts(rows)
    assert counts.successes.tolist() == [0, 0, 1]
    assert counts.trials.tolist() == [1, 0, 2]
    with pytest.raises(TypeError) as error:
        history.check_kind("int", "prompt_ids")
    assert str(error.value) == (
        "prompt_ids are int ids, but this allocator tracks str ids; "
        "use one kind of prompt id throughout."
    )


@pytest.mark.parametrize(
    ("ids", "kind"),
    [
        ([3, 1, 3], "int"),
        (np.array([3, 1], dtype=np.uint32), "int"),
        (("a", "b"), "str"),
        (np.array(["a", "b"], dtype=object), "str"),
        ([], None),
    ],
)
def test_as_prompt_ids_kinds(ids, kind):
    array, got = as_prompt_ids(ids, "ids")
    assert got == kind
    assert array.ndim == 1


@pytest.mark.parametrize(
    ("ids", "error", "message"),
    [
        (
            [1, "a"],
            TypeError,
            "ids must hold only ints or only strings, got elements of type: int, str.",
        ),
        (
            [1, True],
            TypeError,
            "ids must hold only ints or only strings, got elements of type: bool, int.",
        ),
        ([1.5], TypeError, "ids must hold only ints or only strings, got elements of type: float."),
        (
            np.array([1.0, 2.0]),
            TypeError,
            "ids must hold ints or strings, got an array of dtype float64; convert float or bytes "
            "ids to int or str first.",
        ),
        (
            "abc",
            TypeError,
            "ids must be a 1-d sequence of prompt ids, got the scalar 'abc'; wrap a single id in "
            "a list.",
        ),
        (
            np.zeros((2, 2), dtype=int),
            InvalidArgumentError,
            "ids must be 1-dimensional (one id per entry), got shape (2, 2).",
        ),
        (
            [2**70],
            InvalidArgumentError,
            "ids holds an int id outside the int64 range; use ids below 2**63 or pass them as "
            "strings.",
        ),
    ],
)
def test_as_prompt_ids_errors(ids, error, message):
    with pytest.raises(error) as raised:
        as_prompt_ids(ids, "ids")
    assert str(raised.value) == message


def test_cost_running_mean():
    history = RewardHistory(4)
    row = lambda: history.costs(history.lookup(np.array([5])))[0][0]  # noqa: E731
    history.record(np.array([5, 5]), "int", np.array([True, False]), np.array([10.0, 20.0]))
    assert row() == pytest.approx(15.0)
    history.record(np.array([5]), "int", np.array([True]), np.array([30.0]))
    assert row() == pytest.approx(20.0)  # exact mean of 3 costs
    history.record(np.array([5, 5]), "int", np.array([True, True]), np.array([40.0, 40.0]))
    # Past the window, a batch of k costs gets weight k / window.
    assert row() == pytest.approx(20.0 + 0.5 * (40.0 - 20.0))
    history.record(np.array([5] * 4), "int", np.zeros(4, bool), np.full(4, 7.0))
    assert row() == pytest.approx(7.0)
    mean, known = history.costs(history.lookup(np.array([5, 6])))
    assert known.tolist() == [True, False]
    assert mean[1] == 0.0
    assert history.mean_cost() == pytest.approx(7.0)


def test_arrays_round_trip_and_growth():
    history = RewardHistory(3)
    rng = np.random.default_rng(1)
    for _ in range(5):
        ids = rng.integers(0, 3000, 700)
        history.record(ids, "int", rng.random(700) < 0.4, rng.random(700) + 0.5)
    arrays = history.to_arrays()
    copy = RewardHistory.from_arrays(3, "int", arrays)
    probe = np.arange(3000)
    for name in ("successes", "trials", "total"):
        assert np.array_equal(
            getattr(copy.counts(copy.lookup(probe)), name),
            getattr(history.counts(history.lookup(probe)), name),
        )
    assert np.array_equal(copy.window_histogram(), history.window_histogram())
    strings = RewardHistory(2)
    strings.record(np.array(["é", "ab", "é"]), "str", np.array([True, False, True]))
    back = RewardHistory.from_arrays(2, "str", strings.to_arrays())
    assert back.counts(back.lookup(np.array(["ab", "é", "c"]))).successes.tolist() == [0, 2, 0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("total"), "Saved history lacks the array 'total'."),
        (
            lambda a: a.__setitem__("total", a["total"].astype(np.int32)),
            "Saved history array 'total' must have dtype int64 and shape (2,), got dtype int32, "
            "shape (2,).",
        ),
        (
            lambda a: a["success"].__setitem__((0, 0), 3),
            "Inconsistent saved history: success holds values other than 0 and 1.",
        ),
        (
            lambda a: a["last_s"].__setitem__(0, 99),
            "Inconsistent saved history: last_s is outside [0, last_n].",
        ),
        (
            lambda a: a["ids"].__setitem__(1, a["ids"][0]),
            "Inconsistent saved history: prompt ids are not unique.",
        ),
    ],
)
def test_from_arrays_rejects_inconsistent_state(change, message):
    history = RewardHistory(4)
    history.record(np.array([1, 1, 2]), "int", np.array([True, False, True]))
    arrays = history.to_arrays()
    change(arrays)
    with pytest.raises(InvalidArgumentError) as raised:
        RewardHistory.from_arrays(4, "int", arrays)
    assert str(raised.value) == message


def test_memory_per_million_prompts():
    history = RewardHistory(16)
    history.record(np.arange(10**6), "int", np.zeros(10**6, dtype=bool))
    array_bytes = sum(a.nbytes for a in history.to_arrays().values())
    assert array_bytes / 10**6 <= 64  # 16 ring bytes + counters + id


@pytest.mark.parametrize("late_id", [2**40, -3])
def test_ids_outside_the_dense_range_keep_every_window(late_id):
    history, naive = RewardHistory(4), NaiveHistory(4)
    steps = [([0, 0, 5, 9], [1, 0, 1, 1]), ([late_id, 5, late_id], [1, 0, 0]), ([9, 0], [0, 1])]
    for ids, rewards in steps:
        history.record(np.array(ids), "int", np.array(rewards, dtype=bool))
        naive.record(ids, rewards)
    probe = [0, 5, 9, late_id, 7]
    got = history.counts(history.lookup(np.array(probe)))
    for i, prompt in enumerate(probe):
        assert (got.successes[i], got.trials[i], got.total[i]) == naive.counts(prompt)
    back = RewardHistory.from_arrays(4, "int", history.to_arrays())
    assert np.array_equal(back.lookup(np.array(probe)), history.lookup(np.array(probe)))


def test_string_hash_collisions_fall_back_to_exact_grouping(monkeypatch):
    import knapsack_alloc.allocator.prompt_index as prompt_index

    monkeypatch.setattr(prompt_index, "_HASH_MULTIPLIER", np.uint64(0))  # every string collides
    rng = np.random.default_rng(5)
    fast, slow = RewardHistory(4), NaiveHistory(4)
    for _ in range(6):
        prompts = rng.integers(0, 12, 30)
        ids = [f"p{i}" for i in prompts]
        rewards = (rng.random(30) < 0.4).tolist()
        fast.record(as_prompt_ids(ids, "ids")[0], "str", np.array(rewards, dtype=bool))
        slow.record(ids, rewards)
    names = [f"p{i}" for i in range(14)]
    got = fast.counts(fast.lookup(as_prompt_ids(names, "ids")[0]))
    for i, name in enumerate(names):
        assert (got.successes[i], got.trials[i], got.total[i]) == slow.counts(name)

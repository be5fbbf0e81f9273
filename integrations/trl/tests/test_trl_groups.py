"""Advantage clipping and per-prompt weighting (``GroupStability``), alone and in TRL."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from trl_shared import (  # noqa: E402
    DEPRECATIONS,
    AdvantageRecorder,
    Recorder,
    RecordingAllocator,
    grpo_reference,
    train,
)

from knapsack_alloc.integrations.groups import GroupStability  # noqa: E402

pytestmark = pytest.mark.filterwarnings(DEPRECATIONS)


def oracle(advantages, group_ids, clip, weighting):
    """Clip, then weight by size**-gamma with weights summing to the number of rollouts."""
    gamma = {"none": 0.0, "sqrt": 0.5, "equal": 1.0}[weighting]
    out = [list(row) for row in advantages]
    if clip is not None:
        out = [[min(max(a, -clip), clip) for a in row] for row in out]
    sizes = [sum(1 for h in group_ids if h == g) for g in group_ids]
    raw = [size**-gamma for size in sizes]
    weights = [w * len(raw) / sum(raw) for w in raw]
    return [[a * w for a in row] for row, w in zip(out, weights, strict=True)], weights


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 30),
    width=st.integers(1, 3),
    clip=st.none() | st.floats(0.1, 10.0),
    weighting=st.sampled_from(["none", "sqrt", "equal"]),
)
def test_apply_matches_the_oracle(data, n, width, clip, weighting):
    group_ids = data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    dense = np.unique(group_ids, return_inverse=True)[1]
    values = data.draw(
        st.lists(
            st.lists(st.floats(-20, 20, allow_nan=False), min_size=width, max_size=width),
            min_size=n,
            max_size=n,
        )
    )
    expected, weights = oracle(values, dense.tolist(), clip, weighting)
    options = GroupStability(clip, weighting)
    out, metrics = options.apply(torch.tensor(values, dtype=torch.float64), torch.tensor(dense))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    flat = torch.tensor(values, dtype=torch.float64)[:, 0]
    out_flat, _ = options.apply(flat, torch.tensor(dense))
    np.testing.assert_allclose(out_flat.numpy(), [row[0] for row in expected], atol=1e-12)
    assert sum(weights) == pytest.approx(n)
    magnitudes = np.abs(np.asarray(values)).max(axis=1)
    assert metrics["advantage_abs_max"] == pytest.approx(magnitudes.max())
    if clip is not None:
        assert metrics["advantages_clipped"] == pytest.approx(np.mean(magnitudes > clip))


def test_a_lone_success_among_93():
    rewards = torch.zeros(101)
    rewards[0] = 1.0
    group = torch.tensor([0] * 93 + [1] * 8)
    rewards[93:97] = 1.0  # the other group: 4 of 8
    mean, std = rewards[:93].mean(), rewards[:93].std()
    lone = float((1 - mean) / std)
    assert lone == pytest.approx(9.54, abs=0.01)  # the figure that motivates clipping
    advantages = torch.cat(
        [(rewards[:93] - mean) / std, (rewards[93:] - rewards[93:].mean()) / rewards[93:].std()]
    )
    clipped, _ = GroupStability(advantage_clip=5.0).apply(advantages, group)
    assert clipped[0] == 5.0 and clipped[1:].abs().max() < 5.0
    equal, _ = GroupStability(group_weighting="equal").apply(advantages, group)
    # each prompt now carries the same total weight: mean size / own size
    assert equal[0] / advantages[0] == pytest.approx(50.5 / 93)
    assert equal[93] / advantages[93] == pytest.approx(50.5 / 8)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"advantage_clip": 0}, ValueError, "advantage_clip == 0, must be > 0"),
        ({"advantage_clip": -1.0}, ValueError, "advantage_clip == -1.0, must be > 0"),
        ({"advantage_clip": "5"}, TypeError, "advantage_clip"),
        ({"group_weighting": "tokens"}, ValueError, "'group_weighting' parameter must be a str"),
    ],
)
def test_bad_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        GroupStability(**kwargs)


def test_trainer_clips_and_weights_per_prompt(tmp_path):
    reward = Recorder()
    trainer = train(
        AdvantageRecorder,
        reward,
        tmp_path,
        allocator=RecordingAllocator(preset="paper"),
        advantage_clip=1.0,
        group_weighting="equal",
    )
    clipped_any = False
    for (rollout_ids, rewards, _), advantages in zip(
        reward.calls, trainer.recorded_advantages, strict=True
    ):
        ids = np.unique(rollout_ids, return_inverse=True)[1]
        reference = grpo_reference(rewards, rollout_ids)
        expected, _ = oracle(reference[:, None], ids.tolist(), 1.0, "equal")
        np.testing.assert_allclose(advantages, np.ravel(expected), rtol=1e-5, atol=1e-5)
        clipped_any |= bool(np.any(np.abs(reference) > 1.0))
    assert clipped_any  # the clip had work to do
    logged = trainer.state.log_history[0]
    assert {"knapsack/groups/advantages_clipped", "knapsack/groups/group_weight_max"} <= set(logged)

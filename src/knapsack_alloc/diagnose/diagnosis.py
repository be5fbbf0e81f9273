"""Read a run and compute every figure of its diagnosis."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from knapsack_alloc.allocator.presets import PRESETS, PresetName
from knapsack_alloc.diagnose.figures import (
    PromptFigures,
    RewardScale,
    StepFigures,
    prompt_figures,
    step_figures,
)
from knapsack_alloc.diagnose.groups import GroupAccumulator, GroupTable
from knapsack_alloc.diagnose.prompts import previews
from knapsack_alloc.diagnose.readers import ReadLog, RunReader
from knapsack_alloc.diagnose.replay import (
    Bounds,
    Projection,
    StepLayout,
    as_run,
    given_bounds,
    replay,
    suggest_bounds,
)
from knapsack_alloc.diagnose.sources import Sources, find_sources
from knapsack_alloc.exceptions import InvalidArgumentError

#: Presets replayed by default: every preset of the allocator.
DEFAULT_PRESETS: tuple[PresetName, ...] = tuple(PRESETS)


@dataclass(frozen=True)
class Diagnosis:
    """Everything ``knapsack-alloc diagnose`` reports about a run.

    Attributes
    ----------
    sources : Sources
        The files read and their format.
    log : ReadLog
        Reward source, decoder, grouping and skipped files.
    groups : GroupTable
        One row per group.
    scale : RewardScale
        What counts as a success.
    steps : StepFigures
    prompts : PromptFigures
    prompt_labels, prompt_previews : list
        Each prompt's id (or the start of the digest of its text) and the
        start of its text past the template all prompts share.
    suggested : Bounds
        Bounds suited to the run.
    bounds : Bounds
        Bounds of the replay (the suggested ones unless given).
    projections : dict of str to Projection
        ``'as run'`` and one per replayed preset, under the model.
    seed : int
        Seed of the replay's random rewards.
    seconds : dict of str to float
        Time spent reading and replaying.
    """

    sources: Sources
    log: ReadLog
    groups: GroupTable
    scale: RewardScale
    steps: StepFigures
    prompts: PromptFigures
    prompt_labels: list[Any]
    prompt_previews: list[str]
    suggested: Bounds
    bounds: Bounds
    projections: dict[str, Projection]
    seed: int
    seconds: dict[str, float]

    @property
    def rollouts(self) -> int:
        """Rollouts in the run."""
        return int(self.steps.rollouts.sum())

    @property
    def wasted_rollouts(self) -> int:
        """Rollouts in groups without a gradient."""
        return int(self.steps.wasted_rollouts.sum())

    @property
    def effective_gradient_ratio(self) -> float:
        """``1 - wasted / rollouts`` over the run."""
        return 1.0 - self.wasted_rollouts / self.rollouts


def diagnose(
    paths: Sequence[str],
    *,
    format: str = "auto",
    reward_field: str | None = None,
    success_threshold: float | None = None,
    min_rollouts: int | None = None,
    max_rollouts: int | None = None,
    presets: Sequence[PresetName] = DEFAULT_PRESETS,
    seed: int = 0,
    fast: bool = True,
) -> Diagnosis:
    """Diagnose a run from its rollout logs.

    Parameters
    ----------
    paths : sequence of str
        Files and directories of one run.
    format : {'auto', 'verl', 'table', 'trl'}, default 'auto'
    reward_field : str, optional
        Field or column of the reward (see :class:`RunReader`).
    success_threshold : float, optional
        Count a reward at least this as a success (needed to count
        successes of real-valued rewards).
    min_rollouts, max_rollouts : int, optional
        Bounds of the replay; default: the suggested ones.
    presets : sequence of str, default ('paper', 'bayes')
        :class:`KnapsackAllocator` presets to replay (none: no replay).
    seed : int, default 0
        Seed of the rewards drawn in the replay.
    fast : bool, default True
        Decode JSON lines with msgspec when installed.

    Returns
    -------
    Diagnosis

    Raises
    ------
    InputFileError
        On a problem in the input, naming the file, line or row, and the problem.
    InvalidArgumentError
        On bounds that cannot spend a step's budget.
    """
    if success_threshold is not None and not np.isfinite(success_threshold):
        raise InvalidArgumentError(f"--success-threshold == {success_threshold}, must be finite.")
    started = time.perf_counter()
    sources = find_sources(list(paths), format)
    reader = RunReader(sources, reward_field=reward_field, fast=fast)
    accumulator = GroupAccumulator(success_threshold)
    for batch in reader.batches():
        accumulator.add(batch)
    table = accumulator.table()
    read_seconds = time.perf_counter() - started
    scale = RewardScale.of(table, success_threshold)
    prompts = prompt_figures(table, scale, len(reader.registry))
    layout = StepLayout.of(table)
    suggested = suggest_bounds(table, layout, prompts.rate)
    steps = step_figures(table, scale)
    bounds = suggested
    if presets:
        bounds = given_bounds(layout, steps.step, suggested, min_rollouts, max_rollouts)
    started = time.perf_counter()
    projections = {"as run": as_run(table, layout, prompts.rate)}
    for preset in presets:
        projections[preset] = replay(table, layout, prompts.rate, preset, bounds, seed)
    return Diagnosis(
        sources=sources,
        log=reader.log,
        groups=table,
        scale=scale,
        steps=steps,
        prompts=prompts,
        prompt_labels=reader.registry.labels,
        prompt_previews=previews(reader.registry.previews),
        suggested=suggested,
        bounds=bounds,
        projections=projections,
        seed=seed,
        seconds={"read": read_seconds, "replay": time.perf_counter() - started},
    )

"""Figures over seeds, compute-to-match, and the JSON document."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from benchmarks.learning.design import POLICIES, SERIES, Policy, Settings

if TYPE_CHECKING:
    from benchmarks.learning.run import RunRecord

#: Per-run figures, each a function of the run and its settings.
FIGURES = (
    "effective_gradient_ratio",
    "expected_effective_gradient_ratio",
    "final_success",
    "mean_success_over_steps",
    "final_solved",
    "heldout_change",
    "train_change",
    "transfer",
    "offbatch_transfer",
    "final_special_mass",
    "rollouts",
    "max_group",
    "wall_s",
    "allocator_s",
    "success_z",
    "max_abs_advantage",
    "max_abs_advantage_unclipped",
    "advantages_clipped",
)


def run_figures(run: RunRecord, settings: Settings) -> dict[str, float]:
    """The scalar figures of one run.

    ``effective_gradient_ratio`` is the mean over steps of the share of
    rollouts in groups with both rewards; every step spends the same
    rollouts, so it is also the share over the whole run. ``transfer`` is the
    held-out prompts' change in mean success divided by the training
    prompts': 0 when learning is prompt-specific, 1 when it is generic.
    ``offbatch_transfer`` is the mean per-step change of the training prompts
    outside the step's batch divided by that of the prompts in it.
    ``max_abs_advantage`` is the largest absolute advantage trained on in
    any step (``..._unclipped``: before the adapter's clip and weighting);
    ``advantages_clipped`` is the share of the run's rollouts that were clipped.
    """
    train = settings.train_prompts
    series = run.series
    train_change = float(series["mean_success"][-1] - run.initial_success[:train].mean())
    heldout_change = float(series["heldout_success"][-1] - run.initial_success[train:].mean())
    return {
        "effective_gradient_ratio": float(np.mean(series["effective_ratio"])),
        "expected_effective_gradient_ratio": float(np.mean(series["expected_effective_ratio"])),
        "final_success": float(series["mean_success"][-1]),
        "mean_success_over_steps": float(np.mean(series["mean_success"])),
        "final_solved": float(series["solved"][-1]),
        "heldout_change": heldout_change,
        "train_change": train_change,
        "transfer": heldout_change / train_change if train_change else math.nan,
        "offbatch_transfer": float(
            np.nanmean(series["offbatch_delta"]) / np.mean(series["batch_delta"])
        ),
        "final_special_mass": float(series["special_mass"][-1]),
        "rollouts": float(np.sum(series["rollouts"])),
        "max_group": float(np.max(series["largest_group"])),
        "wall_s": float(np.sum(series["wall_s"])),
        "allocator_s": float(np.sum(series["allocator_s"])),
        "success_z": run.success_z,
        "max_abs_advantage": float(np.max(series["advantage_abs_max"])),
        "max_abs_advantage_unclipped": float(np.max(series["advantage_abs_max_unclipped"])),
        "advantages_clipped": float(np.mean(series["advantages_clipped"])),
    }


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation, min, max and the values themselves."""
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if array.size > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
        "values": array.tolist(),
    }


#: Success rates closer than this count as equal: they are sums of float32
#: probabilities, and runs with identical plans differ by rounding alone.
TOLERANCE = 1e-6


def first_reach(curve: Sequence[float], target: float) -> int | None:
    """First step (1-based) at which ``curve`` reaches ``target`` (within `TOLERANCE`), or None."""
    hits = np.flatnonzero(np.asarray(curve) >= target - TOLERANCE)
    return int(hits[0]) + 1 if hits.size else None


#: Fractions of the run at which compute-to-match is also reported.
CHECKPOINTS = (0.25, 0.5, 0.75, 1.0)


def compute_to_match(
    records: dict[tuple[str, int], RunRecord],
    settings: Settings,
    seeds: Sequence[int],
    policies: Sequence[Policy] = POLICIES,
) -> dict[str, Any]:
    """Rollouts each uniform budget needs to reach each allocating policy's success.

    The targets are the ``policies`` with a preset, the uniform budgets those
    without; the result is empty when either is missing. ``final`` is the
    success the target reached at its last step (the headline figure);
    ``by_step`` repeats it for the success the target had after each
    `CHECKPOINTS` fraction of its steps. Each entry is given per
    seed and on the curves averaged over seeds; ``ratio`` is the rollouts
    uniform needed divided by the rollouts the target had spent, and None
    means uniform at that budget never got there within the run.
    """
    targets = [policy for policy in policies if policy.preset is not None]
    uniforms = [policy for policy in policies if policy.preset is None]
    result: dict[str, Any] = {}
    if not uniforms:
        return result
    for target in targets:
        steps = sorted({max(1, round(f * settings.steps)) for f in CHECKPOINTS})
        by_step = {
            str(step): _match_at(step, target, uniforms, records, settings, seeds) for step in steps
        }
        result[target.name] = {"final": by_step[str(settings.steps)], "by_step": by_step}
    return result


def _match_at(
    step: int,
    target: Policy,
    uniforms: Sequence[Policy],
    records: dict[tuple[str, int], RunRecord],
    settings: Settings,
    seeds: Sequence[int],
) -> dict[str, Any]:
    spent = step * target.budget(settings)
    goals = [records[target.name, seed].series["mean_success"][step - 1] for seed in seeds]
    entry: dict[str, Any] = {}
    for uniform in uniforms:
        curves = [records[uniform.name, seed].series["mean_success"] for seed in seeds]
        per_seed = [
            _reach(first_reach(curve, goal), uniform, settings, spent, goal)
            for curve, goal in zip(curves, goals, strict=True)
        ]
        goal = float(np.mean(goals))
        entry[uniform.name] = {
            "per_seed": per_seed,
            "reached": sum(item["step"] is not None for item in per_seed),
            "seeds": len(seeds),
            "mean_curves": _reach(
                first_reach(np.mean(curves, axis=0), goal), uniform, settings, spent, goal
            ),
        }
    return entry


def _reach(
    step: int | None, uniform: Policy, settings: Settings, target_rollouts: float, goal: float
) -> dict[str, Any]:
    rollouts = None if step is None else step * uniform.budget(settings)
    return {
        "target_success": goal,
        "step": step,
        "rollouts": rollouts,
        "ratio": None if rollouts is None else rollouts / target_rollouts,
    }


def population(
    records: dict[tuple[str, int], RunRecord],
    settings: Settings,
    seeds: Sequence[int],
    policy: Policy = POLICIES[0],
) -> dict[str, Any]:
    """Per seed, each prompt's answer-set size and exact initial success (train, then held out).

    Every policy of a seed starts from the same weights (checked), so any
    run's initial rates will do (those of ``policy``). This is what a
    simulator is calibrated on.
    """
    train = settings.train_prompts
    out: dict[str, Any] = {}
    for seed in seeds:
        run = records[policy.name, seed]
        out[str(seed)] = {
            "train_set_sizes": run.set_sizes[:train],
            "heldout_set_sizes": run.set_sizes[train:],
            "train_initial_success": run.initial_success[:train].tolist(),
            "heldout_initial_success": run.initial_success[train:].tolist(),
        }
    return out


def policy_entry(
    policy: Policy,
    records: dict[tuple[str, int], RunRecord],
    settings: Settings,
    seeds: Sequence[int],
) -> dict[str, Any]:
    """One policy's figures (means at the top, spreads under ``over_seeds``) and series."""
    runs = [records[policy.name, seed] for seed in seeds]
    figures = [run_figures(run, settings) for run in runs]
    over_seeds = {name: spread([f[name] for f in figures]) for name in FIGURES}
    series = {
        name: {
            "mean": np.mean([run.series[name] for run in runs], axis=0).tolist(),
            "std": np.std(
                [run.series[name] for run in runs], axis=0, ddof=min(1, len(runs) - 1)
            ).tolist(),
        }
        for name in SERIES
    }
    return {
        "group_size": policy.group_size,
        "preset": policy.preset,
        "advantage_clip": policy.advantage_clip,
        "group_weighting": policy.group_weighting,
        "budget_per_step": policy.budget(settings),
        **{name: over_seeds[name]["mean"] for name in FIGURES},
        "over_seeds": over_seeds,
        "series": series,
        "runs": [
            {
                "seed": run.seed,
                "series": run.series,
                "final_success_per_prompt": run.final_success.tolist(),
                "setup_s": run.setup_s,
            }
            for run in runs
        ],
    }


def _clean(value: Any) -> Any:
    """JSON-ready: NaN to None, floats rounded to 6 significant digits."""
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return None if not math.isfinite(number) else float(f"{number:.6g}")
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(document: dict[str, Any], path: Path) -> None:
    """Write ``document`` to ``path`` atomically (a temporary file, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(_clean(document), stream, separators=(",", ":"), allow_nan=False)
            stream.write("\n")
        os.replace(scratch, path)
    except BaseException:
        os.unlink(scratch)
        raise

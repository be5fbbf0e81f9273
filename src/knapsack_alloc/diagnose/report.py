"""The diagnosis as a terminal report and as JSON."""

from __future__ import annotations

from typing import Any

import numpy as np

from knapsack_alloc.diagnose.diagnosis import Diagnosis
from knapsack_alloc.diagnose.replay import Projection

#: Steps shown one per row; longer runs are shown in this many phases.
PHASES = 10
#: Prompts listed under "most rollouts without a gradient".
TOP_PROMPTS = 5
MODEL = (
    "each step replayed at its own rollout budget, planned from the replay's history before "
    "it; each prompt's rewards drawn from its observed rate over the run"
)
_NAMES = {"as run": "as run (same model)", "paper": "knapsack, paper", "bayes": "knapsack, bayes"}


def verdict(result: Diagnosis) -> str:
    """Return the report's one-sentence verdict."""
    wasted, rollouts = result.wasted_rollouts, result.rollouts
    sentence = (
        f"{_percent(wasted / rollouts)} of rollouts ({wasted:,} of {rollouts:,}) fell in groups "
        "with no gradient"
    )
    replays = {k: v for k, v in result.projections.items() if k != "as run"}
    if not replays:
        return sentence + "."
    best_name, best = min(replays.items(), key=lambda item: item[1].wasted_rollouts)
    baseline = result.projections["as run"]
    share = best.wasted_rollouts / rollouts
    base_share = baseline.wasted_rollouts / rollouts
    if best.wasted_rollouts < baseline.wasted_rollouts:
        return (
            f"{sentence}; knapsack allocation would have cut that to about {_percent(share)} "
            f"({best_name} preset; the same model puts the run as it was at "
            f"{_percent(base_share)})."
        )
    return (
        f"{sentence}; knapsack allocation would not have cut it under the model "
        f"({_percent(share)} with the {best_name} preset against {_percent(base_share)} for the "
        "run as it was)."
    )


def text_report(result: Diagnosis) -> str:
    """Return the terminal report (several lines, ending with the verdict)."""
    steps = result.steps
    lines = [
        f"knapsack-alloc diagnose: {_FORMATS[result.sources.format]}, "
        f"{len(result.sources.files):,} file{'s' * (len(result.sources.files) != 1)}, "
        f"{steps.step.size:,} steps ({int(steps.step[0])} to {int(steps.step[-1])})",
        f"  rewards: {result.log.reward}, {result.scale.describe()}",
        f"  groups: {result.log.grouping}; read with {result.log.decoder} in "
        f"{result.seconds['read']:.3g} s",
    ]
    if result.log.skipped:
        lines.append(
            f"  skipped {len(result.log.skipped)} file(s) repeating an earlier generation batch "
            f"(first: {result.log.skipped[0]})"
        )
    lines += ["", *_step_table(result), "", *_prompt_lines(result)]
    if len(result.projections) > 1:
        lines += ["", *_projection_lines(result)]
    lines += ["", f"verdict: {verdict(result)}"]
    return "\n".join(lines)


_FORMATS = {"verl": "verl rollout dump", "table": "table", "trl": "TRL completions"}


def _step_table(result: Diagnosis) -> list[str]:
    steps = result.steps
    binary = steps.all_correct_groups is not None
    header = ["", "rollouts", "groups", "no gradient"]
    header += ["all correct", "all wrong"] if binary else []
    header += ["wasted", "effective ratio"]
    rows = [header]
    chunks = (
        [np.array([i]) for i in range(steps.step.size)]
        if steps.step.size <= PHASES + 2
        else np.array_split(np.arange(steps.step.size), PHASES)
    )
    everything = np.arange(steps.step.size)
    for label, part in [("total", everything), *((_label(steps.step, c), c) for c in chunks)]:
        rollouts = int(steps.rollouts[part].sum())
        wasted = int(steps.wasted_rollouts[part].sum())
        row = [
            label,
            f"{rollouts:,}",
            f"{int(steps.groups[part].sum()):,}",
            f"{int(steps.homogeneous_groups[part].sum()):,}",
        ]
        if binary:
            assert steps.all_correct_groups is not None and steps.all_wrong_groups is not None
            row += [
                f"{int(steps.all_correct_groups[part].sum()):,}",
                f"{int(steps.all_wrong_groups[part].sum()):,}",
            ]
        row += [f"{wasted:,} ({_percent(wasted / rollouts)})", f"{1 - wasted / rollouts:.3f}"]
        rows.append(row)
    return _align(rows)


def _label(step: Any, part: Any) -> str:
    first, last = int(step[part[0]]), int(step[part[-1]])
    return f"step {first}" if first == last else f"steps {first}-{last}"


def _prompt_lines(result: Diagnosis) -> list[str]:
    prompts = result.prompts
    count = prompts.sampled.size
    sampled = prompts.sampled
    lines = [
        f"prompts: {count:,}, sampled {int(sampled.min())} to {int(sampled.max())} times "
        f"(median {float(np.median(sampled)):g})"
    ]
    if prompts.always_solved is not None and prompts.never_solved is not None:
        always, never = int(prompts.always_solved.sum()), int(prompts.never_solved.sum())
        lines[0] += (
            f"; always solved: {always:,} ({_percent(always / count)}), "
            f"never solved: {never:,} ({_percent(never / count)})"
        )
    order = np.lexsort((-prompts.rollouts, -prompts.wasted_rollouts))[:TOP_PROMPTS]
    order = order[prompts.wasted_rollouts[order] > 0]
    if order.size:
        lines.append("  most rollouts without a gradient:")
    for i in order.tolist():
        if prompts.wins is not None:
            record = f"{int(prompts.wins[i])}/{int(prompts.rollouts[i])} solved"
        else:
            record = f"mean reward {prompts.mean_reward[i]:.3g}"
        lines.append(
            f"    {int(prompts.wasted_rollouts[i]):>7,} wasted  sampled {int(sampled[i])}x, "
            f"{record}  {result.prompt_labels[i]!s:.20}  {result.prompt_previews[i][:60]!r}"
        )
    return lines


def _projection_lines(result: Diagnosis) -> list[str]:
    rows = [["", "effective ratio", "wasted", "rollouts per prompt min/p10/median/p90/max"]]
    for name, projection in result.projections.items():
        q = projection.rollouts_percentiles
        rows.append([
            _NAMES.get(name, name),
            f"{projection.effective_gradient_ratio:.3f}",
            f"{projection.wasted_rollouts:,.0f} "
            f"({_percent(projection.wasted_rollouts / result.rollouts)})",
            " / ".join(f"{q[k]:g}" for k in ("p0", "p10", "p50", "p90", "p100")),
        ])  # fmt: skip
    bounds = result.bounds
    lines = [f"counterfactual ({MODEL}; seed {result.seed}):", *_align(rows)]
    lines.append(
        f"  bounds --min-rollouts {bounds.min_rollouts} --max-rollouts {bounds.max_rollouts}: "
        f"{bounds.reason}"
    )
    if bounds is not result.suggested:
        lines.append(
            f"  suggested for this run: --min-rollouts {result.suggested.min_rollouts} "
            f"--max-rollouts {result.suggested.max_rollouts} ({result.suggested.reason})"
        )
    capped = {name: p.at_max_share for name, p in result.projections.items() if p.at_max_share}
    if capped:
        shown = ", ".join(f"{name} {_percent(share)}" for name, share in capped.items())
        lines.append(
            f"  planned groups at --max-rollouts: {shown}; if that is common, a higher bound "
            "may pay"
        )
    else:
        lines.append("  no planned group reached --max-rollouts")
    return lines


def _align(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]  # fmt: skip


def _percent(share: float) -> str:
    value = 100 * share
    return f"{value:.1f}%" if value < 10 else f"{value:.0f}%"


def json_report(result: Diagnosis) -> dict[str, Any]:
    """Return the diagnosis as JSON-compatible data (docs/diagnose.md lists the keys)."""
    steps = result.steps
    ratios = steps.effective_gradient_ratio
    binary = steps.all_correct_groups is not None
    summary: dict[str, Any] = {
        "rollouts": result.rollouts,
        "groups": int(steps.groups.sum()),
        "steps": int(steps.step.size),
        "prompts": int(result.prompts.sampled.size),
        "homogeneous_groups": int(steps.homogeneous_groups.sum()),
        "all_correct_groups": _total(steps.all_correct_groups),
        "all_wrong_groups": _total(steps.all_wrong_groups),
        "wasted_rollouts": result.wasted_rollouts,
        "effective_gradient_ratio": result.effective_gradient_ratio,
        "rewards": {
            "kind": result.scale.kind,
            "low": result.scale.low,
            "high": result.scale.high,
            "values": None if result.scale.values is None else list(result.scale.values),
            "success_threshold": result.scale.threshold,
            "description": result.scale.describe(),
        },
        "projected": _projected(result),
        "verdict": verdict(result),
    }
    step_rows = []
    for i in range(steps.step.size):
        row: dict[str, Any] = {
            "step": int(steps.step[i]),
            "rollouts": int(steps.rollouts[i]),
            "groups": int(steps.groups[i]),
            "homogeneous_groups": int(steps.homogeneous_groups[i]),
            "wasted_rollouts": int(steps.wasted_rollouts[i]),
            "effective_gradient_ratio": float(ratios[i]),
        }
        if binary:
            assert steps.all_correct_groups is not None and steps.all_wrong_groups is not None
            row["all_correct_groups"] = int(steps.all_correct_groups[i])
            row["all_wrong_groups"] = int(steps.all_wrong_groups[i])
        row["projected_effective_gradient_ratio"] = {
            _key(name): float(p.step_ratio[i]) for name, p in result.projections.items()
        }
        step_rows.append(row)
    return {
        "summary": summary,
        "input": {
            "format": result.sources.format,
            "files": list(result.sources.files),
            "skipped_files": list(result.log.skipped),
            "reward": result.log.reward,
            "grouping": result.log.grouping,
            "decoder": result.log.decoder,
            "read_seconds": result.seconds["read"],
            "replay_seconds": result.seconds["replay"],
        },
        "steps": step_rows,
        "prompts": _prompt_rows(result),
    }


def _total(values: Any) -> int | None:
    return None if values is None else int(values.sum())


def _key(name: str) -> str:
    return name.replace(" ", "_")


def _projected(result: Diagnosis) -> dict[str, Any]:
    def bounds(b: Any) -> dict[str, Any]:
        return {
            "min_rollouts": b.min_rollouts,
            "max_rollouts": b.max_rollouts,
            "default_rollouts": b.default_rollouts,
            "reason": b.reason,
        }

    projected: dict[str, Any] = {
        "model": MODEL,
        "seed": result.seed,
        "bounds": bounds(result.bounds),
        "suggested_bounds": bounds(result.suggested),
    }
    for name, projection in result.projections.items():
        projected[_key(name)] = _projection(projection)
    return projected


def _projection(projection: Projection) -> dict[str, Any]:
    return {
        "effective_gradient_ratio": projection.effective_gradient_ratio,
        "wasted_rollouts": projection.wasted_rollouts,
        "rollouts_per_prompt": projection.rollouts_percentiles,
        "at_max_rollouts_share": projection.at_max_share,
    }


def _prompt_rows(result: Diagnosis) -> list[dict[str, Any]]:
    prompts, table = result.prompts, result.groups
    wins = result.scale.wins(table)
    order = np.lexsort((table.step, table.prompt))
    starts = np.searchsorted(table.prompt[order], np.arange(prompts.sampled.size))
    stops = np.append(starts[1:], order.size)
    labels = [str(label) for label in result.prompt_labels]
    ranking = sorted(
        range(len(labels)), key=lambda i: (-int(prompts.wasted_rollouts[i]), labels[i])
    )
    replays = {_key(k): p for k, p in result.projections.items() if k != "as run"}
    rows = []
    for i in ranking:
        groups = order[starts[i] : stops[i]]
        history: dict[str, Any] = {
            "steps": table.step[groups].tolist(),
            "rollouts": table.size[groups].tolist(),
        }
        if wins is not None:
            history["successes"] = wins[groups].tolist()
        else:
            history["mean_rewards"] = (table.total[groups] / table.size[groups]).tolist()
        row: dict[str, Any] = {
            "prompt": result.prompt_labels[i],
            "text": result.prompt_previews[i],
            "sampled": int(prompts.sampled[i]),
            "rollouts": int(prompts.rollouts[i]),
            "wasted_rollouts": int(prompts.wasted_rollouts[i]),
            "successes": None if prompts.wins is None else int(prompts.wins[i]),
            "success_rate": float(prompts.rate[i]),
            "mean_reward": float(prompts.mean_reward[i]),
            "always_solved": None
            if prompts.always_solved is None
            else bool(prompts.always_solved[i]),
            "never_solved": None if prompts.never_solved is None else bool(prompts.never_solved[i]),
            "first_step": int(prompts.first_step[i]),
            "last_step": int(prompts.last_step[i]),
            "history": history,
            "projected_rollouts_per_step": {
                name: float(p.prompt_rollouts[i]) for name, p in replays.items()
            },
        }
        rows.append(row)
    return rows

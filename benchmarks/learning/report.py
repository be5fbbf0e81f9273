"""Reports of a result document: plain text for the terminal, Markdown tables for the docs.

``python -m benchmarks.learning.report RESULT.json`` prints the Markdown tables
of ``docs/evidence.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = (
    ("effective_gradient_ratio", "eff. ratio", 3),
    ("final_success", "final success", 3),
    ("final_solved", "solved", 1),
    ("heldout_change", "held-out change", 3),
    ("max_group", "max group", 0),
    ("max_abs_advantage", "max |advantage|", 2),
    ("wall_s", "wall s", 0),
)


def _cell(figure: dict[str, Any], digits: int) -> str:
    return f"{figure['mean']:.{digits}f} +- {figure['std']:.{digits}f}"


def print_report(document: dict[str, Any]) -> None:
    """Print every policy's figures (mean +- sd over seeds) and compute-to-match."""
    policies = document["policies"]
    width = max(len(name) for name in policies) + 2
    header = f"{'policy':<{width}}{'rollouts':>9}" + "".join(
        f"{title:>18}" for _, title, _ in COLUMNS
    )
    print(header)
    for name, entry in policies.items():
        seeds = entry["over_seeds"]
        print(
            f"{name:<{width}}{entry['rollouts']:>9.0f}"
            + "".join(f"{_cell(seeds[key], digits):>18}" for key, _, digits in COLUMNS)
        )
    if "uniform" in policies:
        uniform = policies["uniform"]["effective_gradient_ratio"]
        for name, entry in policies.items():
            if entry["preset"] is not None:
                print(
                    f"{name} effective-gradient ratio / uniform's: "
                    f"{entry['effective_gradient_ratio'] / uniform:.2f}"
                )
    for target, match in document["compute_to_match"].items():
        print(f"rollouts uniform needs to reach {target}'s success, as a multiple of {target}'s:")
        for step, budgets in match["by_step"].items():
            goal = next(iter(budgets.values()))["mean_curves"]["target_success"]
            parts = []
            for budget, entry in budgets.items():
                mean = entry["mean_curves"]
                reach = "never" if mean["step"] is None else f"{mean['ratio']:.2f}x"
                parts.append(f"{budget} {reach} ({entry['reached']}/{entry['seeds']} seeds)")
            print(f"  step {step:>4} (success {goal:.3f}): " + ", ".join(parts))


#: Rows of the Markdown table: figure, label, digits.
FIGURE_ROWS = (
    ("effective_gradient_ratio", "effective-gradient ratio (measured)", 3),
    ("expected_effective_gradient_ratio", "effective-gradient ratio (expected from exact p)", 3),
    ("final_success", "final mean success, training prompts", 3),
    ("mean_success_over_steps", "mean success averaged over steps", 3),
    ("final_solved", "prompts solved at the end (p > 0.5, of 64)", 1),
    ("heldout_change", "held-out prompts: change in mean success", 3),
    ("transfer", "transfer (held-out change / training change)", 2),
    ("offbatch_transfer", "off-batch change / in-batch change per step", 2),
    ("final_special_mass", "final mass on tokens that answer nothing", 4),
    ("rollouts", "rollouts spent", 0),
    ("max_group", "largest group", 0),
    ("wall_s", "wall time of the training steps (s)", 0),
    ("allocator_s", "of which in the allocator (s)", 2),
    ("success_z", "z of rewards against exact p", 2),
    ("max_abs_advantage", "largest absolute advantage trained on", 2),
    ("max_abs_advantage_unclipped", "the same before clipping and weighting", 2),
    ("advantages_clipped", "share of rollouts clipped", 4),
)


def _spread_cell(figure: dict[str, Any], digits: int) -> str:
    return (
        f"{figure['mean']:.{digits}f} ± {figure['std']:.{digits}f} "
        f"({figure['min']:.{digits}f} to {figure['max']:.{digits}f})"
    )


def figures_table(policies: dict[str, Any]) -> list[str]:
    """Lines of the table of every figure, mean ± sd (min to max) over seeds, one column a policy.

    A figure a policy's result file does not hold (older files lack some) is
    ``n/a``; a figure none of them holds is left out.
    """
    names = list(policies)
    lines = [
        "| figure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key, label, digits in FIGURE_ROWS:
        held = [key in policies[name]["over_seeds"] for name in names]
        if not any(held):
            continue
        cells = [
            _spread_cell(policies[name]["over_seeds"][key], digits) if has else "n/a"
            for name, has in zip(names, held, strict=True)
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def markdown(document: dict[str, Any]) -> str:
    """The figures table, the paired differences and the compute-to-match table.

    The paired differences and compute-to-match need a ``uniform`` policy,
    and are left out without one.
    """
    policies = document["policies"]
    names = list(policies)
    lines = figures_table(policies)
    uniform = policies["uniform"]["over_seeds"] if "uniform" in policies else None
    for key, label in (
        ("effective_gradient_ratio", "effective-gradient ratio / uniform's, per seed"),
        ("final_success", "final success - uniform's, per seed"),
    ):
        if uniform is None:
            break
        base = np.asarray(uniform[key]["values"])
        cells = []
        for name in names:
            values = np.asarray(policies[name]["over_seeds"][key]["values"])
            paired = values / base if "ratio" in key else values - base
            cells.append(
                ", ".join(f"{v:+.3f}" if "ratio" not in key else f"{v:.2f}" for v in paired)
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if document["compute_to_match"]:
        lines += ["", _match_table(document)]
    lines += ["", exactness(document)]
    return "\n".join(lines)


def exactness(document: dict[str, Any]) -> str:
    """Per-step z of the rewards against the exact success rates, pooled over every run.

    Each step with ``sum p (1 - p) > 1`` gives ``z = (rewards - sum p) / sqrt(sum p (1 - p))``;
    if the exact rates are the sampling probabilities these are close to
    standard normal.
    """
    values = []
    for entry in document["policies"].values():
        for run in entry["runs"]:
            series = run["series"]
            excess = np.asarray(series["rewards"]) - np.asarray(series["expected_rewards"])
            variance = np.asarray(series["reward_variance"])
            kept = variance > 1.0
            values.append(excess[kept] / np.sqrt(variance[kept]))
    z = np.concatenate(values)
    return (
        f"Per-step z of rewards against the exact success rates, over {z.size} steps of all "
        f"runs: mean {z.mean():+.3f}, standard deviation {z.std():.3f}, "
        f"{np.mean(np.abs(z) > 3):.4f} beyond 3 (normal: 0.0027)."
    )


def _match_table(document: dict[str, Any]) -> str:
    first = next(iter(document["compute_to_match"].values()))
    budgets = list(next(iter(first["by_step"].values())))
    lines = [
        "| target | at step | its success | "
        + " | ".join(f"{name}: rollouts needed / target's" for name in budgets)
        + " |",
        "|---|---|---|" + "---|" * len(budgets),
    ]
    for target, match in document["compute_to_match"].items():
        for step, entries in match["by_step"].items():
            goal = next(iter(entries.values()))["mean_curves"]["target_success"]
            cells = []
            for name in budgets:
                entry = entries[name]
                mean = entry["mean_curves"]
                head = "never" if mean["ratio"] is None else f"{mean['ratio']:.2f}"
                seeds = ", ".join(
                    "never" if item["ratio"] is None else f"{item['ratio']:.2f}"
                    for item in entry["per_seed"]
                )
                cells.append(f"{head} (seeds: {seeds})")
            lines.append(f"| {target} | {step} | {goal:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the Markdown tables of a result file."""
    parser = argparse.ArgumentParser(description="Markdown tables of a learning result file.")
    parser.add_argument("result", type=Path)
    options = parser.parse_args(argv)
    print(markdown(json.loads(options.result.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

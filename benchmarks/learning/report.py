"""Plain-text report of a result document."""

from __future__ import annotations

from typing import Any

COLUMNS = (
    ("effective_gradient_ratio", "eff. ratio", 3),
    ("final_success", "final success", 3),
    ("final_solved", "solved", 1),
    ("heldout_change", "held-out change", 3),
    ("max_group", "max group", 0),
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
    uniform = policies["uniform"]["effective_gradient_ratio"]
    for name in ("knapsack-paper", "knapsack-bayes"):
        print(
            f"{name} effective-gradient ratio / uniform's: "
            f"{policies[name]['effective_gradient_ratio'] / uniform:.2f}"
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

"""The evidence figure: learning curves and allocation figures of every policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

COLOURS = {
    "uniform": "#4d4d4d",
    "knapsack-paper": "#d62728",
    "knapsack-bayes": "#1f77b4",
    "uniform-1.5x": "#9e9e9e",
    "uniform-2x": "#bdbdbd",
    "knapsack-paper-clip5": "#ff7f0e",
    "knapsack-bayes-clip5": "#17becf",
    "knapsack-paper-clip5-sqrt": "#9467bd",
}
STYLES = {
    "uniform-1.5x": "--",
    "uniform-2x": ":",
    "knapsack-paper-clip5": "--",
    "knapsack-bayes-clip5": "--",
    "knapsack-paper-clip5-sqrt": "-.",
}


def smooth(values: np.ndarray[Any, Any], window: int) -> np.ndarray[Any, Any]:
    """Trailing mean over ``window`` steps (shorter at the start)."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    lows = np.maximum(np.arange(1, values.size + 1) - window, 0)
    return np.asarray((sums[1:] - sums[lows]) / (np.arange(1, values.size + 1) - lows))


def write_plot(document: dict[str, Any], path: Path) -> None:
    """Write the six-panel PNG for a result document (as written by ``--json``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = document["settings"]
    policies = document["policies"]
    seeds = len(document["seeds"])
    steps = settings["steps"]
    window = max(1, steps // 20)
    x = np.arange(1, steps + 1)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), constrained_layout=True)
    panels = [
        (axes[0, 0], "mean_success", "mean true success (training prompts)", False),
        (axes[0, 1], "mean_success", "mean true success vs rollouts spent", True),
        (axes[0, 2], "solved", "prompts solved (p > 0.5)", False),
        (axes[1, 0], "effective_ratio", f"effective-gradient ratio ({window}-step mean)", False),
        (axes[1, 1], "largest_group", f"largest group (rollouts, {window}-step mean)", False),
        (axes[1, 2], "heldout_success", "held-out prompts (never trained): mean success", False),
    ]
    start = {
        "mean_success": np.mean(
            [np.mean(p["train_initial_success"]) for p in document["population"].values()]
        ),
        "heldout_success": np.mean(
            [np.mean(p["heldout_initial_success"]) for p in document["population"].values()]
        ),
    }
    for axis, name, title, by_rollouts in panels:
        for policy, entry in policies.items():
            mean = np.asarray(entry["series"][name]["mean"], dtype=float)
            std = np.asarray(entry["series"][name]["std"], dtype=float)
            if name in ("effective_ratio", "largest_group"):
                mean = smooth(mean, window)
                std = np.zeros_like(mean)
            if name in start:
                mean = np.insert(mean, 0, start[name])
                std = np.insert(std, 0, 0.0)
                xs = np.arange(steps + 1) * (entry["budget_per_step"] if by_rollouts else 1)
            else:
                xs = x
            axis.plot(
                xs,
                mean,
                STYLES.get(policy, "-"),
                color=COLOURS.get(policy),
                label=policy,
                linewidth=1.6,
            )
            if seeds > 1 and std.any():
                axis.fill_between(
                    xs, mean - std, mean + std, color=COLOURS.get(policy), alpha=0.12, linewidth=0
                )
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("rollouts" if by_rollouts else "step")
        axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="lower right")
    model = settings["model"]
    fig.suptitle(
        f"GRPO through KnapsackGRPOTrainer: {settings['train_prompts']} training prompts, "
        f"{settings['prompts_per_step']} per step, {settings['budget']} rollouts per step at 1x, "
        f"Llama {model['layers']}x{model['hidden']}, lr {settings['learning_rate']:g}, "
        f"{seeds} seed{'s' if seeds > 1 else ''} (band: +-1 sd over seeds)",
        fontsize=11,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

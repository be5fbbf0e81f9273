"""The comparison figure: every policy's curves over steps, side by side (matplotlib)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.simulate.report import Report

_PANELS = (
    ("effective_ratio", "effective-gradient ratio", "share of rollouts in groups with a gradient"),
    ("prompts_with_gradient", "prompts with a gradient", "groups per step"),
    ("mean_success", "mean true success (accuracy proxy)", "population mean of p"),
    ("rollouts_max", "most rollouts given to one prompt", "rollouts"),
    ("rollouts", "rollouts spent per step", "rollouts"),
)
_SMOOTH = 10


def _smooth(values: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    """Trailing mean over ``width`` steps (shorter at the start)."""
    if width <= 1 or values.size < 2:
        return values
    total = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, values.size + 1), width)
    starts = np.arange(1, values.size + 1) - counts
    return (total[1:] - total[starts]) / counts


def plot_report(report: Report, path: str | os.PathLike[str]) -> None:
    """Write the comparison figure of ``report`` to ``path`` (PNG), atomically.

    Parameters
    ----------
    report : Report
        A simulation's results.
    path : str or os.PathLike
        Output file; its extension picks the format (``.png``).

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install 'knapsack-alloc[plot]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'knapsack-alloc[plot]'") from None
    scenario = report.scenario
    figure, axes = plt.subplots(2, 3, figsize=(16, 9.5), layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    steps = np.arange(1, scenario.steps + 1)
    width = _SMOOTH if scenario.steps >= 5 * _SMOOTH else 1
    for panel, (key, title, unit) in zip(axes.flat, _PANELS, strict=False):
        for index, (name, policy) in enumerate(report.policies.items()):
            colour = colours[index % len(colours)]
            mean = policy.series()[key]
            spread = policy.series_spread()[key]
            smooth = key not in ("mean_success", "rollouts")
            line = _smooth(mean, width) if smooth else mean
            panel.plot(steps, line, label=name, color=colour, linewidth=1.4)
            if len(report.seeds) > 1:
                band = _smooth(spread, width) if smooth else spread
                panel.fill_between(steps, line - band, line + band, color=colour, alpha=0.15)
        smoothed = width > 1 and key not in ("mean_success", "rollouts")
        suffix = f" ({width}-step mean)" if smoothed else ""
        panel.set_title(title + suffix, fontsize=11)
        panel.set_xlabel("training step")
        panel.set_ylabel(unit)
        panel.grid(alpha=0.3)
    axes.flat[4].axhline(scenario.budget, color="black", linestyle=":", linewidth=1,
                         label=f"budget {scenario.budget}")  # fmt: skip
    axes.flat[0].legend(fontsize=9, loc="best")
    _summary_table(axes.flat[5], report)
    seeds = report.seeds
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else (
        f"{len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), mean and ±1 s.d. band"
    )  # fmt: skip
    described = scenario.describe()
    figure.suptitle(
        f"knapsack-alloc simulate: {described['population']}, {described['prompts']} prompts, "
        f"batch {scenario.batch_size}, budget {scenario.budget}/step, {scenario.steps} steps, "
        f"learning rate {scenario.model.learning_rate:g}, transfer {scenario.model.transfer:g}; "
        f"{seed_text}",
        fontsize=11,
    )
    _save(figure, path)
    plt.close(figure)


def _summary_table(axis: Any, report: Report) -> None:
    """Draw the headline figures as a table, so the figure reads without the JSON."""
    axis.axis("off")
    base = report.policies.get("uniform")
    base_ratio = base.summary()["effective_gradient_ratio"] if base else None
    matches = {m["policy"]: m for m in _match_rows(report)}
    header = ["policy", "eff. ratio", "vs uniform", "final success", "max N"]
    if matches:
        header.append("uniform x to match")
    rows = []
    for name, policy in report.policies.items():
        s = policy.summary()
        ratio = s["effective_gradient_ratio"]
        row = [
            name,
            f"{ratio:.3f}",
            f"{ratio / base_ratio:.2f}x" if base_ratio else "-",
            f"{s['final_mean_success']:.3f}",
            f"{s['max_rollouts']:.0f}",
        ]
        if matches:
            row.append(matches[name]["text"] if name in matches else "-")
        rows.append(row)
    table = axis.table(cellText=rows, colLabels=header, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.0, 1.5)
    axis.set_title("over the whole run (means over steps and seeds)", fontsize=11)


def _match_rows(report: Report) -> list[dict[str, str]]:
    rows = []
    for name in dict.fromkeys(m.policy for m in report.matches):
        mine = [m for m in report.matches if m.policy == name]
        factors = [m.factor for m in mine if m.factor is not None]
        if not factors:
            rows.append({"policy": name, "text": "static"})
            continue
        marks = {"above_range": ">", "below_range": "<", "matched": ""}
        mark = marks.get(mine[0].status, "") if len({m.status for m in mine}) == 1 else "~"
        rows.append({"policy": name, "text": f"{mark}{np.mean(factors):.2f}x"})
    return rows


def _save(figure: Any, path: str | os.PathLike[str]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(os.fspath(path))[1] or ".png"
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".simulate-", suffix=suffix)
    os.close(descriptor)
    try:
        figure.savefig(temporary, dpi=110)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise

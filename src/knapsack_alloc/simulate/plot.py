"""The comparison figure: every policy's curves over steps, side by side (matplotlib)."""

from __future__ import annotations

import os
import tempfile
import textwrap
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import MissingDependencyError
from knapsack_alloc.simulate.report import Report, replace_file

_PANELS = (
    ("effective_ratio", "effective-gradient ratio", "share of rollouts in groups with a gradient"),
    ("prompts_with_gradient", "prompts with a gradient", "groups per step"),
    ("mean_success", "mean true success (accuracy proxy)", "population mean of p"),
    ("rollouts_max", "most rollouts given to one prompt", "rollouts"),
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
        raise MissingDependencyError(
            "--plot needs matplotlib: pip install 'knapsack-alloc[plot]'"
        ) from None
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
            smooth = key != "mean_success"
            line = _smooth(mean, width) if smooth else mean
            panel.plot(steps, line, label=name, color=colour, linewidth=1.4)
            if len(report.seeds) > 1:
                band = _smooth(spread, width) if smooth else spread
                panel.fill_between(steps, line - band, line + band, color=colour, alpha=0.15)
        smoothed = width > 1 and key != "mean_success"
        suffix = f" ({width}-step mean)" if smoothed else ""
        panel.set_title(title + suffix, fontsize=11)
        panel.set_xlabel("training step")
        panel.set_ylabel(unit)
        panel.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=9, loc="best")
    _distribution(axes.flat[4], report, colours)
    _summary_table(axes.flat[5], report)
    seeds = report.seeds
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else (
        f"{len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), mean and ±1 s.d. band"
    )  # fmt: skip
    described = scenario.describe()
    figure.suptitle(
        f"knapsack-alloc simulate: {described['population']}, {described['prompts']} prompts\n"
        f"batch {scenario.batch_size}, budget {scenario.budget} rollouts/step, "
        f"{scenario.steps} steps, learning rate {scenario.model.learning_rate:g}, "
        f"transfer {scenario.model.transfer:g}; {seed_text}",
        fontsize=11,
    )
    _save(figure, path)
    plt.close(figure)


def _distribution(axis: Any, report: Report, colours: list[str]) -> None:
    """Draw each policy's rollouts per sampled prompt: p10-p90, median and maximum."""
    names = list(report.policies)
    for index, name in enumerate(names):
        series = report.policies[name].series()
        low, mid, high = (float(series[k].mean()) for k in ("rollouts_p10", "rollouts_p50",
                                                             "rollouts_p90"))  # fmt: skip
        top = float(series["rollouts_max"].max())
        colour = colours[index % len(colours)]
        axis.vlines(index, low, high, color=colour, linewidth=8, alpha=0.6)
        axis.plot(index, mid, "o", color="black", markersize=5)
        axis.plot(index, top, "x", color=colour, markersize=9, markeredgewidth=2)
    axis.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=9)
    axis.set_yscale("log", base=2)
    axis.set_ylabel("rollouts per sampled prompt")
    axis.set_title("rollouts per prompt: p10-p90 (bar), median (dot), run max (x)", fontsize=11)
    axis.grid(alpha=0.3, which="both")


def _summary_table(axis: Any, report: Report) -> None:
    """Draw the headline figures as a table, so the figure reads without the JSON."""
    axis.axis("off")
    scenario = report.scenario
    base = report.policies.get("uniform")
    base_ratio = base.summary()["effective_gradient_ratio"] if base else None
    matches = {m["policy"]: m for m in _match_rows(report)}
    header = ["policy", "eff. ratio", "vs uniform", "final success", "max N", "spent"]
    if matches:
        header.append("uniform to match")
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
            f"{s['rollouts'] / (scenario.budget * scenario.steps):.0%}",
        ]
        if matches:
            row.append(matches[name]["text"] if name in matches else "-")
        rows.append(row)
    table = axis.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.auto_set_column_width(list(range(len(header))))
    table.scale(1.0, 1.6)
    axis.set_title("whole run (means over steps and seeds)", fontsize=11)
    note = (
        f"spent: rollouts drawn, as a share of the budget ({scenario.budget} per step). "
        "max N: most rollouts given to one prompt in one step."
    )
    if matches:
        note += (
            " uniform to match: the budget uniform needs to reach the policy's final success, "
            "as a multiple of the budget (> and < mark the ends of the range tried)."
        )
    axis.text(0.5, 0.02, textwrap.fill(note, 70), ha="center", va="bottom", fontsize=8,
              transform=axis.transAxes)  # fmt: skip


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
        replace_file(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise

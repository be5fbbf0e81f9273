"""The diagnosis as a figure: wasted share per step, and the spread of prompt success rates."""

from __future__ import annotations

from typing import Any

import numpy as np

from knapsack_alloc.diagnose.diagnosis import Diagnosis
from knapsack_alloc.exceptions import MissingDependencyError

_STYLES = {
    "as run": {"color": "0.45", "linestyle": "--"},
    "paper": {"color": "tab:blue"},
    "bayes": {"color": "tab:green"},
}


def render(result: Diagnosis, handle: Any) -> None:
    """Draw the figure and write it to ``handle`` (a path or binary file) as PNG.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise MissingDependencyError(
            "--plot needs matplotlib: pip install 'knapsack-alloc[plot]'"
        ) from None
    steps = result.steps
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    try:
        marker = "o" if steps.step.size <= 40 else None
        left.plot(steps.step, 100 * (1 - steps.effective_gradient_ratio), color="tab:red",
                  marker=marker, label="observed")  # fmt: skip
        for name, projection in result.projections.items():
            label = "as run, model" if name == "as run" else f"knapsack {name}, model"
            left.plot(steps.step, 100 * (1 - projection.step_ratio), label=label,
                      **_STYLES.get(name, {}))  # fmt: skip
        left.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.set_xlabel("step")
        left.set_ylabel("rollouts in groups without a gradient (%)")
        left.set_ylim(bottom=0)
        left.set_title("Wasted share per step")
        left.legend()
        rates = result.prompts.rate
        right.hist(rates, bins=np.linspace(0, 1, 21), color="tab:purple", edgecolor="white")
        right.set_xlabel(
            "success rate over the run" if result.scale.counts_successes
            else "mean reward, rescaled to [0, 1]"
        )  # fmt: skip
        right.set_ylabel("prompts")
        right.set_title(f"Per-prompt success rates ({rates.size:,} prompts)")
        figure.savefig(handle, format="png", dpi=110)
    finally:
        plt.close(figure)

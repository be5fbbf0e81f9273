"""MkDocs hook: draw the site's figures from the library at every build.

Each figure is computed by the installed ``knapsack_alloc`` when the site is
built, so a picture can never disagree with the code it shows. Pages embed
them as ``img/<name>.png``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files


def rollouts_by_success_rate() -> bytes:
    """Rollouts that ``allocate`` gives each prompt of the paper's step, by success rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from knapsack_alloc import allocate

    rates = np.linspace(0.0, 1.0, 256)
    figure, axes = plt.subplots(figsize=(7.0, 3.6), dpi=110, layout="constrained")
    axes.axhline(8, color="0.55", linestyle="--", linewidth=1.2, label="uniform: 8 each")
    for value, color in (("grpo", "tab:blue"), ("nonzero", "tab:orange")):
        counts = allocate(rates, budget=2048, min_rollouts=2, max_rollouts=128, value=value).counts
        axes.step(rates, counts, where="mid", color=color, linewidth=1.6, label=f'value="{value}"')
    axes.set_xlabel("success rate p of the prompt")
    axes.set_ylabel("rollouts")
    axes.set_title("256 prompts, 2048 rollouts, 2 to 128 per prompt", fontsize=10)
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0, None)
    axes.grid(alpha=0.3)
    axes.legend(frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


FIGURES: dict[str, Callable[[], bytes]] = {
    "img/rollouts-by-success-rate.png": rollouts_by_success_rate,
}


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    """Add every figure to the site's files, so pages can link to it."""
    for path, draw in FIGURES.items():
        files.append(File.generated(config, path, content=draw()))
    return files

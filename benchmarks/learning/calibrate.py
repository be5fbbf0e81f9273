"""Calibrate ``knapsack-alloc simulate`` against the learning experiment.

The simulator is run on the experiment's own initial populations (the exact
initial success of every training prompt, per seed), with the experiment's
batch, budget and steps, under two learning models:

* ``defaults``: the simulator's default learning rate and transfer, what a
  user gets by pointing it at a population;
* ``fitted``: transfer 0 (the experiment measured no transfer to prompts it
  never trained on) and the learning rate whose simulated *uniform* success
  curve is closest (least squares over steps, mean over seeds) to the measured
  uniform curve. Only uniform is fitted; the knapsack policies are then
  predictions.

For each policy it reports the predicted and measured effective-gradient
ratio, final success and the success curve. Run with::

    python -m benchmarks.learning.calibrate RESULT.json [--json OUT.json] [--plot OUT.png]

It needs only knapsack-alloc (and matplotlib for the plot), not torch.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks.learning.summary import write_json

POLICIES = ("uniform", "knapsack-paper", "knapsack-bayes")
#: Learning rates tried for the fit (the simulator accepts [0, 4]).
RATES = tuple(float(r) for r in np.geomspace(0.005, 4.0, 40))


def _scenario(rates: Sequence[float], result: dict[str, Any], rate: float, transfer: float) -> Any:
    from knapsack_alloc.simulate import LearningModel, Population, Scenario

    settings = result["settings"]
    population = Population(
        name="learning-experiment", size=len(rates), rates=np.asarray(rates, dtype=np.float64)
    )
    return Scenario(
        population,
        batch_size=settings["prompts_per_step"],
        budget=settings["budget"],
        steps=settings["steps"],
        model=LearningModel(rate, transfer),
    )


def simulate_policies(
    result: dict[str, Any], rate: float, transfer: float, policies: Sequence[str] = POLICIES
) -> dict[str, dict[str, Any]]:
    """Simulate each policy once per experiment seed, on that seed's initial population.

    Returns
    -------
    dict
        Per policy: ``effective_ratio`` and ``mean_success`` per-step curves
        (mean over seeds), ``effective_gradient_ratio`` and ``final_success``
        per seed.
    """
    from knapsack_alloc.simulate import simulate

    runs: dict[str, list[dict[str, np.ndarray[Any, Any]]]] = {name: [] for name in policies}
    for seed in result["seeds"]:
        rates = result["population"][str(seed)]["train_initial_success"]
        report = simulate(_scenario(rates, result, rate, transfer), policies, [seed], jobs=1)
        for name in policies:
            runs[name].append(report.policies[name].series())
    return {
        name: {
            "mean_success": np.mean([r["mean_success"] for r in per_seed], axis=0).tolist(),
            "effective_ratio": np.mean([r["effective_ratio"] for r in per_seed], axis=0).tolist(),
            "effective_gradient_ratio": [float(np.mean(r["effective_ratio"])) for r in per_seed],
            "final_success": [float(r["mean_success"][-1]) for r in per_seed],
        }
        for name, per_seed in runs.items()
    }


def fit_rate(result: dict[str, Any]) -> tuple[float, list[float]]:
    """The learning rate (transfer 0) whose uniform curve best matches the measured one."""
    measured = np.asarray(result["policies"]["uniform"]["series"]["mean_success"]["mean"])
    errors = []
    for rate in RATES:
        curve = simulate_policies(result, rate, 0.0, ["uniform"])["uniform"]["mean_success"]
        errors.append(float(np.sqrt(np.mean((np.asarray(curve) - measured) ** 2))))
    return RATES[int(np.argmin(errors))], errors


def _measured(result: dict[str, Any], name: str) -> dict[str, Any]:
    entry = result["policies"][name]
    return {
        "mean_success": entry["series"]["mean_success"]["mean"],
        "effective_ratio": entry["series"]["effective_ratio"]["mean"],
        "effective_gradient_ratio": entry["over_seeds"]["effective_gradient_ratio"]["values"],
        "final_success": entry["over_seeds"]["final_success"]["values"],
    }


def curve_figures(entry: dict[str, Any]) -> dict[str, float]:
    """Figures read off the seed-mean curves of a policy, measured or simulated.

    ``effective_ratio_first_quarter`` covers the steps before the population
    has moved much, where a static model should hold best.
    """
    ratio = np.asarray(entry["effective_ratio"])
    success = np.asarray(entry["mean_success"])
    quarter = max(1, ratio.size // 4)
    return {
        "effective_ratio": float(ratio.mean()),
        "effective_ratio_first_quarter": float(ratio[:quarter].mean()),
        "success_at_half": float(success[success.size // 2 - 1]),
        "final_success": float(success[-1]),
        "curve_rmse": 0.0,
    }


def calibrate(result: dict[str, Any]) -> dict[str, Any]:
    """Predicted against measured figures under the default and the fitted learning model."""
    from knapsack_alloc.simulate.scenario import DEFAULT_LEARNING_RATE, DEFAULT_TRANSFER

    rate, errors = fit_rate(result)
    models = {
        "defaults": (DEFAULT_LEARNING_RATE, DEFAULT_TRANSFER),
        "fitted": (rate, 0.0),
    }
    measured = {name: _measured(result, name) for name in POLICIES}
    document: dict[str, Any] = {
        "source": result.get("command"),
        "seeds": result["seeds"],
        "fit": {"transfer": 0.0, "rates": list(RATES), "rmse": errors, "rate": rate},
        "measured": measured,
        "measured_figures": {name: curve_figures(measured[name]) for name in POLICIES},
        "models": {},
    }
    for label, (learning_rate, transfer) in models.items():
        predicted = simulate_policies(result, learning_rate, transfer)
        figures = {}
        for name in POLICIES:
            figures[name] = curve_figures(predicted[name])
            gap = np.asarray(predicted[name]["mean_success"]) - measured[name]["mean_success"]
            figures[name]["curve_rmse"] = float(np.sqrt(np.mean(gap**2)))
        document["models"][label] = {
            "learning_rate": learning_rate,
            "transfer": transfer,
            "predicted": predicted,
            "figures": figures,
        }
    return document


def print_calibration(document: dict[str, Any]) -> None:
    """Predicted against measured figures, on the seed-mean curves."""
    keys = ("effective_ratio", "effective_ratio_first_quarter", "success_at_half", "final_success")
    print(f"{'':<26}" + "".join(f"{key:>32}" for key in (*keys, "curve_rmse")))
    measured = document["measured_figures"]
    for label, model in document["models"].items():
        print(
            f"{label} (learning rate {model['learning_rate']:.3g}, transfer {model['transfer']:g})"
        )
        for name in POLICIES:
            got, want = model["figures"][name], measured[name]
            cells = "".join(f"{f'{got[key]:.3f} vs {want[key]:.3f}':>32}" for key in keys)
            print(f"  {name:<24}{cells}{got['curve_rmse']:>32.3f}")
    print("(simulated vs measured; means over seeds)")


def write_plot(document: dict[str, Any], path: Path) -> None:
    """Measured against predicted success and effective-ratio curves (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from benchmarks.learning.plot import COLOURS, smooth

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    for column, (label, model) in enumerate(document["models"].items()):
        for name in POLICIES:
            measured = document["measured"][name]
            predicted = model["predicted"][name]
            steps = np.arange(1, len(measured["mean_success"]) + 1)
            window = max(1, steps.size // 20)
            colour = COLOURS[name]
            axes[0, column].plot(steps, measured["mean_success"], color=colour, label=f"{name}")
            axes[0, column].plot(steps, predicted["mean_success"], "--", color=colour)
            axes[1, column].plot(
                steps, smooth(np.asarray(measured["effective_ratio"]), window), color=colour
            )
            axes[1, column].plot(
                steps, smooth(np.asarray(predicted["effective_ratio"]), window), "--",
                color=colour,
            )  # fmt: skip
        title = (
            f"simulator {label}: learning rate {model['learning_rate']:.3g}, "
            f"transfer {model['transfer']:g}"
        )
        axes[0, column].set_title(f"mean success — {title}", fontsize=9)
        axes[1, column].set_title(f"effective-gradient ratio ({window}-step mean)", fontsize=9)
        for axis in axes[:, column]:
            axis.set_xlabel("step")
            axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, title="solid: measured, dashed: simulated", title_fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the calibration; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("result", type=Path, help="the experiment's --json output")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    options = parser.parse_args(argv)
    try:
        result = json.loads(options.result.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: cannot read {options.result}: {error}") from None
    document = calibrate(result)
    print_calibration(document)
    if options.json is not None:
        write_json(document, options.json)
        print(f"wrote {options.json}")
    if options.plot is not None:
        write_plot(document, options.plot)
        print(f"wrote {options.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

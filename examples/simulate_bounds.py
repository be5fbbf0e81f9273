"""Reproduce the simulator study behind the advice on ``min_rollouts`` and ``max_rollouts``.

Each variant changes one bound of a preset, and runs against the same preset
with its defaults (``min_rollouts=2``, ``max_rollouts=128``) on the learning
scenario of two population presets (the defaults: 10,000 prompts, batch 256,
budget 2048, 500 steps), paired by seed. The settings were fixed before the
first run:

* populations ``math-rl`` (the default) and ``hard`` (30% of prompts at 0,
  where a large cap matters most);
* ``max_rollouts`` in 16, 32, 64 (and the default 128), ``min_rollouts`` in
  1 and 4 (and the default 2), for ``"paper"`` and ``"bayes"``;
* seeds 0, 1 and 2; ``uniform`` as the reference;
* a difference is read as real only if all three seeds agree in sign.

``docs/choosing.md`` shows the tables this prints.

    python examples/simulate_bounds.py
    python examples/simulate_bounds.py --populations flat --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse

import numpy as np

from knapsack_alloc.simulate import Knapsack, Population, Scenario, Uniform, simulate

FIGURES = (
    ("effective_gradient_ratio", "effective ratio", 3),
    ("final_mean_success", "final success", 4),
    ("infogain_per_step", "InfoGain/step", 2),
    ("max_rollouts", "largest group", 0),
)
VARIANTS = (
    ("max_rollouts", 16),
    ("max_rollouts", 32),
    ("max_rollouts", 64),
    ("min_rollouts", 1),
    ("min_rollouts", 4),
)


def bounded(preset: str, parameter: str | None = None, bound: int | None = None) -> Knapsack:
    """A knapsack policy named after the one bound it changes."""
    if parameter is None:
        return Knapsack(preset)
    policy = Knapsack(preset, **{parameter: bound})
    policy.name = f"{preset} {parameter.split('_')[0]}={bound}"
    return policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--populations", nargs="+", default=["math-rl", "hard"])
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    for population in args.populations:
        scenario = Scenario(Population.from_argument(population))
        policies = [Uniform()]
        for preset in ("paper", "bayes"):
            policies.append(bounded(preset))
            policies.extend(bounded(preset, p, b) for p, b in VARIANTS)
        report = simulate(scenario, policies, args.seeds, jobs=args.jobs)
        print(f"\n{population}: means over seeds {args.seeds}")
        print("| policy | " + " | ".join(label for _, label, _ in FIGURES) + " |")
        print("|---" * (len(FIGURES) + 1) + "|")
        for policy in policies:
            runs = report.policies[policy.name].runs
            cells = []
            for key, _, digits in FIGURES:
                mean = np.mean([run.summary()[key] for run in runs])
                cells.append(f"{mean:.{digits}f}")
            print(f"| {policy.name} | " + " | ".join(cells) + " |")
        print(f"\n{population}: each variant minus its preset with default bounds, by seed")
        print("| variant | " + " | ".join(label for _, label, _ in FIGURES[:3]) + " |")
        print("|---" * 4 + "|")
        for policy in policies:
            preset = policy.name.split()[0]
            if " " not in policy.name:
                continue
            runs = report.policies[policy.name].runs
            reference = report.policies[f"knapsack-{preset}"].runs
            cells = []
            for key, _, digits in FIGURES[:3]:
                pairs = zip(runs, reference, strict=True)  # the same seeds
                gaps = [a.summary()[key] - b.summary()[key] for a, b in pairs]
                agree = all(g > 0 for g in gaps) or all(g < 0 for g in gaps)
                text = ", ".join(f"{g:+.{digits}f}" for g in gaps)
                cells.append(f"{np.mean(gaps):+.{digits}f} ({text}){'' if agree else ' ~'}")
            print(f"| {policy.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

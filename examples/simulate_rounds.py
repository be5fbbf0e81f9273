"""Compare sampling in rounds with single-round allocation and the published alternatives.

Every population preset, static (learning rate 0, 2,048 prompts, 300 steps)
and learning (the defaults: 10,000 prompts, 500 steps), at the default batch
(256) and budget (2,048 rollouts a step), with the same policies on the same
seeds:

* ``knapsack-paper`` and ``knapsack-bayes`` (one round: ``plan``);
* ``knapsack-rounds-*`` (two rounds of half the budget each) and
  ``knapsack-rounds3-*`` (three rounds of a third each) for both presets;
* ``rounds`` (Reinforce-Ada / AR3PO: stop a prompt at its first mixed
  group), ``dapo``, ``greso`` and ``uniform``.

It prints, as Markdown tables: each policy's figures per scenario (means over
the seeds); the gain of two rounds over one and of three over two, paired by
seed (mean and standard deviation over the seeds); and, for the learning
scenarios, the wall-time break-even: the single-round policy runs
``--long-steps`` steps, and the first step at which its mean success (mean
over the seeds) reaches a rounds policy's final success at the scenario's
length says how much wall time one more generation wave may cost before
rounds stop paying. ``docs/rounds.md`` shows what this printed for seeds 0,
1 and 2::

    python examples/simulate_rounds.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse

import numpy as np

from knapsack_alloc.simulate import (
    PRESETS,
    Knapsack,
    KnapsackRounds,
    LearningModel,
    Population,
    Scenario,
    make_policy,
    simulate,
)

#: (kind, learning rate, prompts, steps) of the two scenarios per population.
KINDS = (("static", 0.0, 2048, 300), ("learning", 0.25, 10_000, 500))
ALLOCATORS = ("paper", "bayes")


def policies():
    chosen = [make_policy("uniform")]
    for preset in ALLOCATORS:
        chosen += [Knapsack(preset), KnapsackRounds(preset, 2), KnapsackRounds(preset, 3)]
    return chosen + [make_policy(name) for name in ("rounds", "dapo", "greso")]


def rounds_name(preset, rounds):
    return {1: f"knapsack-{preset}", 2: f"knapsack-rounds-{preset}"}.get(
        rounds, f"knapsack-rounds{rounds}-{preset}"
    )


def scenario(population, rate, prompts, steps):
    return Scenario(
        Population.from_argument(population, prompts=prompts),
        steps=steps,
        model=LearningModel(rate, 1.0),
    )


def figures(runs):
    """Mean over seeds of the reported figures of one policy."""
    summaries = [run.summary() for run in runs]

    def mean(key):
        return float(np.mean([s[key] for s in summaries]))

    def series(key):
        return float(np.mean([run.series[key].mean() for run in runs]))

    return {
        "effective ratio": mean("effective_gradient_ratio"),
        "final success": mean("final_mean_success"),
        "prompts with gradient / step": mean("prompts_with_gradient"),
        "InfoGain / step": mean("infogain_per_step"),
        "rollouts per prompt p50": series("rollouts_p50"),
        "p90": series("rollouts_p90"),
        "max": max(s["max_rollouts"] for s in summaries),
    }


FORMATS = {
    "effective ratio": "{:.3f}",
    "final success": "{:.4f}",
    "prompts with gradient / step": "{:.1f}",
    "InfoGain / step": "{:.2f}",
    "rollouts per prompt p50": "{:.1f}",
    "p90": "{:.1f}",
    "max": "{:.0f}",
}
GAINS = (
    ("effective_gradient_ratio", "effective ratio", "{:+.3f}"),
    ("final_mean_success", "final success", "{:+.4f}"),
    ("prompts_with_gradient", "prompts with gradient / step", "{:+.1f}"),
    ("infogain_per_step", "InfoGain / step", "{:+.2f}"),
)


def gain(runs, reference, key):
    gaps = [a.summary()[key] - b.summary()[key] for a, b in zip(runs, reference, strict=True)]
    return float(np.mean(gaps)), float(np.std(gaps, ddof=1)) if len(gaps) > 1 else 0.0


def break_even(long_runs, target, steps, rounds):
    """Extra-wave cost (share of a step) at which ``rounds`` rounds tie, or a bound."""
    curve = np.mean([run.series["mean_success"] for run in long_runs], axis=0)
    reached = np.flatnonzero(curve >= target)
    if reached.size == 0:
        return f"> {(curve.size / steps - 1) / (rounds - 1):.2f}"
    matched = int(reached[0]) + 1
    return f"{(matched / steps - 1) / (rounds - 1):.2f} ({matched} steps)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--populations", nargs="+", default=list(PRESETS))
    parser.add_argument("--long-steps", type=int, default=1500)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    gains = {}
    even = {}
    for population in args.populations:
        for kind, rate, prompts, steps in KINDS:
            report = simulate(
                scenario(population, rate, prompts, steps), policies(), args.seeds, jobs=args.jobs
            )
            print(f"\n#### {population}, {kind}\n")
            print("| policy | " + " | ".join(FORMATS) + " |")
            print("|---" * (len(FORMATS) + 1) + "|")
            for name, entry in report.policies.items():
                row = figures(entry.runs)
                cells = [FORMATS[key].format(row[key]) for key in FORMATS]
                print(f"| {name} | " + " | ".join(cells) + " |")
            for preset in ALLOCATORS:
                runs = [report.policies[rounds_name(preset, r)].runs for r in (1, 2, 3)]
                gains[population, kind, preset] = [
                    [gain(runs[r], runs[r - 1], key) for key, _, _ in GAINS] for r in (1, 2)
                ]
            if kind == "learning":
                long = scenario(population, rate, prompts, args.long_steps)
                singles = simulate(
                    long, [Knapsack(p) for p in ALLOCATORS], args.seeds, jobs=args.jobs
                )
                for preset in ALLOCATORS:
                    single = singles.policies[rounds_name(preset, 1)].runs
                    for rounds in (2, 3):
                        target = figures(report.policies[rounds_name(preset, rounds)].runs)
                        even[population, preset, rounds] = break_even(
                            single, target["final success"], steps, rounds
                        )
    print("\n#### Gains, paired by seed (mean ± sd)\n")
    print("| scenario | preset | rounds | " + " | ".join(label for _, label, _ in GAINS) + " |")
    print("|---" * (len(GAINS) + 3) + "|")
    for (population, kind, preset), rows in gains.items():
        for label, row in zip(("2 over 1", "3 over 2"), rows, strict=True):
            cells = [
                f"{fmt.format(m)} ± {fmt.format(s).lstrip('+')}"
                for (m, s), (_, _, fmt) in zip(row, GAINS, strict=True)
            ]
            print(f"| {population} {kind} | {preset} | {label} | " + " | ".join(cells) + " |")
    if even:
        print("\n#### Wall-time break-even (learning scenarios)\n")
        print("| population | preset | 2 rounds | 3 rounds |")
        print("|---|---|---|---|")
        for population in args.populations:
            for preset in ALLOCATORS:
                cells = [even[population, preset, r] for r in (2, 3)]
                print(f"| {population} | {preset} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

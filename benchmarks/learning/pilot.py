"""Pilot: uniform GRPO only, over a grid of learning rates, on seeds the experiment never uses.

This is how the learning rate of ``design.CPU`` was chosen, before any
knapsack run: the rate under which the uniform policy's mean success over the
training prompts is highest after the experiment's number of steps, averaged
over the pilot seeds. Run with::

    python -m benchmarks.learning.pilot [--rates 1e-3 3e-3 1e-2 3e-2] [--steps 200]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from benchmarks.learning.design import COMPARED, CPU
from benchmarks.learning.experiment import load_average, run_all

PILOT_SEEDS = (1000, 1001)
CHECKPOINTS = (25, 50, 100, 200, 400)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2, 3e-2])
    parser.add_argument("--steps", type=int, default=CPU.steps)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args(argv)
    uniform = COMPARED[0]
    print(f"load average before: {load_average()}")
    marks = [c for c in CHECKPOINTS if c <= options.steps]
    print(
        f"{'rate':>8} {'seed':>5} {'start':>6} "
        + " ".join(f"{f'@{c}':>6}" for c in marks)
        + f" {'held-out':>8} {'s/step':>7}"
    )
    for rate in options.rates:
        settings = replace(CPU, learning_rate=rate, steps=options.steps)
        records = run_all(settings, [uniform], PILOT_SEEDS, options.workers)
        finals = []
        for seed in PILOT_SEEDS:
            run = records[uniform.name, seed]
            success = run.series["mean_success"]
            start = run.initial_success[: settings.train_prompts].mean()
            finals.append(success[-1])
            print(
                f"{rate:>8.0e} {seed:>5} {start:>6.3f} "
                + " ".join(f"{success[c - 1]:>6.3f}" for c in marks)
                + f" {run.series['heldout_success'][-1]:>8.3f}"
                + f" {np.mean(run.series['wall_s']):>7.3f}"
            )
        print(f"{rate:>8.0e}  mean final success {np.mean(finals):.3f}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()

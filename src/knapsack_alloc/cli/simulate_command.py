"""``knapsack-alloc simulate``: compare allocation policies on a simulated training run."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

DESCRIPTION = """\
Run a seeded model of GRPO training on a prompt population and compare
allocation policies at an equal rollout budget per step: uniform, the
allocator's presets (knapsack-paper, knapsack-bayes) and published
alternatives (dapo, greso, rounds). Every policy sees the same population,
data-loader stream and common random numbers, and its rollouts are counted
and checked. Prints per policy the effective-gradient ratio (share of
rollouts in groups with a gradient), prompts with a gradient per step, the
most rollouts given to one prompt, the final mean true success rate and the
rollouts spent. The model and its assumptions: docs/simulator.md.

POPULATION is a preset (math-rl, hard, easy, flat), a mixture such as
"0.2*point(0) + 0.8*beta(0.5,0.5)", or a file of prompt_id,success_rate rows
(.csv, .jsonl, .parquet)."""

EPILOG = """\
examples:
  knapsack-alloc simulate
  knapsack-alloc simulate --learning-rate 0 --prompts 2048 --steps 300
  knapsack-alloc simulate --population rates.csv --policies uniform knapsack-paper
  knapsack-alloc simulate --seeds 5 --json sim.json --plot sim.png
  knapsack-alloc simulate --compute-to-match --policies uniform knapsack-paper"""


def add_parser(commands: Any) -> None:
    """Register the subcommand on ``commands`` (an argparse subparsers object)."""
    from knapsack_alloc.simulate import POLICIES
    from knapsack_alloc.simulate.scenario import (
        DEFAULT_BATCH,
        DEFAULT_BUDGET,
        DEFAULT_LEARNING_RATE,
        DEFAULT_POPULATION,
        DEFAULT_STEPS,
        DEFAULT_TRANSFER,
    )

    parser = commands.add_parser(
        "simulate",
        help="compare allocation policies on a simulated training run",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--population",
        default=DEFAULT_POPULATION,
        metavar="POPULATION",
        help=f"preset, mixture or file (default {DEFAULT_POPULATION})",
    )
    parser.add_argument(
        "--prompts", type=int, metavar="N", help="prompts of a preset or mixture (default 10000)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"prompts per batch (default {DEFAULT_BATCH})",
    )
    parser.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_BUDGET,
        metavar="B",
        help=f"rollouts per step for every policy (default {DEFAULT_BUDGET})",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        metavar="T",
        help=f"training steps (default {DEFAULT_STEPS})",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=DEFAULT_LEARNING_RATE,
        metavar="R",
        help="scale of a prompt's step, R * p(1-p)^2; 0 freezes "
        f"the population (default {DEFAULT_LEARNING_RATE:g})",
    )
    parser.add_argument(
        "--transfer",
        type=float,
        default=DEFAULT_TRANSFER,
        metavar="X",
        help="learning shared with all prompts, as a multiple of the direct "
        f"gains (default {DEFAULT_TRANSFER:g})",
    )
    parser.add_argument(
        "--policies",
        nargs="+",
        default=list(POLICIES),
        choices=list(POLICIES),
        metavar="NAME",
        help=f"policies to run (default all: {' '.join(POLICIES)})",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="first seed (default 0)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="K",
        help="run seeds S..S+K-1 and report mean and spread (default 1)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="J",
        help="worker processes (default: one per CPU with --seeds above 1 or "
        "--compute-to-match, else 1)",
    )
    parser.add_argument(
        "--compute-to-match",
        action="store_true",
        help="find the budget uniform needs to reach each policy's final "
        "mean success (bisection; runs uniform many times)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    parser.add_argument("--plot", metavar="PATH.png", help="write the comparison figure (PNG)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Execute ``simulate`` for parsed ``args``; returns the exit code."""
    from knapsack_alloc.cli.tables import CommandError
    from knapsack_alloc.simulate import LearningModel, Population, Scenario, simulate
    from knapsack_alloc.simulate.matching import bisection_runs, grid_budgets

    if args.seeds < 1:
        raise CommandError(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs is not None and args.jobs < 1:
        raise CommandError(f"--jobs must be >= 1, got {args.jobs}")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise CommandError(f"--plot writes a PNG; give a path ending in .png, got {args.plot!r}")
    for path in (args.json, args.plot):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not os.path.isdir(folder):
            raise CommandError(f"{path}: the folder {folder} does not exist")
    if args.plot:
        _require_matplotlib()
    scenario = Scenario(
        population=Population.from_argument(args.population, args.prompts),
        batch_size=args.batch,
        budget=args.budget,
        steps=args.steps,
        model=LearningModel(args.learning_rate, args.transfer),
    )
    seeds = list(range(args.seed, args.seed + args.seeds))
    policies = list(dict.fromkeys(args.policies))
    total = scenario.steps * len(policies) * len(seeds)
    if args.compute_to_match and not scenario.model.static:
        targets = (len(policies) - ("uniform" in policies)) * len(seeds)
        runs = len(grid_budgets(scenario)) * len(seeds) + targets * bisection_runs(scenario)
        total += runs * scenario.steps
    with _ProgressBar(total, hidden=args.no_progress) as advance:
        report = simulate(scenario, policies, seeds, jobs=args.jobs,
                          match=args.compute_to_match, progress=advance)  # fmt: skip
    _print_report(report)
    if args.json:
        report.write_json(args.json)
    if args.plot:
        from knapsack_alloc.simulate.plot import plot_report

        plot_report(report, args.plot)
    return 0


def _require_matplotlib() -> None:
    from knapsack_alloc.cli.tables import CommandError

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError("--plot needs matplotlib: pip install 'knapsack-alloc[plot]'") from None


class _ProgressBar:
    """A rich progress bar on stderr (nothing if rich is missing or it is hidden)."""

    def __init__(self, total: int, hidden: bool) -> None:
        self.total = total
        self.hidden = hidden
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> Any:
        if not self.hidden:
            try:
                from rich.console import Console
                from rich.progress import Progress
            except ImportError:
                self.hidden = True
            else:
                self.progress = Progress(console=Console(stderr=True), transient=True)
                self.progress.start()
                self.task = self.progress.add_task("simulating", total=self.total)
        return self.advance

    def advance(self, steps: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, steps)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _print_report(report: Any) -> None:
    """Print the headline table on stdout (rich if available, plain text otherwise)."""
    scenario = report.scenario.describe()
    seeds = report.seeds
    lines = [
        f"population {scenario['population']}, {scenario['prompts']} prompts; batch "
        f"{scenario['batch_size']}, budget {scenario['budget']} rollouts/step, {scenario['steps']} "
        f"steps; learning rate {scenario['learning_rate']:g}, transfer {scenario['transfer']:g}; "
        + (f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds, mean ± s.d.")
    ]
    matches = report.to_dict().get("compute_to_match", {})
    header = ["policy", "eff. ratio", "vs uniform", "grad. prompts/step", "InfoGain/step",
              "max N", "final success", "rollouts"]  # fmt: skip
    if matches:
        header.append("uniform budget to match")
    uniform = report.policies.get("uniform")
    base = uniform.summary()["effective_gradient_ratio"] if uniform else None
    rows = []
    for name, policy in report.policies.items():
        s, d = policy.summary(), policy.spread()

        def cell(key: str, digits: int, s: dict[str, float] = s, d: dict[str, float] = d) -> str:
            text = f"{s[key]:.{digits}f}"
            return text + (f" ± {d[key]:.{digits}f}" if len(seeds) > 1 else "")

        row = [
            name,
            cell("effective_gradient_ratio", 3),
            f"{s['effective_gradient_ratio'] / base:.2f}x" if base else "-",
            cell("prompts_with_gradient", 1),
            cell("infogain_per_step", 2),
            f"{s['max_rollouts']:.0f}",
            cell("final_mean_success", 4),
            f"{s['rollouts']:,.0f}",
        ]
        if matches:
            row.append(_match_text(matches.get(name)))
        rows.append(row)
    rollout_total = report.scenario.budget * report.scenario.steps
    lines.append(
        f"every policy may spend {rollout_total:,} rollouts per run; "
        f"{report.elapsed_s:.1f} s with {report.jobs} worker process(es)"
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        for line in lines:
            print(line)
        return
    table = Table(title="knapsack-alloc simulate", caption=lines[0])
    for column in header:
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.width = max(console.width, 160)
    console.print(table)
    console.print(lines[1], style="dim")
    sys.stdout.flush()


def _match_text(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    if entry["factor"] is None:
        return "n/a (static)"
    mark = {"above_range": "> ", "below_range": "< ", "matched": ""}.get(entry["status"], "~ ")
    return f"{mark}{entry['factor']:.2f}x"

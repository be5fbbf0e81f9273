"""``knapsack-alloc allocate``: split a budget across the prompts of a file."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from knapsack_alloc._validation import first_outside_unit_interval
from knapsack_alloc.cli.tables import (
    CommandError,
    Table,
    format_seconds,
    read_table,
    write_allocation,
)
from knapsack_alloc.solvers import SOLVERS
from knapsack_alloc.values import BUILT_IN

DESCRIPTION = """\
Split a rollout budget across the prompts of FILE and write one row per prompt,
prompt_id,rollouts, in input order (to stdout, or to -o OUT). A summary goes to
stderr: totals, the predicted effective-gradient ratio against a uniform split
of the same budget, and whether the answer is certified optimal: its objective
next to a proven upper bound on the optimum (knapsack_alloc.certify, or the
exact DP's own bound).

FILE is CSV, JSON lines (.jsonl) or Parquet (with pyarrow installed), with a
prompt_id column and either
  success_rate          estimated success probability in [0, 1], or
  successes,trials      counts; the exact Beta-posterior expected value is used,
and optionally cost (cost of one rollout, e.g. expected tokens / 100)."""

EPILOG = """\
examples:
  knapsack-alloc allocate batch.csv --budget 2048
  knapsack-alloc allocate batch.csv --budget 2048 --max-rollouts 64 -o plan.csv
  knapsack-alloc allocate history.jsonl --budget 4096 --prior 1 3 --json report.json
  knapsack-alloc allocate batch.csv --budget 500000 --cost-resolution 0.5"""


def add_parser(commands: Any) -> None:
    """Register the subcommand on ``commands`` (an argparse subparsers object)."""
    parser = commands.add_parser(
        "allocate",
        help="allocate a budget across the prompts of a file",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="per-prompt input (.csv, .jsonl, .parquet)")
    parser.add_argument(
        "--budget",
        required=True,
        type=float,
        metavar="B",
        help="total rollouts (or cost units when a cost column is given)",
    )
    parser.add_argument("-o", "--output", metavar="OUT", help="write the CSV here, not stdout")
    parser.add_argument(
        "--min-rollouts",
        type=int,
        default=2,
        metavar="N",
        help="fewest rollouts per prompt (default 2)",
    )
    parser.add_argument(
        "--max-rollouts",
        type=int,
        default=128,
        metavar="N",
        help="most rollouts per prompt (default 128)",
    )
    parser.add_argument(
        "--value",
        default="grpo",
        choices=sorted(BUILT_IN),
        help="value model (default grpo: P_nz * p(1-p)^2)",
    )
    parser.add_argument(
        "--solver",
        default="auto",
        choices=list(SOLVERS),
        help="solver (default auto: the fastest exact one)",
    )
    parser.add_argument(
        "--cost-resolution",
        type=float,
        metavar="R",
        help="round real-valued costs to multiples of R",
    )
    parser.add_argument(
        "--prior",
        type=float,
        nargs=2,
        default=(1.0, 1.0),
        metavar=("A", "B"),
        help="Beta prior for successes,trials input (default 1 1)",
    )
    parser.add_argument(
        "--allow-unused-budget",
        action="store_true",
        help="accept a budget above what --max-rollouts can use",
    )
    parser.add_argument("--json", metavar="PATH", help="also write a JSON report here")
    parser.set_defaults(run=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Execute ``allocate`` for parsed ``args``; returns the exit code."""
    from knapsack_alloc import BetaPosterior, allocate
    from knapsack_alloc.allocator.metrics import predicted_effective_ratio, uniform_counts

    table = read_table(args.file)
    if table.rows == 0:
        raise CommandError(f"{args.file}: no rows")
    prompt_ids = table.require("prompt_id")
    estimates = _estimates(table, args.prior, BetaPosterior)
    costs = table.numbers("cost") if "cost" in table.columns else None
    result = allocate(
        estimates, args.budget, min_rollouts=args.min_rollouts, max_rollouts=args.max_rollouts,
        costs=costs, cost_resolution=args.cost_resolution, value=args.value, solver=args.solver,
        allow_unused_budget=args.allow_unused_budget,
    )  # fmt: skip
    write_allocation(prompt_ids, result.counts, args.output)

    # The uniform split of the same budget: equal rollouts per prompt.
    if costs is None:
        uniform_total = int(args.budget)
    else:
        uniform_total = int(args.budget // costs.sum()) * table.rows
    uniform = uniform_counts(table.rows, uniform_total, args.min_rollouts, args.max_rollouts)
    ratio = predicted_effective_ratio(result.counts, estimates)
    uniform_ratio = predicted_effective_ratio(uniform, estimates)
    counts = result.counts
    print(
        f"allocated {int(counts.sum())} rollouts to {table.rows} prompts "
        f"(min {int(counts.min())}, max {int(counts.max())}); "
        f"cost {result.total_cost:g} of budget {result.budget:g}",
        file=sys.stderr,
    )
    change = f", {100 * (ratio / uniform_ratio - 1):+.1f}%" if uniform_ratio > 0 else ""
    print(
        f"predicted effective-gradient ratio {ratio:.3f} "
        f"(uniform {int(uniform.min())}-{int(uniform.max())} each: {uniform_ratio:.3f}{change})",
        file=sys.stderr,
    )
    bound, proven = _certificate(args, result, estimates, costs)
    gap = "" if proven else f" (gap {bound - result.objective:.2g})"
    print(
        f"{'certified optimal' if proven else 'not proven optimal'}: objective "
        f"{result.objective:.6g}, upper bound {bound:.6g}{gap}; solver {result.solver}, "
        f"{format_seconds(result.solve_time)} "
        "(a process's first call also loads the compiled kernels)",
        file=sys.stderr,
    )
    if args.json:
        report = {
            "file": args.file,
            "prompts": table.rows,
            "budget": result.budget,
            "total_cost": result.total_cost,
            "rollouts": int(counts.sum()),
            "rollouts_min": int(counts.min()),
            "rollouts_max": int(counts.max()),
            "objective": result.objective,
            "upper_bound": bound,
            "certified_optimal": proven,
            "status": result.status,
            "solver": result.solver,
            "solve_time_s": result.solve_time,
            "cost_rounding": result.cost_rounding,
            "predicted_effective_ratio": ratio,
            "uniform_effective_ratio": uniform_ratio,
            "counts": counts.tolist(),
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0


def _certificate(
    args: argparse.Namespace, result: Any, estimates: Any, costs: Any
) -> tuple[float, bool]:
    """Return the tightest proven bound on the file's optimum, and whether it is met.

    :func:`~knapsack_alloc.certify` bounds the instance as given (real costs
    included); without rounding, the bound ``allocate`` proved (the DP's,
    for integer costs) is for the same instance and may be tighter.
    """
    from knapsack_alloc import certify
    from knapsack_alloc.certificates import proves_optimal
    from knapsack_alloc.costs import SPEND_TOLERANCE

    rounded = result.cost_rounding is not None
    # Rounded costs keep the spend within the budget up to the inputs' representation error.
    budget = args.budget * (1 + SPEND_TOLERANCE) if rounded else args.budget
    certificate = certify(
        result.counts, estimates, budget, min_rollouts=args.min_rollouts,
        max_rollouts=args.max_rollouts, costs=costs, value=args.value,
    )  # fmt: skip
    bound = certificate.upper_bound if rounded else min(certificate.upper_bound,
                                                        result.upper_bound)  # fmt: skip
    return bound, proves_optimal(result.objective, bound)


def _estimates(table: Table, prior: tuple[float, float], posterior: Any) -> Any:
    if "success_rate" in table.columns:
        rates = table.numbers("success_rate")
        i = first_outside_unit_interval(rates)
        if i >= 0:
            raise table.fail("success_rate", i, f"{rates[i]:g} is outside [0, 1]")
        return rates
    if "successes" not in table.columns or "trials" not in table.columns:
        present = ", ".join(repr(c) for c in table.columns)
        raise CommandError(
            f"{table.path}: needs a 'success_rate' column, or 'successes' and 'trials' "
            f"(columns: {present})"
        )
    successes = table.numbers("successes")
    trials = table.numbers("trials")
    bad = np.flatnonzero((successes < 0) | (successes > trials))
    if bad.size:
        i = int(bad[0])
        raise table.fail(
            "successes", i, f"{successes[i]:g} must be between 0 and trials ({trials[i]:g})"
        )
    return posterior(successes, trials - successes, prior=tuple(prior))

"""``knapsack-alloc bench``: what each solver costs per step on this machine."""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import numpy as np

from knapsack_alloc.cli.tables import CommandError, format_seconds
from knapsack_alloc.solvers import SOLVERS, SolverName

DESCRIPTION = """\
Time every solver (greedy, dp, ortools, and the textbook O(n*B*U) DP as the
baseline) on a grid of instances from the paper's step (256 prompts, 2048
rollouts) up to whole-dataset planning (1e6 prompts), with unit and per-prompt
integer costs. Prints the median and interquartile range of the solve time,
the speed-up over the textbook DP, and checks that all exact solvers agree on
the objective (exit code 1 if they do not). Sizes a solver cannot do in
reasonable time are marked as skipped, with the reason."""

EPILOG = """\
examples:
  knapsack-alloc bench --quick
  knapsack-alloc bench --json bench.json
  knapsack-alloc bench --quick --min-time 0.05"""

#: The exact solvers compared: every registered one but "auto", which picks among them.
EXACT_SOLVERS: tuple[SolverName, ...] = tuple(name for name in SOLVERS if name != "auto")
# Work limits (prompts x budget x span for the textbook DP, binary variables
# for OR-Tools) beyond which a solver would take minutes on a laptop.
TEXTBOOK_MAX_WORK = 1.5e9
ORTOOLS_MAX_VARIABLES = {True: 40_000, False: 600_000}
ORTOOLS_TIME_LIMIT = 120.0
# Relative objective agreement required between exact solvers.
AGREEMENT = {"ortools": 1e-7}
DEFAULT_AGREEMENT = 1e-9
_MAX_ROUNDS = 10_000
_NUMERIC = ("median", "IQR", "rounds", "vs textbook", "objective")


@dataclass(frozen=True)
class Case:
    """One instance of the grid."""

    prompts: int
    per_prompt_costs: bool
    quick: bool


GRID = (
    Case(256, False, True),
    Case(256, True, True),
    Case(4096, False, True),
    Case(4096, True, False),
    Case(65_536, False, False),
    Case(1_000_000, False, False),
)


def add_parser(commands: Any) -> None:
    """Register the subcommand on ``commands`` (an argparse subparsers object)."""
    parser = commands.add_parser(
        "bench",
        help="benchmark the solvers on this machine",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and short timings (well under a minute)"
    )
    parser.add_argument(
        "--min-time",
        type=float,
        metavar="S",
        help="seconds of repeated timing per entry (default 0.2 quick, 1.0 full)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.set_defaults(run=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Execute ``bench`` for parsed ``args``; returns the exit code."""
    try:
        from rich.console import Console
        from rich.progress import Progress
        from rich.table import Table
    except ImportError:
        raise CommandError("bench needs rich: pip install 'knapsack-alloc[bench]'") from None
    from knapsack_alloc.benchmark import make_instance

    min_time = args.min_time if args.min_time is not None else (0.2 if args.quick else 1.0)
    if min_time <= 0:
        raise CommandError(f"--min-time must be > 0 seconds, got {min_time}")
    cases = [case for case in GRID if case.quick or not args.quick]
    rows: list[dict[str, Any]] = []
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(cases) * len(EXACT_SOLVERS))
        for case in cases:
            instance = make_instance(case.prompts, per_prompt_costs=case.per_prompt_costs)
            for solver in EXACT_SOLVERS:
                progress.update(task, description=f"{instance.name}: {solver}")
                rows.append(_measure(instance, solver, args.quick, min_time))
                progress.advance(task)
    all_agree = _compare(rows)
    table = Table(title="knapsack-alloc: solve time per step")
    for column in ("instance", "solver", "median", "IQR", "rounds", "vs textbook", "objective",
                   "check"):  # fmt: skip
        table.add_column(column, justify="right" if column in _NUMERIC else "left")
    for row in rows:
        table.add_row(*_cells(row))
    console = Console()
    console.width = max(console.width, 120)
    console.print(table)
    verdict = "all exact solvers agree" if all_agree else "EXACT SOLVERS DISAGREE"
    Console(stderr=True).print(f"{verdict} (Python {platform.python_version()}, "
                               f"{platform.platform()})")  # fmt: skip
    if args.json:
        report = {
            "quick": args.quick,
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "all_agree": all_agree,
            "results": rows,
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0 if all_agree else 1


def _skip_reason(instance: Any, solver: SolverName, quick: bool) -> str | None:
    span = instance.max_rollouts - instance.min_rollouts
    costs = instance.costs
    floor = instance.min_rollouts * (instance.size if costs is None else int(costs.sum()))
    capacity = instance.budget - floor
    if solver == "textbook" and instance.size * capacity * span > TEXTBOOK_MAX_WORK:
        return f"{instance.size * capacity * span:.2g} steps of O(n*B*U) work"
    if solver == "ortools" and find_spec("ortools") is None:
        return "OR-Tools not installed: pip install 'knapsack-alloc[ortools]'"
    if solver == "ortools" and instance.size * span > ORTOOLS_MAX_VARIABLES[quick]:
        return f"{instance.size * span:,} binary variables"
    if solver == "dp" and instance.size >= 1_000_000:
        return "table of 1e6 prompts x budget"
    return None


def _measure(instance: Any, solver: SolverName, quick: bool, min_time: float) -> dict[str, Any]:
    from knapsack_alloc import allocate
    from knapsack_alloc.benchmark import make_instance

    row: dict[str, Any] = {
        "instance": instance.name,
        "prompts": instance.size,
        "budget": instance.budget,
        "per_prompt_costs": instance.costs is not None,
        "solver": solver,
    }
    reason = _skip_reason(instance, solver, quick)
    if reason is not None:
        return row | {"skipped": reason}

    def solve() -> Any:
        return allocate(
            instance.rates, instance.budget, costs=instance.costs, solver=solver,
            min_rollouts=instance.min_rollouts, max_rollouts=instance.max_rollouts,
            time_limit=ORTOOLS_TIME_LIMIT if solver == "ortools" else None,
        )  # fmt: skip

    warm_up = make_instance(16, per_prompt_costs=instance.costs is not None)
    allocate(warm_up.rates, warm_up.budget, costs=warm_up.costs, solver=solver)  # load kernels
    times: list[float] = []
    result = None
    while sum(times) < min_time and len(times) < _MAX_ROUNDS:
        started = time.perf_counter()
        result = solve()
        times.append(time.perf_counter() - started)
    assert result is not None
    q1, median, q3 = np.percentile(times, [25, 50, 75]).tolist()
    return row | {
        "status": result.status,
        "objective": result.objective,
        "upper_bound": result.upper_bound,
        "median_s": median,
        "iqr_s": q3 - q1,
        "min_s": min(times),
        "rounds": len(times),
    }


def _compare(rows: list[dict[str, Any]]) -> bool:
    """Fill speed-ups and agreement flags; True when all exact solvers agree."""
    all_agree = True
    for instance in dict.fromkeys(row["instance"] for row in rows):
        group = [row for row in rows if row["instance"] == instance and "skipped" not in row]
        exact = [row for row in group if row["status"] == "optimal"]
        reference = max((row["objective"] for row in exact), default=None)
        baseline = next((row["median_s"] for row in group if row["solver"] == "textbook"), None)
        for row in group:
            if baseline is not None:
                row["speedup_vs_textbook"] = baseline / row["median_s"]
            if row["status"] == "optimal" and reference is not None:
                tolerance = AGREEMENT.get(row["solver"], DEFAULT_AGREEMENT)
                row["agrees"] = row["objective"] >= reference - tolerance * abs(reference)
                all_agree = all_agree and row["agrees"]
    return all_agree


def _cells(row: dict[str, Any]) -> list[str]:
    if "skipped" in row:
        skipped = f"skipped: {row['skipped']}"
        return [row["instance"], row["solver"], "-", "-", "-", "-", "-", skipped]
    speedup = row.get("speedup_vs_textbook")
    if "agrees" in row:
        check = "optimal, agrees" if row["agrees"] else "optimal, DISAGREES"
    else:
        check = f"{row['status']}, gap <= {row['upper_bound'] - row['objective']:.1e}"
    return [
        row["instance"],
        row["solver"],
        format_seconds(row["median_s"]),
        format_seconds(row["iqr_s"]),
        str(row["rounds"]),
        "-" if speedup is None else f"{speedup:,.0f}x" if speedup >= 10 else f"{speedup:.2g}x",
        f"{row['objective']:.10g}",
        check,
    ]

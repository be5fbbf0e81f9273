"""The ``knapsack-alloc`` command (also ``python -m knapsack_alloc``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from knapsack_alloc.cli import (
    allocate_command,
    bench_command,
    diagnose_command,
    simulate_command,
)
from knapsack_alloc.exceptions import KnapsackAllocError

EPILOG = """\
examples:
  knapsack-alloc allocate batch.csv --budget 2048 -o plan.csv
  knapsack-alloc bench --quick
  knapsack-alloc diagnose rollout_data/ --json report.json --plot report.png
  knapsack-alloc simulate --plot sim.png
run 'knapsack-alloc COMMAND --help' for the options of each command."""


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    from knapsack_alloc import __version__

    parser = argparse.ArgumentParser(
        prog="knapsack-alloc",
        description="Allocate rollout budgets across prompts for RL training of LLMs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    allocate_command.add_parser(commands)
    bench_command.add_parser(commands)
    diagnose_command.add_parser(commands)
    simulate_command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 on bad input, one line on stderr).

    Errors the library raises on purpose (:class:`KnapsackAllocError`) and
    files that cannot be read or written become one line and exit code 2;
    anything else is a bug and keeps its traceback.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (KnapsackAllocError, OSError) as error:
        print(f"knapsack-alloc: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

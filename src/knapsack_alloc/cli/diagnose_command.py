"""``knapsack-alloc diagnose``: the rollouts a run wasted, and what allocation would have done."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from typing import IO, Any

from knapsack_alloc.cli.tables import CommandError

DESCRIPTION = """\
Read the rollouts of a GRPO run and report, per step and in total, the groups
whose rewards were all equal (no gradient) and the rollouts they used; per
prompt, how often it was sampled and solved; and, replaying the run with
KnapsackAllocator (paper and bayes presets) at the same per-step budget, the
share of rollouts that would have had a gradient, under a stated model:
each prompt's rewards are drawn from its observed rate over the run.

PATH is one or more files or directories of one run, in one of these formats
(detected, or set with --format):
  verl   a rollout dump directory (trainer.rollout_data_dir): {step}.jsonl files,
         one rollout per line with input, output, score and step
  table  CSV, JSON lines or Parquet with columns step, prompt_id, reward
  trl    TRL's completions tables (GRPOConfig(log_completions=True) writes
         output_dir/completions/completions_{step}.parquet)"""

EPILOG = """\
examples:
  knapsack-alloc diagnose checkpoints/rollout_data
  knapsack-alloc diagnose rollouts.parquet --json report.json --plot report.png
  knapsack-alloc diagnose out/completions --reward-field accuracy_reward
  knapsack-alloc diagnose rollout_data --reward-field acc --max-rollouts 64"""


def add_parser(commands: Any) -> None:
    """Register the subcommand on ``commands`` (an argparse subparsers object)."""
    parser = commands.add_parser(
        "diagnose",
        help="report the rollouts a run wasted and what knapsack allocation would have done",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories of one run")
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", "verl", "table", "trl"],
        help="input format (default: detected)",
    )
    parser.add_argument(
        "--reward-field",
        metavar="NAME",
        help="field or column of the reward (default: score for verl, reward for "
        "a table, the sum of the reward columns for TRL)",
    )
    parser.add_argument(
        "--success-threshold",
        type=float,
        metavar="T",
        help="count a reward >= T as a success (default: the higher of two reward "
        "values; needed to count successes of real-valued rewards)",
    )
    parser.add_argument(
        "--min-rollouts",
        type=int,
        metavar="N",
        help="fewest rollouts per prompt in the replay (default: suggested)",
    )
    parser.add_argument(
        "--max-rollouts",
        type=int,
        metavar="N",
        help="most rollouts per prompt in the replay (default: suggested)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the replay's random rewards (default 0)",
    )
    parser.add_argument("--no-replay", action="store_true", help="skip the counterfactual replay")
    parser.add_argument("--json", metavar="PATH", help="write the full report as JSON here")
    parser.add_argument("--plot", metavar="PATH.png", help="write a PNG figure here")
    parser.set_defaults(run=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Execute ``diagnose`` for parsed ``args``; returns the exit code."""
    from knapsack_alloc.diagnose import diagnose
    from knapsack_alloc.diagnose.diagnosis import DEFAULT_PRESETS
    from knapsack_alloc.diagnose.report import json_report, text_report

    outputs = [path for path in (args.json, args.plot) if path]
    for path in outputs:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise CommandError(f"{path}: the folder {folder} does not exist")
    if args.plot:
        _require_matplotlib()
    result = diagnose(
        args.paths,
        format=args.format,
        reward_field=args.reward_field,
        success_threshold=args.success_threshold,
        min_rollouts=args.min_rollouts,
        max_rollouts=args.max_rollouts,
        presets=() if args.no_replay else DEFAULT_PRESETS,
        seed=args.seed,
    )
    writers: list[tuple[str, Callable[[IO[bytes]], None]]] = []
    if args.plot:
        from knapsack_alloc.diagnose.plot import render

        writers.append((args.plot, lambda handle: render(result, handle)))
    if args.json:
        data = json.dumps(json_report(result), indent=1).encode("utf-8")

        def write_json(handle: IO[bytes]) -> None:
            handle.write(data)

        writers.append((args.json, write_json))
    _write_all(writers)
    print(text_report(result))
    return 0


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError("--plot needs matplotlib: pip install 'knapsack-alloc[plot]'") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_all(writers: list[tuple[str, Callable[[IO[bytes]], None]]]) -> None:
    """Write every output to a temporary file first, then move them all in place."""
    staged: list[tuple[str, str]] = []
    try:
        for path, write in writers:
            folder = os.path.dirname(os.path.abspath(path))
            descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".knapsack-alloc-")
            staged.append((temporary, path))
            with os.fdopen(descriptor, "wb") as handle:
                write(handle)
            os.chmod(temporary, 0o666 & ~_umask())
        for temporary, path in staged:
            os.replace(temporary, path)
    finally:
        for temporary, _ in staged:
            if os.path.exists(temporary):
                os.unlink(temporary)

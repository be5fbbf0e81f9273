"""Command line: ``python -m benchmarks.learning [--quick] [--seeds K] [--policies ...] ...``."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.learning.design import (
    ALL_POLICIES,
    CPU,
    CUDA,
    POLICIES,
    QUICK_STEPS,
    Policy,
    Settings,
)

# Everything is built locally; never reach for the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.learning",
        description="Train a tiny Llama with GRPO through KnapsackGRPOTrainer under uniform, "
        "knapsack-paper and knapsack-bayes allocation at equal rollouts, plus uniform at 1.5x "
        "and 2x the rollouts, and report what each learned (--policies picks others, such as "
        "the options for large groups).",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"one seed and {QUICK_STEPS} steps (a smoke run)"
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="seeds 0..K-1 (default 3; 1 with --quick)"
    )
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per run")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--plot", type=Path, default=None, help="write the figure here (PNG)")
    parser.add_argument(
        "--policies",
        default=",".join(policy.name for policy in POLICIES),
        help="comma-separated policies to train, in report order (default: the main experiment's "
        f"{len(POLICIES)}); also: " + ", ".join(p.name for p in ALL_POLICIES if p not in POLICIES),
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="runs trained at once, one process and one torch thread each (default: CPU count, "
        "at most 2; always 1 on cuda)",
    )
    return parser


def _policies(names: str) -> list[Policy]:
    known = {policy.name: policy for policy in ALL_POLICIES}
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if not chosen or unknown:
        problem = f"unknown {', '.join(unknown)}" if unknown else "empty"
        raise SystemExit(
            f"error: --policies {names!r}: {problem}; choose from {', '.join(known)} "
            "(comma-separated)."
        )
    if len(set(chosen)) != len(chosen):
        raise SystemExit(f"error: --policies {names!r} names a policy twice.")
    return [known[name] for name in chosen]


def _settings(options: argparse.Namespace) -> tuple[Settings, list[int], int]:
    settings = CUDA if options.device == "cuda" else CPU
    steps = (
        options.steps
        if options.steps is not None
        else (QUICK_STEPS if options.quick else settings.steps)
    )
    seeds = options.seeds if options.seeds is not None else (1 if options.quick else 3)
    for name, value in (("--steps", steps), ("--seeds", seeds)):
        if value < 1:
            raise SystemExit(f"error: {name} == {value}, must be >= 1.")
    if options.workers is not None and options.workers < 1:
        raise SystemExit(f"error: --workers == {options.workers}, must be >= 1.")
    workers = options.workers or (1 if options.device == "cuda" else min(2, os.cpu_count() or 1))
    if options.plot is not None and options.plot.suffix.lower() != ".png":
        raise SystemExit(f"error: --plot {options.plot} must name a .png file.")
    return replace(settings, steps=steps), list(range(seeds)), workers


def _check_device(device: str) -> None:
    if device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise SystemExit(
            f"error: --device cuda, but torch {torch.__version__} sees no CUDA device. Install a "
            "CUDA build of the pinned torch into this environment (see docs/evidence.md) and run "
            "`python -m benchmarks.learning --device cuda` on a machine with a GPU."
        )


def _versions() -> dict[str, Any]:
    from importlib.metadata import version

    packages = ("torch", "trl", "transformers", "accelerate", "knapsack-alloc")
    return {
        "python": platform.python_version(),
        **{name: version(name) for name in packages},
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the experiment; return the exit status."""
    options = _parser().parse_args(argv)
    settings, seeds, workers = _settings(options)
    policies = _policies(options.policies)
    _check_device(options.device)

    from benchmarks.learning import summary
    from benchmarks.learning.experiment import check_fairness, load_average, run_all
    from benchmarks.learning.plot import write_plot
    from benchmarks.learning.report import print_report

    load_before = load_average()
    started = time.perf_counter()
    print(
        f"{len(policies)} policies x {len(seeds)} seed(s) x {settings.steps} steps, "
        f"{settings.budget} rollouts per step at 1x, {workers} worker(s), "
        f"load average {load_before}",
        flush=True,
    )

    def progress(record: Any, done: int, total: int) -> None:
        print(
            f"  [{done}/{total}] {record.policy:<26} seed {record.seed}: final success "
            f"{record.series['mean_success'][-1]:.3f}, {time.perf_counter() - started:.0f} s",
            flush=True,
        )

    records = run_all(settings, policies, seeds, workers, progress)
    check_fairness(records, policies, settings)
    elapsed = time.perf_counter() - started
    document = {
        "experiment": "GRPO with KnapsackGRPOTrainer: learning per rollout by allocation policy",
        "command": " ".join(["python -m benchmarks.learning", *(argv or sys.argv[1:])]),
        "settings": settings.as_dict(),
        "seeds": seeds,
        # check_fairness raised if any of these did not hold.
        "checks_passed": [
            "each run spent its policy's budget in every step, on the groups it planned",
            "the policies of a seed trained on the same prompts in every step",
            "the policies of a seed started from the same weights",
        ],
        "policies": {
            policy.name: summary.policy_entry(policy, records, settings, seeds)
            for policy in policies
        },
        "compute_to_match": summary.compute_to_match(records, settings, seeds, policies),
        "population": summary.population(records, settings, seeds, policies[0]),
        "environment": {
            **_versions(),
            "workers": workers,
            "wall_s": elapsed,
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
    }
    print_report(document)
    if options.json is not None:
        summary.write_json(document, options.json)
        print(f"wrote {options.json}")
    if options.plot is not None:
        write_plot(document, options.plot)
        print(f"wrote {options.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

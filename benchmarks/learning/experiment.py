"""Run every (policy, seed) in worker processes and check that the comparison is fair."""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
from benchmarks.learning.design import Policy, Settings
from benchmarks.learning.run import RunRecord, train
from benchmarks.learning.task import make_population


class FairnessError(AssertionError):
    """Policies of one seed did not get the same prompts or the same budget per step."""


def _warm_kernels() -> None:
    """Compile (or load) the allocator's numba kernels before any run is timed."""
    from knapsack_alloc.allocator import KnapsackAllocator

    for preset in ("paper", "bayes"):
        allocator = KnapsackAllocator(preset)
        allocator.update(np.repeat(np.arange(4), 8), np.tile([0.0, 1.0], 16))
        allocator.plan(np.arange(6), 48)


def _init_worker(threads: int) -> None:
    import torch

    # transformers 5 deprecates names TRL 1.16 still calls, once per trainer.
    warnings.filterwarnings(
        "ignore", r"`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated", FutureWarning
    )
    torch.set_num_threads(threads)
    _warm_kernels()


def run_one(settings: Settings, policy: Policy, seed: int) -> RunRecord:
    """Train one run in this process (the population depends only on the seed)."""
    population = make_population(
        settings.train_prompts, settings.heldout_prompts, settings.difficulty, seed
    )
    return train(settings, policy, seed, population)


def run_all(
    settings: Settings,
    policies: Sequence[Policy],
    seeds: Sequence[int],
    workers: int,
    progress: Callable[[RunRecord, int, int], None] | None = None,
) -> dict[tuple[str, int], RunRecord]:
    """Train every policy on every seed, ``workers`` runs at a time.

    Each worker process uses one torch thread: the model is small, and one
    thread per run is faster than two threads fighting over two cores.

    Returns
    -------
    dict
        ``(policy name, seed)`` to its record.
    """
    jobs = [(policy, seed) for seed in seeds for policy in policies]
    # Costliest runs first, so the last ones to finish are short.
    jobs.sort(key=lambda job: -job[0].group_size)
    records: dict[tuple[str, int], RunRecord] = {}
    if workers == 1:
        _init_worker(threads=1)
        for policy, seed in jobs:
            record = run_one(settings, policy, seed)
            records[policy.name, seed] = record
            if progress is not None:
                progress(record, len(records), len(jobs))
        return records
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(1,)) as pool:
        futures = [pool.submit(run_one, settings, policy, seed) for policy, seed in jobs]
        for future in as_completed(futures):
            record = future.result()
            records[record.policy, record.seed] = record
            if progress is not None:
                progress(record, len(records), len(jobs))
    return records


def check_fairness(
    records: dict[tuple[str, int], RunRecord], policies: Sequence[Policy], settings: Settings
) -> None:
    """Same initial weights, prompts per step and budget per step for every policy of a seed.

    The rollouts of each step were already checked against each policy's
    budget during its run; this compares the runs of a seed with each other.

    Raises
    ------
    FairnessError
    """
    seeds = sorted({seed for _, seed in records})
    for seed in seeds:
        runs = [records[policy.name, seed] for policy in policies]
        reference = runs[0]
        for policy, run in zip(policies, runs, strict=True):
            spent = np.asarray(run.series["rollouts"])
            if spent.size != settings.steps or not np.all(spent == policy.budget(settings)):
                raise FairnessError(
                    f"seed {seed}: {policy.name} spent {spent.tolist()} rollouts per step, "
                    f"expected {policy.budget(settings)} in each of {settings.steps} steps."
                )
            if not np.array_equal(run.initial_success, reference.initial_success):
                raise FairnessError(
                    f"seed {seed}: {policy.name} did not start from {reference.policy}'s weights."
                )
            for step, (ours, theirs) in enumerate(
                zip(run.batches, reference.batches, strict=True), 1
            ):
                if not np.array_equal(np.sort(ours), np.sort(theirs)):
                    raise FairnessError(
                        f"seed {seed}, step {step}: {policy.name} trained on other prompts "
                        f"than {reference.policy}."
                    )


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []

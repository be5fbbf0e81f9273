"""Run policies through a scenario: one run per (policy, seed), in parallel processes."""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.simulate.environment import Environment, Groups
from knapsack_alloc.simulate.loader import Loader
from knapsack_alloc.simulate.policy import Policy, StepContext
from knapsack_alloc.simulate.scenario import Scenario

#: Per-step series every run records (policy extras are added as ``extra_<name>``).
SERIES = (
    "rollouts",
    "effective_rollouts",
    "effective_ratio",
    "prompts_with_gradient",
    "prompts_sampled",
    "rollouts_min",
    "rollouts_p10",
    "rollouts_p50",
    "rollouts_p90",
    "rollouts_max",
    "mean_success",
    "infogain",
)
_PROGRESS_EVERY = 10

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RunResult:
    """One policy's run with one seed.

    Attributes
    ----------
    policy : str
        The policy's name.
    seed : int
        The run's seed.
    series : dict of str to numpy.ndarray
        One value per step; see :data:`SERIES`. ``mean_success`` is the
        population's mean true success probability after the step's update;
        ``infogain`` is ``sum p (1 - p)^2`` over the trained groups with a
        gradient (the paper's value realised, whatever the learning rate).
    initial_mean_success : float
        The population's mean success probability before the first step.
    rollouts : int
        Rollouts drawn from the environment over the run (checked against
        what the policy reported at every step).
    """

    policy: str
    seed: int
    series: dict[str, NDArray[np.float64]]
    initial_mean_success: float
    rollouts: int

    def summary(self) -> dict[str, float]:
        """Headline figures of the run."""
        s = self.series
        spent = float(s["rollouts"].sum())
        return {
            "effective_gradient_ratio": float(s["effective_ratio"].mean()),
            "effective_gradient_ratio_total": float(s["effective_rollouts"].sum()) / spent
            if spent
            else 0.0,
            "prompts_with_gradient": float(s["prompts_with_gradient"].mean()),
            "infogain_per_step": float(s["infogain"].mean()),
            "max_rollouts": float(s["rollouts_max"].max()),
            "initial_mean_success": self.initial_mean_success,
            "final_mean_success": float(s["mean_success"][-1]),
            "rollouts": float(self.rollouts),
        }


def policy_seed(seed: int, name: str) -> np.random.Generator:
    """Return the random stream of policy ``name`` in the run with ``seed``."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def run_policy(
    scenario: Scenario, policy: Policy, seed: int, progress: Progress | None = None
) -> RunResult:
    """Run a fresh copy of ``policy`` through ``scenario`` with ``seed``.

    Parameters
    ----------
    scenario : Scenario
    policy : Policy
        Deep-copied first, so its state starts fresh.
    seed : int
        Seeds the population draw, the loader and the common random numbers.
    progress : callable, optional
        Called with a number of steps completed, now and then.

    Returns
    -------
    RunResult

    Raises
    ------
    InvalidArgumentError
        If the policy reports a cost other than what it drew, or overspends.
    """
    policy = copy.deepcopy(policy)
    success = scenario.population.draw(seed)
    initial = float(success.mean())
    environment = Environment(success, seed)
    loader = Loader(success.size, seed)
    rng = policy_seed(seed, policy.name)
    steps = scenario.steps
    series: dict[str, NDArray[np.float64]] = {name: np.zeros(steps) for name in SERIES}
    done = 0
    for step in range(steps):
        environment.begin_step(step, scenario.budget)
        context = StepContext(
            step, scenario.budget, scenario.batch_size, success.size, loader, environment, rng
        )
        result = policy.step(context)
        reported = result.generated.rollouts
        if reported != environment.spent:
            raise InvalidArgumentError(
                f"policy {policy.name!r} reported {reported} generated rollouts at step {step} "
                f"but drew {environment.spent}; StepResult.generated must hold every group "
                "the step generated."
            )
        trained = result.trained
        gradient = trained.has_gradient
        learned = trained.prompts[gradient]
        before = success[learned]
        scenario.model.apply(success, learned)
        _record(series, step, result.generated.sizes, environment.spent, trained, gradient)
        series["mean_success"][step] = success.mean()
        series["infogain"][step] = before @ (1.0 - before) ** 2
        for key, value in result.extras.items():
            series.setdefault(f"extra_{key}", np.zeros(steps))[step] = value
        done += 1
        if progress is not None and (done == _PROGRESS_EVERY or step == steps - 1):
            progress(done)
            done = 0
    return RunResult(policy.name, seed, series, initial, environment.total)


def _record(
    series: dict[str, NDArray[np.float64]],
    step: int,
    sizes: NDArray[np.int64],
    spent: int,
    trained: Groups,
    gradient: NDArray[np.bool_],
) -> None:
    effective = int(trained.sizes[gradient].sum())
    series["rollouts"][step] = spent
    series["effective_rollouts"][step] = effective
    series["effective_ratio"][step] = effective / spent if spent else 0.0
    series["prompts_with_gradient"][step] = int(gradient.sum())
    series["prompts_sampled"][step] = sizes.size
    if sizes.size:
        low, p10, p50, p90, high = np.percentile(sizes, (0, 10, 50, 90, 100))
        series["rollouts_min"][step] = low
        series["rollouts_p10"][step] = p10
        series["rollouts_p50"][step] = p50
        series["rollouts_p90"][step] = p90
        series["rollouts_max"][step] = high


@dataclass(frozen=True)
class Task:
    """One run to do: a scenario, a policy and a seed."""

    scenario: Scenario
    policy: Policy
    seed: int


def run_tasks(
    tasks: Sequence[Task], jobs: int = 1, progress: Progress | None = None
) -> list[RunResult]:
    """Run every task, in ``jobs`` worker processes when ``jobs > 1``.

    Parameters
    ----------
    tasks : sequence of Task
    jobs : int, default 1
        Worker processes; 1 runs everything in this process.
    progress : callable, optional
        Called with numbers of steps completed, summed over all tasks.

    Returns
    -------
    list of RunResult
        In the order of ``tasks``; runs do not depend on ``jobs``.
    """
    if jobs <= 1 or len(tasks) <= 1:
        return [run_policy(t.scenario, t.policy, t.seed, progress) for t in tasks]
    _check_picklable(tasks)
    import multiprocessing
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    updates = context.Queue()

    def drain() -> None:
        while True:
            try:
                count = updates.get_nowait()
            except queue_module.Empty:
                return
            if progress is not None:
                progress(count)

    with ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)),
        mp_context=context,
        initializer=_start_worker,
        initargs=(updates,),
    ) as pool:
        futures = [pool.submit(_run_task, task) for task in tasks]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            drain()
        results = [future.result() for future in futures]
    drain()
    return results


def _check_picklable(tasks: Sequence[Task]) -> None:
    """Fail early, naming the policy, if a task cannot be sent to a worker process."""
    import pickle

    for task in tasks:
        try:
            pickle.dumps(task.policy)
        except Exception as error:
            raise InvalidArgumentError(
                f"policy {task.policy.name!r} cannot be sent to worker processes ({error}); "
                "define its class at module level (not in a function or __main__ of an "
                "interactive session), or run with jobs=1."
            ) from None


_UPDATES: object = None


def _start_worker(updates: object) -> None:
    global _UPDATES
    _UPDATES = updates


def _run_task(task: Task) -> RunResult:
    put = getattr(_UPDATES, "put", None)
    return run_policy(task.scenario, task.policy, task.seed, put)

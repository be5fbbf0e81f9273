"""Results of a simulation: per-policy figures over seeds, and the JSON report."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.simulate.runner import RunResult
from knapsack_alloc.simulate.scenario import Scenario

#: Headline figures, in the order tables list them.
HEADLINE = (
    "effective_gradient_ratio",
    "prompts_with_gradient",
    "max_rollouts",
    "initial_mean_success",
    "final_mean_success",
    "rollouts",
)


@dataclass(frozen=True)
class PolicyReport:
    """One policy's runs, one per seed.

    Attributes
    ----------
    name : str
        The policy's name.
    runs : tuple of RunResult
        In seed order.
    """

    name: str
    runs: tuple[RunResult, ...]

    def summary(self) -> dict[str, float]:
        """Headline figures, each the mean over seeds."""
        per_seed = [run.summary() for run in self.runs]
        return {key: float(np.mean([s[key] for s in per_seed])) for key in per_seed[0]}

    def spread(self) -> dict[str, float]:
        """Return the standard deviation of each headline figure over seeds (0 for one seed)."""
        per_seed = [run.summary() for run in self.runs]
        ddof = 1 if len(per_seed) > 1 else 0
        return {key: float(np.std([s[key] for s in per_seed], ddof=ddof)) for key in per_seed[0]}

    def series(self) -> dict[str, NDArray[np.float64]]:
        """Per-step series, each the mean over seeds."""
        return {key: np.mean([run.series[key] for run in self.runs], axis=0)
                for key in self.runs[0].series}  # fmt: skip

    def series_spread(self) -> dict[str, NDArray[np.float64]]:
        """Per-step standard deviation over seeds (zeros for one seed)."""
        ddof = 1 if len(self.runs) > 1 else 0
        return {key: np.std([run.series[key] for run in self.runs], axis=0, ddof=ddof)
                for key in self.runs[0].series}  # fmt: skip


@dataclass(frozen=True)
class Match:
    """The uniform budget that reaches a policy's final mean success, for one seed.

    Attributes
    ----------
    policy : str
        The policy matched.
    seed : int
        The seed of both runs.
    target : float
        The policy's final mean success.
    status : {'matched', 'above_range', 'below_range', 'static'}
        ``matched``: ``uniform_budget`` is the smallest budget found (by
        bisection) at which uniform reaches ``target``; ``above_range``: even
        the largest budget tried falls short (the factor is a lower bound);
        ``below_range``: the smallest budget tried already reaches it (an upper
        bound); ``static``: the population does not learn, nothing to match.
    uniform_budget : int or None
        Rollouts per step uniform needs (the bound, for the range statuses).
    factor : float or None
        ``uniform_budget / budget``.
    bracket : tuple of int
        Budgets known to fall short of and to reach the target.
    """

    policy: str
    seed: int
    target: float
    status: str
    uniform_budget: int | None
    factor: float | None
    bracket: tuple[int, int]


@dataclass(frozen=True)
class Report:
    """Everything one simulation produced.

    Attributes
    ----------
    scenario : Scenario
    seeds : tuple of int
    policies : dict of str to PolicyReport
        In the order the policies were given.
    matches : tuple of Match
        Compute-to-match results (empty unless requested).
    elapsed_s : float
        Wall-clock seconds of the simulation.
    jobs : int
        Worker processes used.
    """

    scenario: Scenario
    seeds: tuple[int, ...]
    policies: dict[str, PolicyReport]
    matches: tuple[Match, ...] = field(default=())
    elapsed_s: float = 0.0
    jobs: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON report as plain values (see ``docs/simulator.md``)."""
        baseline = self.policies.get("uniform")
        base_ratio = baseline.summary()["effective_gradient_ratio"] if baseline else None
        policies: dict[str, Any] = {}
        for name, report in self.policies.items():
            summary = report.summary()
            entry: dict[str, Any] = dict(summary)
            if base_ratio:
                ratio = summary["effective_gradient_ratio"] / base_ratio
                entry["effective_ratio_vs_uniform"] = ratio
            entry["spread"] = report.spread()
            entry["per_seed"] = [{"seed": run.seed, **run.summary()} for run in report.runs]
            entry["series"] = {k: v.tolist() for k, v in report.series().items()}
            if len(self.seeds) > 1:
                entry["series_spread"] = {k: v.tolist() for k, v in report.series_spread().items()}
            policies[name] = entry
        result: dict[str, Any] = {
            "scenario": self.scenario.describe(),
            "seeds": list(self.seeds),
            "policies": policies,
            "elapsed_s": self.elapsed_s,
            "jobs": self.jobs,
        }
        if self.matches:
            result["compute_to_match"] = match_summary(self.matches)
        return result

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` to ``path`` atomically (a temporary file, then a rename)."""
        folder = os.path.dirname(os.path.abspath(path))
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".simulate-", suffix=".json")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(self.to_dict(), handle, indent=1)
            replace_file(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise


def replace_file(temporary: str, path: str | os.PathLike[str]) -> None:
    """Move ``temporary`` over ``path``, with the mode ``path`` had or a new file gets.

    ``tempfile.mkstemp`` creates files readable by their owner only; an output
    should keep the permissions an ordinary ``open(path, "w")`` would give it.
    """
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def match_summary(matches: tuple[Match, ...]) -> dict[str, Any]:
    """Compute-to-match results per policy: the mean factor over seeds and each seed's result."""
    result: dict[str, Any] = {}
    for name in dict.fromkeys(m.policy for m in matches):
        mine = [m for m in matches if m.policy == name]
        factors = [m.factor for m in mine if m.factor is not None]
        statuses = sorted({m.status for m in mine})
        result[name] = {
            "factor": float(np.mean(factors)) if factors else None,
            "factor_spread": float(np.std(factors, ddof=1)) if len(factors) > 1 else 0.0,
            "status": statuses[0] if len(statuses) == 1 else "mixed",
            "per_seed": [
                {
                    "seed": m.seed,
                    "target_final_mean_success": m.target,
                    "status": m.status,
                    "uniform_budget": m.uniform_budget,
                    "factor": m.factor,
                    "bracket": list(m.bracket),
                }
                for m in mine
            ],
        }
    return result

"""The interface every allocation policy implements.

A policy sees what a trainer sees: prompts from the data loader and the
rewards of the rollouts it pays for. It never sees a prompt's true success
probability. Each step it may spend up to the step's budget, and returns the
groups it generated and the groups its update trains on; the runner checks
the cost against the environment's own count and applies the learning model
to the trained groups that carry a gradient.

Write a policy by subclassing :class:`Policy`::

    class TopUp(Policy):
        name = "top-up"

        def step(self, context):
            prompts = context.take(context.batch_size)
            counts = np.full(prompts.size, context.budget // prompts.size)
            groups, _ = context.rollout(prompts, counts)
            return StepResult(generated=groups, trained=groups)

and pass an instance to :func:`~knapsack_alloc.simulate.simulate`. The runner
gives every run a deep copy of the instance, so state kept on ``self`` starts
fresh in each run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.simulate.environment import Environment, Groups
from knapsack_alloc.simulate.loader import Loader


@dataclass(frozen=True)
class StepContext:
    """What a policy can use during one step.

    Attributes
    ----------
    step : int
        Step index, from 0.
    budget : int
        Rollouts the step may spend.
    batch_size : int
        Prompts per training batch of the scenario (a uniform policy gives
        each ``budget // batch_size`` rollouts).
    population_size : int
        Number of prompts in the population (prompt indices are below it).
    loader : Loader
        The data loader; ``take(k)`` returns the next ``k`` prompt indices.
    environment : Environment
        Draws rewards; ``rollout(prompts, counts)``.
    rng : numpy.random.Generator
        The policy's own random stream (seeded per run and policy name).
    """

    step: int
    budget: int
    batch_size: int
    population_size: int
    loader: Loader
    environment: Environment
    rng: np.random.Generator

    def take(self, count: int) -> NDArray[np.int64]:
        """Return the next ``count`` prompts from the data loader."""
        return self.loader.take(count)

    def rollout(
        self, prompts: NDArray[np.int64], counts: NDArray[np.int64]
    ) -> tuple[Groups, NDArray[np.bool_]]:
        """Generate ``counts[i]`` rollouts of ``prompts[i]``; see :meth:`Environment.rollout`."""
        return self.environment.rollout(prompts, counts)

    @property
    def left(self) -> int:
        """Rollouts this step may still spend."""
        return self.environment.left


@dataclass(frozen=True)
class StepResult:
    """What a policy did in one step.

    Attributes
    ----------
    generated : Groups
        Every group generated this step (its rollouts are the step's cost).
    trained : Groups
        The groups this step's update trains on (possibly generated in an
        earlier step, or a subset of ``generated``).
    extras : mapping of str to float
        Policy-specific per-step figures, recorded as series ``extra_<name>``.
    """

    generated: Groups
    trained: Groups
    extras: Mapping[str, float] = field(default_factory=dict)


class Policy(ABC):
    """An allocation policy; subclasses set ``name`` and implement :meth:`step`."""

    name: str = "policy"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @abstractmethod
    def step(self, context: StepContext) -> StepResult:
        """Spend at most ``context.budget`` rollouts and say what was trained.

        Parameters
        ----------
        context : StepContext

        Returns
        -------
        StepResult
        """

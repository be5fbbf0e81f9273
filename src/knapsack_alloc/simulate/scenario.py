"""A simulated training run's settings, with the defaults and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from knapsack_alloc._validation import integer_scalar
from knapsack_alloc.exceptions import InvalidArgumentError, InvalidArgumentTypeError
from knapsack_alloc.simulate.dynamics import LearningModel
from knapsack_alloc.simulate.population import Population

#: Defaults; ``docs/simulator.md`` says how each was chosen.
DEFAULT_POPULATION = "math-rl"
DEFAULT_BATCH = 256
DEFAULT_BUDGET = 2048
DEFAULT_STEPS = 500
DEFAULT_LEARNING_RATE = 0.25
DEFAULT_TRANSFER = 1.0


@dataclass(frozen=True)
class Scenario:
    """Everything a run depends on except the policy and the seed.

    Parameters
    ----------
    population : Population
        Initial success probabilities (see :meth:`Population.from_argument`).
    batch_size : int, default 256
        Prompts per batch drawn from the loader by the fixed-batch policies.
    budget : int, default 2048
        Rollouts per step, for every policy; at least 2 per prompt of a batch.
    steps : int, default 500
        Training steps.
    model : LearningModel
        The learning model (default learning rate 0.25, transfer 1).
    """

    population: Population = field(
        default_factory=lambda: Population.from_argument(DEFAULT_POPULATION)
    )
    batch_size: int = DEFAULT_BATCH
    budget: int = DEFAULT_BUDGET
    steps: int = DEFAULT_STEPS
    model: LearningModel = field(
        default_factory=lambda: LearningModel(DEFAULT_LEARNING_RATE, DEFAULT_TRANSFER)
    )

    def __post_init__(self) -> None:
        if not isinstance(self.population, Population):
            raise InvalidArgumentTypeError(
                f"population must be a Population (see Population.from_argument), got "
                f"{type(self.population).__name__}."
            )
        integer_scalar("batch_size", self.batch_size, minimum=1)
        integer_scalar("steps", self.steps, minimum=1)
        integer_scalar("budget", self.budget, minimum=0)
        if self.budget < 2 * self.batch_size:
            raise InvalidArgumentError(
                f"budget == {self.budget!r} is below 2 rollouts per prompt of a batch of "
                f"{self.batch_size} ({2 * self.batch_size}); a group needs 2 rollouts to yield "
                "a gradient. Raise the budget or lower the batch size."
            )

    def with_budget(self, budget: int) -> Scenario:
        """Return the same scenario with another per-step budget."""
        return Scenario(self.population, self.batch_size, budget, self.steps, self.model)

    def describe(self) -> dict[str, object]:
        """Return the settings as plain values (for reports)."""
        return {
            "population": self.population.describe(),
            "prompts": self.population.size,
            "batch_size": self.batch_size,
            "budget": self.budget,
            "steps": self.steps,
            "learning_rate": self.model.learning_rate,
            "transfer": self.model.transfer,
        }

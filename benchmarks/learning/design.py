"""The fixed design of the experiment: sizes, model, optimiser, policies.

Everything here was fixed before any policy was compared (see
``docs/evidence.md`` for how): the learning rate and the number of steps come
from a pilot with the uniform policy only (``python -m benchmarks.learning.pilot``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

NUM_GENERATIONS = 8

#: What a run measures after every step (see ``run.RunRecord``), in report order.
SERIES = (
    "rollouts",
    "effective_ratio",
    "expected_effective_ratio",
    "prompts_with_gradient",
    "largest_group",
    "mean_success",
    "solved",
    "heldout_success",
    "special_mass",
    "batch_delta",
    "offbatch_delta",
    "rewards",
    "expected_rewards",
    "reward_variance",
    "allocator_s",
    "wall_s",
    "advantage_abs_max",
    "advantage_abs_max_unclipped",
    "advantages_clipped",
)


@dataclass(frozen=True)
class ModelSize:
    """Shape of the Llama policy."""

    hidden: int
    layers: int
    heads: int
    intermediate: int


@dataclass(frozen=True)
class Settings:
    """One experiment's sizes and training settings.

    Attributes
    ----------
    device : {"cpu", "cuda"}
    train_prompts, heldout_prompts : int
        Prompts trained on, and prompts never trained on (they measure transfer).
    prompts_per_step : int
        Unique prompts in each step's batch; the budget is this times
        ``NUM_GENERATIONS``.
    steps : int
        Optimiser steps per run (one generation batch each).
    learning_rate : float
        AdamW's, constant.
    difficulty : tuple of float
        ``Beta(a, b)`` whose quantiles set the answer-set sizes.
    model : ModelSize
    """

    device: str
    train_prompts: int
    heldout_prompts: int
    prompts_per_step: int
    steps: int
    learning_rate: float
    difficulty: tuple[float, float]
    model: ModelSize

    @property
    def budget(self) -> int:
        """Rollouts per step at 1x: ``prompts_per_step * NUM_GENERATIONS``."""
        return self.prompts_per_step * NUM_GENERATIONS

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy, with the derived budget and group size."""
        return {**asdict(self), "budget": self.budget, "num_generations": NUM_GENERATIONS}


CPU = Settings(
    device="cpu",
    train_prompts=64,
    heldout_prompts=32,
    prompts_per_step=16,
    steps=400,
    learning_rate=1e-3,
    difficulty=(0.25, 0.35),
    model=ModelSize(hidden=64, layers=2, heads=4, intermediate=128),
)

#: Larger model and batch for a GPU; the same task and policies.
CUDA = replace(
    CPU,
    device="cuda",
    train_prompts=1024,
    heldout_prompts=256,
    prompts_per_step=64,
    model=ModelSize(hidden=256, layers=4, heads=8, intermediate=512),
)

QUICK_STEPS = 40


@dataclass(frozen=True)
class Policy:
    """How a run spends its rollouts.

    Attributes
    ----------
    name : str
    preset : str or None
        ``KnapsackAllocator`` preset, or None for stock TRL (uniform groups).
    group_size : int
        Rollouts per prompt for uniform; for the allocator, the budget is
        ``prompts_per_step * group_size``.
    advantage_clip : float or None
        ``KnapsackGRPOTrainer``'s ``advantage_clip`` (None: no clipping).
    group_weighting : str
        ``KnapsackGRPOTrainer``'s ``group_weighting``.
    """

    name: str
    preset: str | None
    group_size: int
    advantage_clip: float | None = None
    group_weighting: str = "none"

    def __post_init__(self) -> None:
        if self.preset is None and (
            self.advantage_clip is not None or self.group_weighting != "none"
        ):
            raise ValueError(
                f"policy {self.name!r}: advantage_clip and group_weighting are options of "
                "KnapsackGRPOTrainer; give the policy a preset, or leave them at None and 'none'."
            )

    def budget(self, settings: Settings) -> int:
        """Rollouts this policy spends per step."""
        return settings.prompts_per_step * self.group_size


#: The compared policies, all at the 1x budget.
COMPARED = (
    Policy("uniform", None, NUM_GENERATIONS),
    Policy("knapsack-paper", "paper", NUM_GENERATIONS),
    Policy("knapsack-bayes", "bayes", NUM_GENERATIONS),
)
#: Uniform at 1.5x and 2x the budget, for compute-to-match.
LARGER_UNIFORM = (
    Policy("uniform-1.5x", None, NUM_GENERATIONS * 3 // 2),
    Policy("uniform-2x", None, NUM_GENERATIONS * 2),
)
#: The main experiment's policies: what a run trains unless told otherwise.
POLICIES = COMPARED + LARGER_UNIFORM
#: The options for large groups (``docs/integrations/trl.md``, "Large groups"),
#: run on request (``--policies``) next to the main experiment, whose settings
#: they share: the recommendation (clip at 5, the framework's own weighting) for
#: both presets, and for paper the same clip with per-prompt ``sqrt`` weighting,
#: so that it differs from the recommendation in the weighting alone. Uniform
#: needs no clipped variant: a group of 8 has advantages of at most
#: ``(1 - 1/8) sqrt(8) = 2.47``.
LARGE_GROUPS = (
    Policy("knapsack-paper-clip5", "paper", NUM_GENERATIONS, advantage_clip=5.0),
    Policy("knapsack-bayes-clip5", "bayes", NUM_GENERATIONS, advantage_clip=5.0),
    Policy(
        "knapsack-paper-clip5-sqrt",
        "paper",
        NUM_GENERATIONS,
        advantage_clip=5.0,
        group_weighting="sqrt",
    ),
)
#: Every policy ``--policies`` can name.
ALL_POLICIES = POLICIES + LARGE_GROUPS


def build_model(settings: Settings, vocab_size: int, pad_id: int, eos_id: int, seed: int) -> Any:
    """A freshly initialised Llama; the same ``seed`` gives the same weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    size = settings.model
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,
        max_position_embeddings=16,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).to(settings.device)

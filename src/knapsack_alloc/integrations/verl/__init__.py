"""verl adapter: per-prompt rollout counts from a `KnapsackAllocator`. Written against verl 0.9.1.

The one switch is verl's own command with the module's entry point in front::

    python -m knapsack_alloc.integrations.verl <the usual hydra overrides> knapsack.preset=paper

It runs verl's PPO trainer (``trainer.v1.trainer_mode`` picks sync or async,
as usual) with the trainer subclass of
:func:`~knapsack_alloc.integrations.verl.trainer.knapsack_trainer_class`: the
allocator lives in the driver, plans every prompt batch with a budget of
``train_batch_size x rollout.n`` rollouts through verl's per-prompt
``__rollout_n__`` field, and learns from each step's scores before the next
plan. The ``knapsack`` options are listed in
:mod:`~knapsack_alloc.integrations.verl.options`.

For a custom loop, :class:`VerlKnapsackPlanner` plans, expands and learns
batches directly (``prepare_v1_batch`` for the v1 agent loop, ``expand`` for
the legacy ``RayPPOTrainer``).

Importing this package needs neither verl nor PyTorch.
"""

from knapsack_alloc.integrations.verl._planner import (
    ROLLOUT_N_KEY,
    RolloutPlan,
    VerlKnapsackPlanner,
)

__all__ = ["ROLLOUT_N_KEY", "RolloutPlan", "VerlKnapsackPlanner"]

"""The entry point ``python -m knapsack_alloc.integrations.verl``, the way verl's recipes wrap main.

It composes verl's own ``ppo_trainer`` config with a ``knapsack`` section
(:data:`~knapsack_alloc.integrations.verl.options.KNAPSACK_DEFAULTS`), checks
both, and runs verl's ``run_ppo`` with a task runner whose trainer is the
knapsack subclass of the one ``trainer.v1.trainer_mode`` selects. Any
override verl accepts is accepted here.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from knapsack_alloc.integrations.verl.options import (
    KNAPSACK_DEFAULTS,
    build_allocator,
    build_stability,
    planner_options,
)

__all__ = [
    "CONFIG_NAME",
    "GROUP_ESTIMATORS",
    "check_config",
    "compose_config",
    "main",
    "verl_config_dir",
]

CONFIG_NAME = "knapsack_ppo_trainer"
"""Name of the composed config: verl's ``ppo_trainer`` plus the ``knapsack`` section."""

GROUP_ESTIMATORS = (
    "grpo",
    "grpo_vectorized",
    "rloo",
    "rloo_vectorized",
    "reinforce_plus_plus_baseline",
)
"""verl advantage estimators whose baseline comes from each prompt's own group, of any size."""


def verl_config_dir() -> str:
    """Return the folder of verl's Hydra configs (``verl/trainer/config``)."""
    import verl.trainer

    return os.path.join(os.path.dirname(verl.trainer.__file__), "config")


@functools.cache
def _register_config() -> None:
    from hydra.core.config_store import ConfigStore

    node = {"defaults": ["ppo_trainer", "_self_"], "knapsack": dict(KNAPSACK_DEFAULTS)}
    ConfigStore.instance().store(name=CONFIG_NAME, node=node)


def compose_config(overrides: list[str] | None = None) -> Any:
    """Compose the config the entry point runs with, without running anything.

    Parameters
    ----------
    overrides : list of str, optional
        Hydra overrides, as on the command line.

    Returns
    -------
    omegaconf.DictConfig
    """
    from hydra import compose, initialize_config_dir

    _register_config()
    with initialize_config_dir(config_dir=verl_config_dir(), version_base=None):
        return compose(config_name=CONFIG_NAME, overrides=list(overrides or []))


def check_config(config: Any) -> None:
    """Check the ``knapsack`` section and the verl settings it needs.

    Parameters
    ----------
    config : omegaconf.DictConfig
        A composed config.

    Raises
    ------
    ValueError, TypeError
        Naming the setting and the fix.
    """
    build_allocator(config.knapsack)
    build_stability(config.knapsack)
    planner_options(config.knapsack)
    if not config.trainer.use_v1:
        raise ValueError(
            "trainer.use_v1 == False: the knapsack entry point drives verl's v1 trainers. Drop "
            "the override, or use VerlKnapsackPlanner.expand in a legacy RayPPOTrainer loop."
        )
    estimator = str(config.algorithm.adv_estimator)
    if estimator not in GROUP_ESTIMATORS:
        raise ValueError(
            f"algorithm.adv_estimator == {estimator!r}: per-prompt rollout counts need an "
            "estimator that takes its baseline from each prompt's own group; supported: "
            f"{', '.join(GROUP_ESTIMATORS)}."
        )


@functools.cache
def task_runner_class() -> Any:
    """Return verl's v1 task runner (a Ray actor) with the knapsack trainer swapped in."""
    import ray
    from verl.trainer.main_ppo import TaskRunnerV1

    class KnapsackTaskRunner(TaskRunnerV1.__ray_actor_class__):  # type: ignore[misc]
        def run(self, config: Any) -> None:
            from verl.trainer.ppo import v1

            from knapsack_alloc.integrations.verl.trainer import knapsack_trainer_class

            # TaskRunnerV1.run looks the trainer up by trainer.v1.trainer_mode; this
            # process runs nothing else, so the lookup is redirected for its lifetime.
            stock = v1.get_trainer_cls
            v1.get_trainer_cls = lambda name: knapsack_trainer_class(stock(name))
            try:
                super().run(config)
            finally:
                v1.get_trainer_cls = stock

    return ray.remote(KnapsackTaskRunner)


def _run(config: Any) -> None:
    from verl.trainer.main_ppo import run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    auto_set_device(config)
    check_config(config)
    validate_config(
        config=config,
        use_reference_policy=need_reference_policy(config),
        use_critic=need_critic(config),
    )
    run_ppo(config, task_runner_class=task_runner_class())


def main() -> None:
    """Run verl's PPO trainer with knapsack allocation; Hydra reads the command line."""
    import hydra

    _register_config()
    hydra.main(config_path=verl_config_dir(), config_name=CONFIG_NAME, version_base=None)(_run)()

"""verl v1 trainers that plan every prompt batch with a `KnapsackAllocator`.

:func:`knapsack_trainer_class` turns any registered v1 trainer (``sync``,
``colocate_async``, ``separate_async``) into one that

* plans each prompt batch the trainer draws (``_next_train_batch``, which also
  serves the refills of group filtering) with a budget of
  ``prompts x rollout.n`` rollouts, balances the prompts across the agent-loop
  workers and writes each prompt's ``__rollout_n__``;
* after verl computed the advantages (``_compute_advantage``), feeds the
  step's outcome scores and response lengths to the allocator, in the driver
  process, so the next plan already uses them; and, when asked, clips and
  weights the advantages per prompt;
* feeds the allocator the groups the replay buffer evicts
  (``algorithm.filter_groups``, stale or failed groups), which never reach
  the advantage step;
* saves the allocator in every ``global_step_N`` checkpoint folder and reads
  it back on resume.

Importing this module needs neither verl nor PyTorch.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from knapsack_alloc.integrations.verl._planner import (
    VerlKnapsackPlanner,
    final_session_rows,
    plain,
)
from knapsack_alloc.integrations.verl.options import (
    build_allocator,
    build_stability,
    planner_options,
)

__all__ = ["ALLOCATOR_STATE_FILE", "knapsack_trainer_class"]

ALLOCATOR_STATE_FILE = "knapsack_allocator.ckpt"
"""Name of the allocator's state file inside a ``global_step_N`` folder."""


@functools.cache
def knapsack_trainer_class(base: type) -> type:
    """Subclass a verl v1 trainer so that it plans rollouts with a `KnapsackAllocator`.

    Parameters
    ----------
    base : type
        A ``verl.trainer.ppo.v1.PPOTrainer`` subclass, e.g.
        ``get_trainer_cls(config.trainer.v1.trainer_mode)``.

    Returns
    -------
    type
        ``Knapsack<base>``, built once per base. It reads the ``knapsack``
        section of the config (see :mod:`~knapsack_alloc.integrations.verl.options`).
    """
    import torch
    import transfer_queue as tq
    from tensordict import TensorDict

    trainer_base: Any = base

    class KnapsackTrainer(trainer_base):  # type: ignore[misc]
        """A verl v1 trainer whose prompts get the rollouts a `KnapsackAllocator` plans."""

        def __init__(self, config: Any) -> None:
            options = config.get("knapsack", None)
            if options is None:
                raise ValueError(
                    "The config has no 'knapsack' section; run `python -m "
                    "knapsack_alloc.integrations.verl ...`, which adds it, or add "
                    "+knapsack.preset=paper."
                )
            allocator = build_allocator(options)
            self.knapsack_stability = build_stability(options)
            settings = planner_options(options)
            self.knapsack_prompt_key: str = settings["prompt_key"]
            self.knapsack_save_state: bool = settings["save_state"]
            rollout = config.actor_rollout_ref.rollout
            workers = settings["num_workers"] or int(rollout.agent.get("num_workers", 1) or 1)
            super().__init__(config)
            self.knapsack_planner = VerlKnapsackPlanner(
                allocator,
                rollout_n=int(rollout.n),
                num_workers=workers,
                prompt_key=self.knapsack_prompt_key,
                keep_uids=False,
            )

        # ----------------------------------------------------------- planning
        def _next_train_batch(self, num_prompts: int | None = None) -> Any:
            batch = super()._next_train_batch(num_prompts)
            return self.knapsack_planner.prepare_v1_batch(batch)

        # ----------------------------------------------------------- learning
        def _compute_advantage(self, batch: Any, metrics: dict[str, Any]) -> Any:
            batch = super()._compute_advantage(batch, metrics)
            real = [i for i, tag in enumerate(batch.tags) if not tag.get("is_padding", False)]
            keys = [batch.keys[i] for i in real]
            tags = [batch.tags[i] for i in real]
            fields = [self.knapsack_prompt_key, "uid", "rm_scores"]
            if self.knapsack_stability.active:
                fields.append("advantages")
            data = tq.kv_batch_get(keys=keys, partition_id=batch.partition_id, select_fields=fields)
            update = self._knapsack_record(keys, tags, data)
            metrics.update({f"knapsack/update/{k}": v for k, v in update.items()})
            plan = self.knapsack_planner.last_plan
            if plan is not None:
                metrics.update({f"knapsack/plan/{k}": v for k, v in plan.metrics.items()})
            if self.knapsack_stability.active:
                advantages, group_metrics = self._knapsack_stabilise(keys, data)
                tq.kv_batch_put(
                    keys=keys,
                    partition_id=batch.partition_id,
                    fields=TensorDict({"advantages": advantages}, batch_size=len(keys)),
                )
                metrics.update({f"knapsack/groups/{k}": v for k, v in group_metrics.items()})
            return batch

        def _knapsack_record(
            self, keys: Sequence[str], tags: Sequence[dict[str, Any]], data: Any
        ) -> dict[str, float]:
            """Feed the final output of every session to the allocator."""
            if not keys:
                return {}
            if self.knapsack_prompt_key not in data.keys():  # noqa: SIM118 (a TensorDict)
                raise KeyError(
                    f"The rollouts carry no {self.knapsack_prompt_key!r} field; set "
                    "knapsack.prompt_key to the batch field that identifies a prompt."
                )
            rows = final_session_rows(keys)
            prompts = list(data[self.knapsack_prompt_key])
            scores = data["rm_scores"]
            outcome = np.array([float(scores[int(r)].sum()) for r in rows], dtype=np.float64)
            lengths = np.array(
                [max(float(tags[int(r)].get("response_len", 1)), 1.0) for r in rows],
                dtype=np.float64,
            )
            ids = [plain(prompts[int(r)]) for r in rows]
            return dict(self.knapsack_planner.allocator.update(ids, outcome, costs=lengths))

        def _knapsack_stabilise(
            self, keys: Sequence[str], data: Any
        ) -> tuple[Any, dict[str, float]]:
            """Clip and weight the stored advantages; a group's size counts its sessions."""
            nested = data["advantages"]
            lengths = nested.offsets().diff().tolist()
            padded = nested.to_padded_tensor(0.0)
            uids = [str(u) for u in data["uid"]]
            sessions = [key.rsplit("_", 1)[0] for key in keys]
            group_of = {u: g for g, u in enumerate(dict.fromkeys(uids))}
            first = {s: i for i, s in reversed(list(enumerate(sessions)))}
            session_rows = sorted(first.values())
            session_groups = torch.tensor([group_of[uids[i]] for i in session_rows])
            weights = self.knapsack_stability.weights(session_groups)
            names = [sessions[i] for i in session_rows]
            weight_of = dict(zip(names, weights.tolist(), strict=True))
            clipped, metrics = self.knapsack_stability.clip(padded)
            if self.knapsack_stability.group_weighting != "none":
                row_weights = torch.tensor([weight_of[s] for s in sessions], dtype=padded.dtype)
                clipped = clipped * row_weights[:, None]
            metrics["group_weight_min"] = float(weights.min())
            metrics["group_weight_max"] = float(weights.max())
            rows = [clipped[i, :n] for i, n in enumerate(lengths)]
            return torch.nested.as_nested_tensor(rows, layout=torch.jagged), metrics

        def _build_replay_buffer(self) -> Any:
            buffer = super()._build_replay_buffer()
            clear = buffer._clear_groups

            def clear_and_record(partition_id: str, uids: set[str]) -> None:
                # Evicted groups (filtered, stale, failed, surplus) never reach the
                # advantage step; their scores are still evidence about the prompt.
                if partition_id == "train" and uids:
                    snapshot = buffer.partitions[partition_id]
                    keys = [k for k in snapshot if k.split("_")[0] in uids]
                    if keys:
                        fields = [self.knapsack_prompt_key, "rm_scores"]
                        data = tq.kv_batch_get(
                            keys=keys, partition_id=partition_id, select_fields=fields
                        )
                        self._knapsack_record(keys, [snapshot[k] for k in keys], data)
                clear(partition_id, uids)

            buffer._clear_groups = clear_and_record
            return buffer

        # -------------------------------------------------------- checkpoints
        def _save_checkpoint(self) -> None:
            super()._save_checkpoint()
            if self.knapsack_save_state:
                folder = os.path.join(
                    self.config.trainer.default_local_dir, f"global_step_{self.global_steps}"
                )
                self.knapsack_planner.allocator.save(os.path.join(folder, ALLOCATOR_STATE_FILE))

        def _load_checkpoint(self) -> None:
            super()._load_checkpoint()
            if not self.knapsack_save_state or self.global_steps == 0:
                return
            trainer = self.config.trainer
            if trainer.resume_mode == "resume_path":
                folder = trainer.resume_from_path
            else:
                folder = os.path.join(trainer.default_local_dir, f"global_step_{self.global_steps}")
            path = os.path.join(os.path.abspath(folder), ALLOCATOR_STATE_FILE)
            if os.path.exists(path):
                allocator = self.knapsack_planner.allocator
                allocator.load_state_dict(type(allocator).load(path).state_dict())

    KnapsackTrainer.__name__ = KnapsackTrainer.__qualname__ = f"Knapsack{base.__name__}"
    KnapsackTrainer.__module__ = __name__
    return KnapsackTrainer

"""OpenRLHF adapter: per-prompt rollout counts from a `KnapsackAllocator`.

The two classes are built on first access, so importing this module needs
neither OpenRLHF nor PyTorch::

    import ray
    from openrlhf.trainer.ppo_trainer import PPOTrainer

    from knapsack_alloc.allocator import KnapsackAllocator
    from knapsack_alloc.integrations.openrlhf import (
        KnapsackExperienceMaker,
        KnapsackSamplesGenerator,
    )

    @ray.remote
    class KnapsackPPOTrainer(PPOTrainer.__ray_actor_class__):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            allocator = KnapsackAllocator(preset="paper")
            self.samples_generator = KnapsackSamplesGenerator.wrap(
                self.samples_generator, allocator
            )
            self.experience_maker = KnapsackExperienceMaker.wrap(
                self.experience_maker, allocator
            )

What changes in OpenRLHF (written against OpenRLHF 0.11.2):

* ``SamplesGenerator._dispatch_prompts_to_vllm`` sends every prompt to the vLLM
  engines with ``n_samples_per_prompt`` samples. `KnapsackSamplesGenerator`
  asks the allocator for a plan with budget ``prompts * n_samples_per_prompt``
  and sends prompt ``i`` with ``counts[i]`` samples, keeping the engines'
  pending work balanced by rollouts. Evaluation keeps the uniform count.
* ``RemoteExperienceMaker.compute_advantages_and_returns`` groups rewards with
  ``rewards.reshape(-1, n_samples_per_prompt)``, which silently mixes prompts
  once groups differ in size. `KnapsackExperienceMaker` groups the samples by
  their prompt instead (:func:`group_baseline`), then computes returns and
  advantages as OpenRLHF does, and updates the allocator with the step's
  scores.

A prompt is identified by its text (after the chat template), so the same
prompt keeps its reward history across epochs, and duplicates of one prompt in
a batch share one group.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import numpy as np

# The two classes are built by the module's ``__getattr__`` on first access.
__all__ = [
    "GROUP_ESTIMATORS",
    "KnapsackExperienceMaker",  # noqa: F822
    "KnapsackSamplesGenerator",  # noqa: F822
    "group_baseline",
]

GROUP_ESTIMATORS = ("group_norm", "rloo", "reinforce_baseline", "dr_grpo")
"""OpenRLHF advantage estimators that use a per-prompt baseline."""

_GROUP_NORM_EPS = 1e-9  # OpenRLHF's constant in ``(r - mean) / (std + 1e-9)``


def __getattr__(name: str) -> Any:
    if name == "KnapsackSamplesGenerator":
        return _classes()[0]
    if name == "KnapsackExperienceMaker":
        return _classes()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def group_baseline(rewards: Any, group_ids: Any, estimator: str) -> Any:
    """Shape per-sample rewards with a baseline from each sample's own group.

    Parameters
    ----------
    rewards : torch.Tensor
        Scalar reward of each sample, shape ``(n_samples,)``.
    group_ids : array_like of int
        Group (prompt) of each sample, shape ``(n_samples,)``; groups may have
        any size and need not be contiguous.
    estimator : {"group_norm", "rloo", "reinforce_baseline", "dr_grpo"}
        OpenRLHF's ``--algo.advantage.estimator``.

    Returns
    -------
    shaped : torch.Tensor
        Same shape and dtype as ``rewards``.
    group_std : torch.Tensor
        Standard deviation (Bessel-corrected) of each sample's group, 0 for a
        group of one; OpenRLHF logs it as ``group_reward_std``.

    Notes
    -----
    For a sample with reward ``r`` in a group ``g`` of ``k`` samples:

    * ``group_norm``: ``(r - mean_g) / (std_g + 1e-9)`` (GRPO);
    * ``rloo``: ``r - (sum_g - r) / (k - 1)``;
    * ``reinforce_baseline`` and ``dr_grpo``: ``r - mean_g``.

    These are OpenRLHF's formulas for equal groups. A group of one sample has
    no baseline and gets 0.
    """
    import torch

    if estimator not in GROUP_ESTIMATORS:
        raise ValueError(
            f"The 'estimator' parameter must be a str among {set(GROUP_ESTIMATORS)}. "
            f"Got {estimator!r} instead."
        )
    values = rewards.reshape(-1)
    _, inverse = np.unique(np.asarray(group_ids), return_inverse=True)
    if inverse.size != values.numel():
        raise ValueError(
            f"group_ids has {inverse.size} entries, rewards has {values.numel()}; "
            "give one group id per sample."
        )
    group = torch.as_tensor(inverse.reshape(-1), dtype=torch.long, device=values.device)
    n_groups = int(group.max().item()) + 1 if group.numel() else 0
    size = torch.zeros(n_groups, dtype=values.dtype, device=values.device)
    size.index_add_(0, group, torch.ones_like(values))
    total = torch.zeros_like(size).index_add_(0, group, values)
    mean = (total / size)[group]
    k = size[group]
    squares = torch.zeros_like(size).index_add_(0, group, (values - mean) ** 2)
    alone = k < 2
    std = torch.where(alone, 0.0, (squares[group] / (k - 1).clamp(min=1)).sqrt())
    if estimator == "group_norm":
        shaped = (values - mean) / (std + _GROUP_NORM_EPS)
    elif estimator == "rloo":
        shaped = values - (total[group] - values) / (k - 1).clamp(min=1)
    else:
        shaped = values - mean
    shaped = torch.where(alone, torch.zeros_like(shaped), shaped)
    return shaped.reshape(rewards.shape), std.reshape(rewards.shape)


def _prompt_ids(prompts: Iterable[Any]) -> list[str]:
    return [str(p) for p in prompts]


@functools.cache
def _classes() -> tuple[type, type]:
    """Import OpenRLHF and build the two subclasses (once)."""
    import heapq
    import itertools

    import ray
    import torch
    from openrlhf.models.utils import compute_reward
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker
    from openrlhf.trainer.ppo_utils.length_penalty import apply_length_penalties
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator, SamplingParams

    class KnapsackSamplesGenerator(SamplesGenerator):  # type: ignore[misc]
        """``SamplesGenerator`` that sends each prompt with its planned number of samples.

        Parameters
        ----------
        *args, **kwargs
            Passed to ``openrlhf.trainer.ppo_utils.samples_generator.SamplesGenerator``.
        allocator : KnapsackAllocator
            Plans the samples of every training batch.

        Attributes
        ----------
        last_plan : object or None
            The allocator's plan for the latest training batch; its
            ``metrics`` are ready to log.

        Notes
        -----
        The budget of a batch of ``m`` prompts is ``m * n_samples_per_prompt``,
        so a step trains on as many samples as the stock generator produces.
        Dynamic filtering (``--algo.dynamic_filtering_enable``) and
        over-sampling (``--rollout.vllm_generate_batch_size`` larger than
        ``--rollout.batch_size``) are rejected: both cut the sample stream into
        steps of ``batch_size * n_samples_per_prompt`` samples, which splits
        groups of unequal size across steps.
        """

        def __init__(self, *args: Any, allocator: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.allocator = allocator
            self.last_plan: Any = None
            self._training = False

        @classmethod
        def wrap(cls, generator: Any, allocator: Any) -> KnapsackSamplesGenerator:
            """Return a knapsack generator with the state of an existing ``SamplesGenerator``.

            Parameters
            ----------
            generator : SamplesGenerator
                E.g. ``PPOTrainer.samples_generator``; it is not modified.
            allocator : KnapsackAllocator
                Plans the samples of every training batch.
            """
            wrapped = cls.__new__(cls)
            wrapped.__dict__.update(generator.__dict__)
            wrapped.allocator = allocator
            wrapped.last_plan = None
            wrapped._training = False
            return wrapped

        @torch.no_grad()  # type: ignore[untyped-decorator]
        def generate_samples(self, **generate_kwargs: Any) -> Any:
            """Generate one training batch with the planned number of samples per prompt."""
            rollout = self.args.rollout
            if self.args.algo.dynamic_filtering_enable:
                raise ValueError(
                    "KnapsackSamplesGenerator does not support --algo.dynamic_filtering_enable: "
                    "a filtered prompt's replacement would get no planned budget. Disable it "
                    "(the allocator already moves budget away from solved prompts)."
                )
            oversample = getattr(rollout, "vllm_generate_batch_size", None)
            if oversample and oversample != rollout.batch_size:
                raise ValueError(
                    f"--rollout.vllm_generate_batch_size == {oversample} differs from "
                    f"--rollout.batch_size == {rollout.batch_size}; KnapsackSamplesGenerator "
                    "needs one generation call per training step. Unset it."
                )
            self._training = True
            try:
                return super().generate_samples(**generate_kwargs)
            finally:
                self._training = False

        def _dispatch_prompts_to_vllm(
            self,
            prompts: list[str],
            labels: list[str],
            *,
            images: list[Any] | None = None,
            **generate_kwargs: Any,
        ) -> list[Any]:
            if not self._training:
                return super()._dispatch_prompts_to_vllm(  # type: ignore[no-any-return]
                    prompts, labels, images=images, **generate_kwargs
                )
            n = int(
                generate_kwargs.get("n_samples_per_prompt", self.args.rollout.n_samples_per_prompt)
            )
            plan = self.allocator.plan(_prompt_ids(prompts), len(prompts) * n)
            self.last_plan = plan
            counts = np.asarray(plan.counts, dtype=np.int64)
            sampling_params = SamplingParams(
                temperature=generate_kwargs.get("temperature", 1.0),
                top_p=generate_kwargs.get("top_p", 1.0),
                top_k=generate_kwargs.get("top_k", -1),
                max_tokens=generate_kwargs.get("max_new_tokens"),
                min_tokens=generate_kwargs.get("min_new_tokens", 1),
                skip_special_tokens=generate_kwargs.get("skip_special_tokens", False),
                logprobs=1 if self.args.algo.advantage.is_correction_level != "off" else None,
            )
            pending = ray.get([e.get_num_unfinished_requests.remote() for e in self.vllm_engines])
            heap = [(int(load), j) for j, load in enumerate(pending)]
            heapq.heapify(heap)
            if images is None:
                images = [None] * len(prompts)
            refs = []
            # Largest groups first, each to the engine with the least pending work.
            for i in np.argsort(-counts, kind="stable"):
                if counts[i] == 0:
                    continue
                load, j = heapq.heappop(heap)
                heapq.heappush(heap, (load + int(counts[i]), j))
                refs.append(
                    self.vllm_engines[j].generate_responses.remote(
                        prompt=prompts[i],
                        label=labels[i],
                        sampling_params=sampling_params,
                        max_length=generate_kwargs.get("max_len", 2048),
                        hf_tokenizer=self.tokenizer,
                        num_samples=int(counts[i]),
                        images=images[i],
                    )
                )
            return refs

    class KnapsackExperienceMaker(RemoteExperienceMaker):  # type: ignore[misc]
        """``RemoteExperienceMaker`` whose group baselines work for groups of any size.

        Parameters
        ----------
        *args, **kwargs
            Passed to ``openrlhf.trainer.ppo_utils.experience_maker.RemoteExperienceMaker``.
        allocator : KnapsackAllocator
            Updated with the scores of every batch.

        Attributes
        ----------
        last_update_metrics : dict of str to float
            What ``allocator.update`` returned for the latest batch.

        Notes
        -----
        Supports the group estimators of :data:`GROUP_ESTIMATORS`. The
        allocator is updated with each sample's ``scores`` when the reward
        function returns them (OpenRLHF's binary score), else with its reward
        before length penalties.
        """

        def __init__(self, *args: Any, allocator: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.allocator = allocator
            self.last_update_metrics: dict[str, float] = {}

        @classmethod
        def wrap(cls, maker: Any, allocator: Any) -> KnapsackExperienceMaker:
            """Return a knapsack experience maker with the state of an existing one.

            Parameters
            ----------
            maker : RemoteExperienceMaker
                E.g. ``PPOTrainer.experience_maker``; it is not modified.
            allocator : KnapsackAllocator
                Updated with the scores of every batch.
            """
            wrapped = cls.__new__(cls)
            wrapped.__dict__.update(maker.__dict__)
            wrapped.allocator = allocator
            wrapped.last_update_metrics = {}
            return wrapped

        @torch.no_grad()  # type: ignore[untyped-decorator]
        def compute_advantages_and_returns(self, experiences: list[Any]) -> list[Any]:
            """Compute returns and advantages with per-prompt groups of any size."""
            args = self.args
            estimator = args.algo.advantage.estimator
            if estimator not in GROUP_ESTIMATORS:
                raise ValueError(
                    f"KnapsackExperienceMaker supports the estimators {list(GROUP_ESTIMATORS)}, "
                    f"not {estimator!r}."
                )
            for experience in experiences:
                experience.rewards = experience.rewards.to(
                    torch.promote_types(experience.rewards.dtype, torch.float32)
                )
            prompt_ids = _prompt_ids(itertools.chain.from_iterable(e.prompts for e in experiences))
            outcome = [e.scores if e.scores is not None else e.rewards for e in experiences]
            success = torch.cat([o.reshape(-1) for o in outcome]).double().cpu().numpy()
            self.last_update_metrics = dict(self.allocator.update(prompt_ids, success))

            apply_length_penalties(experiences, args)
            sizes = [len(e.rewards) for e in experiences]
            rewards = torch.cat([e.rewards for e in experiences])
            shaped, group_std = group_baseline(rewards, prompt_ids, estimator)
            for experience, reward, std in zip(
                experiences, shaped.split(sizes), group_std.split(sizes), strict=True
            ):
                experience.info["group_reward_std"] = std
                reward = compute_reward(
                    reward,
                    self.kl_ctl.value,
                    experience.kl,
                    action_mask=experience.action_mask,
                    reward_clip_range=args.reward.clip_range,
                )
                experience.returns = self.get_cumulative_returns(
                    reward, experience.action_mask, 1.0
                )
                experience.advantages = experience.returns.clone()
                experience.info["return"] = reward.sum(dim=-1)
                experience.kl = None

            if estimator == "reinforce_baseline":
                # OpenRLHF whitens reinforce_baseline advantages over the whole batch.
                advantages = torch.cat([e.advantages.flatten() for e in experiences]).float()
                masks = torch.cat([e.action_mask.flatten() for e in experiences])
                count = masks.sum()
                mean = (advantages * masks).sum() / count
                scale: Any = 1
                if not args.algo.advantage.no_std_norm:
                    var = ((advantages - mean).pow(2) * masks).sum() / count
                    scale = var.clamp(min=1e-8).rsqrt()
                for experience in experiences:
                    experience.advantages = (experience.advantages - mean) * scale
            return experiences

    return KnapsackSamplesGenerator, KnapsackExperienceMaker

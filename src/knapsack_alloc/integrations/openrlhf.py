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

* ``SamplesGenerator._generate_vllm`` sends every prompt to the vLLM engines
  with ``n_samples_per_prompt`` samples. `KnapsackSamplesGenerator` asks the
  allocator for a plan with budget ``prompts * n_samples_per_prompt`` and
  sends prompt ``i`` with ``counts[i]`` samples, keeping the engines' pending
  work balanced by samples. With ``--algo.dynamic_filtering_enable`` it
  filters first, then plans: a filtered group's samples become refill credit,
  replacement prompts are planned with that credit as their budget, so a step
  still trains on exactly ``batch_size * n_samples_per_prompt`` samples.
  Evaluation keeps the uniform count.
* ``RemoteExperienceMaker.compute_advantages_and_returns`` groups rewards with
  ``rewards.reshape(-1, n_samples_per_prompt)``, which silently mixes prompts
  once groups differ in size. `KnapsackExperienceMaker` groups the samples by
  their prompt instead (:func:`group_baseline`), optionally clips and weights
  them per prompt, then computes returns and advantages as OpenRLHF does, and
  updates the allocator with the step's scores.

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
    "check_estimator",
    "group_baseline",
]

GROUP_ESTIMATORS = ("group_norm", "rloo", "reinforce_baseline", "dr_grpo")
"""OpenRLHF advantage estimators that use a per-prompt baseline: the ones the adapter supports."""


def check_estimator(estimator: str) -> None:
    """Refuse an OpenRLHF advantage estimator that does not group samples by prompt.

    Parameters
    ----------
    estimator : str
        ``--algo.advantage.estimator``.

    Raises
    ------
    ValueError
        For ``gae``, ``reinforce``, ``flash_reinforce`` or anything else
        outside :data:`GROUP_ESTIMATORS`.
    """
    if estimator not in GROUP_ESTIMATORS:
        raise ValueError(
            f"--algo.advantage.estimator == {estimator!r} does not compare a prompt's samples "
            "with each other, so per-prompt sample counts cannot help it; the knapsack adapter "
            f"supports {', '.join(GROUP_ESTIMATORS)}. Use one of those (group_norm is GRPO), "
            "or train without the adapter."
        )


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
    from openrlhf.trainer.ppo_utils.samples_generator import (
        SamplesGenerator,
        SamplingParams,
        _collect_prompt_batch,
    )

    from knapsack_alloc.integrations.groups import GroupStability

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
            The allocator's plan for the latest training batch (before any
            refill); its ``metrics`` are ready to log.
        last_metrics : dict of str to float
            Samples generated, trained and filtered in the latest batch, and
            the refill rounds of dynamic filtering.

        Notes
        -----
        The budget of a batch of ``m`` prompts is ``m * n_samples_per_prompt``
        samples, so a step trains on as many samples as the stock generator
        produces. With dynamic filtering (``--algo.dynamic_filtering_enable``)
        a group whose mean score falls outside
        ``--algo.dynamic_filtering_range`` is dropped, as in OpenRLHF, and its
        scores still update the allocator. Its samples become refill credit:
        once the credit reaches ``n_samples_per_prompt`` (or nothing else is
        pending), ``credit // n_samples_per_prompt`` new prompts (at least one)
        are drawn and planned with the whole credit as their budget. A step
        thus trains on exactly ``batch_size * n_samples_per_prompt`` samples
        (fewer only if the prompt data runs out) and generates that plus
        every filtered sample. Over-sampling (``--rollout.vllm_generate_batch_size``
        larger than ``--rollout.batch_size``) is rejected: OpenRLHF cuts its
        sample buffer into steps of ``batch_size * n_samples_per_prompt``
        samples, which would split groups of unequal size across steps.
        """

        def __init__(self, *args: Any, allocator: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._attach(allocator)

        def _attach(self, allocator: Any) -> None:
            check_estimator(self.args.algo.advantage.estimator)
            self.allocator = allocator
            self.last_plan: Any = None
            self.last_metrics: dict[str, float] = {}
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
            wrapped._attach(allocator)
            return wrapped

        @torch.no_grad()  # type: ignore[untyped-decorator]
        def generate_samples(self, **generate_kwargs: Any) -> Any:
            """Generate one training batch with the planned number of samples per prompt."""
            rollout = self.args.rollout
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

        def _generate_vllm(
            self, dataloader_iter: Any, num_prompts: int, dynamic_filtering: bool, **kwargs: Any
        ) -> tuple[list[Any], int, bool]:
            if not self._training:
                return super()._generate_vllm(  # type: ignore[no-any-return]
                    dataloader_iter, num_prompts, dynamic_filtering, **kwargs
                )
            n = int(kwargs.get("n_samples_per_prompt", self.args.rollout.n_samples_per_prompt))
            prompts, labels, images, exhausted = _collect_prompt_batch(dataloader_iter, num_prompts)
            if not prompts:
                return [], 0, True
            self.last_plan = self.allocator.plan(_prompt_ids(prompts), len(prompts) * n)
            pending = self._send(prompts, labels, images, self.last_plan.counts, **kwargs)
            consumed, credit, rounds = len(prompts), 0, 0
            accepted: list[Any] = []
            filtered = 0
            low, high = getattr(self.args.algo, "dynamic_filtering_range", (0.0, 1.0))
            while pending or credit:
                if credit and (credit >= n or not pending):
                    # Filter, then plan: the filtered samples buy replacement prompts.
                    wanted = max(1, credit // n)
                    new, new_labels, new_images, exhausted = _collect_prompt_batch(
                        dataloader_iter, wanted
                    )
                    if not new:
                        break
                    consumed += len(new)
                    if len(new) == 1:  # one prompt can only spend the credit one way
                        counts = np.array([credit], dtype=np.int64)
                    else:
                        counts = self.allocator.plan(_prompt_ids(new), credit).counts
                    pending.extend(self._send(new, new_labels, new_images, counts, **kwargs))
                    credit, rounds = 0, rounds + 1
                    continue
                ready, pending = ray.wait(pending, num_returns=1, timeout=10.0)
                for ref in ready:
                    group = [
                        self._process_response_into_experience(r, **kwargs) for r in ray.get(ref)
                    ]
                    if dynamic_filtering and group and all(e.scores is not None for e in group):
                        scores = [float(e.scores[0].item()) for e in group]
                        if not low < sum(scores) / len(scores) < high:
                            self.allocator.update([str(e.prompts[0]) for e in group], scores)
                            credit += len(group)
                            filtered += len(group)
                            continue
                    accepted.extend(group)
            self.last_metrics = {
                "samples_trained": float(len(accepted)),
                "samples_generated": float(len(accepted) + filtered),
                "samples_filtered": float(filtered),
                "refill_rounds": float(rounds),
                "prompts_consumed": float(consumed),
            }
            return accepted, consumed, exhausted

        def _send(
            self,
            prompts: list[str],
            labels: list[str],
            images: list[Any] | None,
            counts: Any,
            **kwargs: Any,
        ) -> list[Any]:
            """Dispatch prompt ``i`` with ``counts[i]`` samples; return the Ray refs."""
            counts = np.asarray(counts, dtype=np.int64)
            sampling_params = SamplingParams(
                temperature=kwargs.get("temperature", 1.0),
                top_p=kwargs.get("top_p", 1.0),
                top_k=kwargs.get("top_k", -1),
                max_tokens=kwargs.get("max_new_tokens"),
                min_tokens=kwargs.get("min_new_tokens", 1),
                skip_special_tokens=kwargs.get("skip_special_tokens", False),
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
                        max_length=kwargs.get("max_len", 2048),
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
        advantage_clip : float or None, default None
            Clip each sample's shaped reward (its advantage before KL) to
            ``[-advantage_clip, advantage_clip]``.
        group_weighting : {"none", "sqrt", "equal"}, default "none"
            Per-prompt weighting of groups of unequal size (see
            :class:`~knapsack_alloc.integrations.groups.GroupStability`).

        Attributes
        ----------
        last_update_metrics : dict of str to float
            What ``allocator.update`` returned for the latest batch, and the
            clipping and weighting figures (``groups/...``).

        Notes
        -----
        Supports the group estimators of :data:`GROUP_ESTIMATORS` and refuses
        the others (:func:`check_estimator`). The allocator is updated with
        each sample's ``scores`` when the reward function returns them
        (OpenRLHF's binary score), else with its reward before length
        penalties. Clipping and weighting act on the group-baselined reward,
        before OpenRLHF's own ``--reward.clip_range`` and KL term.
        """

        def __init__(
            self,
            *args: Any,
            allocator: Any,
            advantage_clip: float | None = None,
            group_weighting: str = "none",
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            self._attach(allocator, GroupStability(advantage_clip, group_weighting))

        def _attach(self, allocator: Any, stability: Any) -> None:
            check_estimator(self.args.algo.advantage.estimator)
            self.allocator = allocator
            self.stability = stability
            self.last_update_metrics: dict[str, float] = {}

        @classmethod
        def wrap(
            cls,
            maker: Any,
            allocator: Any,
            *,
            advantage_clip: float | None = None,
            group_weighting: str = "none",
        ) -> KnapsackExperienceMaker:
            """Return a knapsack experience maker with the state of an existing one.

            Parameters
            ----------
            maker : RemoteExperienceMaker
                E.g. ``PPOTrainer.experience_maker``; it is not modified.
            allocator : KnapsackAllocator
                Updated with the scores of every batch.
            advantage_clip, group_weighting
                See the class.
            """
            stability = GroupStability(advantage_clip, group_weighting)
            wrapped = cls.__new__(cls)
            wrapped.__dict__.update(maker.__dict__)
            wrapped._attach(allocator, stability)
            return wrapped

        @torch.no_grad()  # type: ignore[untyped-decorator]
        def compute_advantages_and_returns(self, experiences: list[Any]) -> list[Any]:
            """Compute returns and advantages with per-prompt groups of any size."""
            args = self.args
            estimator = args.algo.advantage.estimator
            check_estimator(estimator)
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
            groups = torch.as_tensor(np.unique(prompt_ids, return_inverse=True)[1].reshape(-1))
            shaped, group_metrics = self.stability.apply(shaped, groups)
            self.last_update_metrics.update({f"groups/{k}": v for k, v in group_metrics.items()})
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

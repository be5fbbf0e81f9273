"""The built-in policies: ours and the published alternatives, at an equal budget.

Every policy spends at most the step's budget ``B`` (all of it, whenever its
rules allow) and ``n = B // batch_size`` is the group size of the policies
that use one (8 in the paper's setup). Details that the papers leave to a
configuration take the published defaults, cited on each class; how each is
matched to the budget is described in ``docs/simulator.md``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import integer_scalar, real_scalar
from knapsack_alloc.allocator.metrics import uniform_counts
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.simulate.environment import EMPTY_GROUPS, Groups
from knapsack_alloc.simulate.policy import Policy, StepContext, StepResult

if TYPE_CHECKING:
    from knapsack_alloc.allocator.presets import PresetName


def group_size(context: StepContext) -> int:
    """Rollouts per prompt of a uniform split: ``budget // batch_size``, at least 2."""
    return max(2, context.budget // context.batch_size)


def _step_allocator(preset: PresetName, params: dict[str, Any], context: StepContext) -> Any:
    """Create a knapsack policy's allocator; ``"paper"`` gives unseen prompts a uniform group."""
    from knapsack_alloc.allocator import KnapsackAllocator

    params = dict(params)
    if preset == "paper":
        params.setdefault("default_rollouts", group_size(context))
    return KnapsackAllocator(preset, **params)


class Uniform(Policy):
    """Every prompt of the batch gets the same share of the budget (GRPO's fixed ``n``).

    With ``B`` not a multiple of the batch size the first ``B % batch_size``
    prompts get one rollout more, so the whole budget is spent.
    """

    name = "uniform"

    def step(self, context: StepContext) -> StepResult:
        """See :meth:`Policy.step`."""
        prompts = context.take(context.batch_size)
        counts = uniform_counts(prompts.size, context.budget, 0, context.budget)
        groups, _ = context.rollout(prompts, counts)
        return StepResult(generated=groups, trained=groups)


def _over_sampling(name: str, value: Any) -> float:
    factor = real_scalar(name, value)
    if factor < 1.0:
        raise InvalidArgumentError(f"{name} == {value!r}, must be >= 1 (1: no over-sampling).")
    return factor


class Knapsack(Policy):
    """:class:`~knapsack_alloc.KnapsackAllocator` with a preset, as a trainer would use it.

    Each step: ``plan`` the batch, generate the planned rollouts, ``update``
    with every reward. For ``"paper"`` the rollouts of a prompt without
    enough history (``default_rollouts``) are the uniform share
    ``budget // batch_size``, the paper's default ``N``, unless given.

    With ``oversample > 1`` the plan covers ``oversample * batch_size``
    prompts from the loader and prompts planned 0 rollouts are skipped (pass
    ``min_rollouts=0`` so the allocator may do so): the optimiser then picks
    the prompts as well as their rollouts.

    Parameters
    ----------
    preset : {'paper', 'bayes'}
        The allocator preset.
    oversample : float, default 1
        Prompts planned per prompt of a batch.
    **params
        Passed to :class:`~knapsack_alloc.KnapsackAllocator`.
    """

    def __init__(
        self, preset: PresetName = "paper", oversample: float = 1.0, **params: Any
    ) -> None:
        from knapsack_alloc.allocator import KnapsackAllocator

        KnapsackAllocator(preset, **params)  # fail now on a bad preset or parameter
        self.oversample = _over_sampling("oversample", oversample)
        self.name = f"knapsack-{preset}" + (f"-x{oversample:g}" if oversample != 1 else "")
        self.preset = preset
        self.params = params
        self._allocator: Any = None

    def step(self, context: StepContext) -> StepResult:
        """See :meth:`Policy.step`."""
        if self._allocator is None:
            self._allocator = _step_allocator(self.preset, self.params, context)
        prompts = context.take(round(context.batch_size * self.oversample))
        plan = self._allocator.plan(prompts, context.budget)
        sampled = plan.counts > 0
        prompts, counts = prompts[sampled], plan.counts[sampled]
        groups, rewards = context.rollout(prompts, counts)
        self._allocator.update(np.repeat(prompts, counts), rewards)
        return StepResult(
            generated=groups,
            trained=groups,
            extras={"prompts_fallback": plan.metrics["prompts_fallback"]},
        )


class KnapsackRounds(Policy):
    """:meth:`~knapsack_alloc.KnapsackAllocator.start_step`: a step's budget spent in rounds.

    Each step plans the batch's first round with its share of the budget,
    generates it, and plans every later round under beliefs updated with the
    step's rewards so far (a group that already holds a success and a
    failure gets nothing more); the allocator is updated once with all of
    them. A prompt's rollouts of every round form one group, which is
    trained on. ``default_rollouts`` of ``"paper"`` is set as in
    :class:`Knapsack`. See ``docs/rounds.md``.

    Parameters
    ----------
    preset : {'paper', 'bayes'}
        The allocator preset.
    rounds : int, default 2
        Rounds per step.
    first_share : float, optional
        Share of the budget of the first round (default ``1 / rounds``).
    **params
        Passed to :class:`~knapsack_alloc.KnapsackAllocator`.
    """

    def __init__(
        self, preset: PresetName = "bayes", rounds: int = 2, first_share: float | None = None,
        **params: Any,
    ) -> None:  # fmt: skip
        from knapsack_alloc.allocator import KnapsackAllocator
        from knapsack_alloc.rounds import round_shares

        KnapsackAllocator(preset, **params)  # fail now on a bad preset or parameter
        self.shares = round_shares(rounds, first_share)
        count = "" if len(self.shares) == 2 else str(len(self.shares))
        share = "" if first_share is None else f"-f{first_share:g}"
        self.name = f"knapsack-rounds{count}-{preset}{share}"
        self.preset = preset
        self.params = params
        self._allocator: Any = None

    def step(self, context: StepContext) -> StepResult:
        """See :meth:`Policy.step`."""
        if self._allocator is None:
            self._allocator = _step_allocator(self.preset, self.params, context)
        prompts = context.take(context.batch_size)
        rounds = self._allocator.start_step(prompts, context.budget, shares=self.shares)
        successes = np.zeros(prompts.size, dtype=np.int64)
        mixed_after_first = fallback = 0.0
        for plan in rounds:
            groups, rewards = context.rollout(prompts, plan.counts)
            rounds.record(rewards)
            successes += groups.successes
            fallback += plan.metrics["prompts_fallback"]
            if plan.round == 1:
                mixed_after_first = plan.metrics["prompts_mixed"]
        rounds.finish()
        groups = Groups(prompts, rounds.group_sizes, successes)
        return StepResult(
            generated=groups,
            trained=groups,
            extras={"prompts_fallback": fallback, "mixed_after_first_round": mixed_after_first},
        )


class _TrainBatch:
    """Groups with a gradient waiting for a full training batch (DAPO's refill)."""

    def __init__(self) -> None:
        self.waiting = EMPTY_GROUPS

    def add(self, groups: Groups, size: int) -> tuple[Groups, int]:
        """Keep the groups with a gradient; return a full batch (or none) and the groups dropped.

        When the waiting groups reach ``size``, the first ``size`` are trained
        and the rest are dropped, as the published implementations truncate
        the refilled batch to the training batch size.
        """
        self.waiting = Groups.concat([self.waiting, groups.select(groups.has_gradient)])
        if len(self.waiting) < size:
            return EMPTY_GROUPS, 0
        batch, dropped = self.waiting.select(slice(0, size)), len(self.waiting) - size
        self.waiting = EMPTY_GROUPS
        return batch, dropped


class DynamicSampling(Policy):
    """DAPO's dynamic sampling (Yu et al., arXiv 2503.14476), at an equal budget.

    Each step generates ``n`` rollouts for ``B // n`` prompts from the loader
    (one generation batch). Groups whose rewards are all equal are dropped;
    the others wait until a training batch of ``batch_size / oversample``
    groups is full, which is then trained on; the extra groups of the
    generation that filled it are dropped. A step that does not fill the
    batch trains on nothing and the next step's generation continues the
    refill. ``oversample = 3`` is the published recipe's generation batch of
    three times the training batch (``gen_prompt_bsz = train_prompt_bsz * 3``
    in the DAPO scripts); holding the generation to ``B`` rollouts per step
    is what makes the training batch ``batch_size / 3``.

    Parameters
    ----------
    oversample : float, default 3
        Prompts generated per prompt trained.
    """

    name = "dapo"

    def __init__(self, oversample: float = 3.0) -> None:
        self.oversample = _over_sampling("oversample", oversample)
        self._batch = _TrainBatch()

    def step(self, context: StepContext) -> StepResult:
        """See :meth:`Policy.step`."""
        n = group_size(context)
        prompts = context.take(context.budget // n)
        generated, _ = context.rollout(prompts, np.full(prompts.size, n))
        size = max(1, round(context.batch_size / self.oversample))
        trained, dropped = self._batch.add(generated, size)
        return StepResult(
            generated=generated,
            trained=trained,
            extras={
                "dropped_groups": float(dropped),
                "waiting_groups": float(len(self._batch.waiting)),
            },
        )


class SelectiveRollout(Policy):
    """GRESO's pre-rollout filtering (Zheng et al., arXiv 2506.02177), at an equal budget.

    A prompt whose last ``z`` groups all succeeded ("easy") or all failed
    ("hard") is skipped before rollout with probability
    ``1 - max(q**z, 0.01)``, ``q`` being the exploration probability of its
    kind. Both start at 0.5; after the first epoch, each step moves each by
    0.01 (within [0.05, 0.95]): down when the step's share of groups of that
    kind was at or above its target, up otherwise. The targets split a
    zero-variance share of 0.25 as 1/3 easy and 2/3 hard. These are the
    defaults of the published code and scripts. Prompts that are not skipped
    get ``n`` rollouts until the step has spent ``B``; skipped prompts cost
    nothing. Training uses DAPO's refill with the published ratio of
    sampling to training batch, 384 / 256 = 1.5.

    Parameters
    ----------
    oversample : float, default 1.5
        Prompts generated per prompt trained.
    exploration : float, default 0.5
        Initial exploration probability of both kinds.
    target_zero_variance : float, default 0.25
        Targeted share of zero-variance groups.
    """

    name = "greso"
    STEP = 0.01
    BOUNDS = (0.05, 0.95)
    MIN_KEEP = 0.01
    _EASY, _HARD = 1, 2

    def __init__(
        self,
        oversample: float = 1.5,
        exploration: float = 0.5,
        target_zero_variance: float = 0.25,
    ) -> None:
        self.oversample = _over_sampling("oversample", oversample)
        start = real_scalar("exploration", exploration)
        target = real_scalar("target_zero_variance", target_zero_variance)
        if not 0.0 < start <= 1.0 or not 0.0 <= target <= 1.0:
            raise InvalidArgumentError(
                f"exploration == {exploration!r} must be in (0, 1] and target_zero_variance == "
                f"{target_zero_variance!r} in [0, 1]."
            )
        self.explore = {self._EASY: start, self._HARD: start}
        self.targets = {self._EASY: target / 3.0, self._HARD: target * 2.0 / 3.0}
        self._kind: NDArray[np.int8] = np.zeros(0, dtype=np.int8)
        self._streak: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._batch = _TrainBatch()

    def step(self, context: StepContext) -> StepResult:
        """See :meth:`Policy.step`."""
        if self._kind.size != context.population_size:
            self._kind = np.zeros(context.population_size, dtype=np.int8)
            self._streak = np.zeros(context.population_size, dtype=np.int64)
        n = group_size(context)
        wanted = context.budget // n
        kept, skipped = [], 0
        while wanted > 0:
            candidates = context.take(wanted)
            keep = context.rng.random(candidates.size) < self._keep_probability(candidates)
            kept.append(candidates[keep])
            skipped += int((~keep).sum())
            wanted -= int(keep.sum())
        prompts = np.concatenate(kept)
        generated, _ = context.rollout(prompts, np.full(prompts.size, n))
        all_right = generated.successes == generated.sizes
        all_wrong = generated.successes == 0
        self._record(generated.prompts, all_right, all_wrong)
        if context.loader.epoch >= 1:
            for kind, share in ((self._EASY, all_right.mean()), (self._HARD, all_wrong.mean())):
                move = -self.STEP if share >= self.targets[kind] else self.STEP
                self.explore[kind] = min(max(self.explore[kind] + move, self.BOUNDS[0]),
                                         self.BOUNDS[1])  # fmt: skip
        size = max(1, round(context.batch_size / self.oversample))
        trained, dropped = self._batch.add(generated, size)
        return StepResult(
            generated=generated,
            trained=trained,
            extras={
                "skipped_prompts": float(skipped),
                "dropped_groups": float(dropped),
                "explore_easy": self.explore[self._EASY],
                "explore_hard": self.explore[self._HARD],
            },
        )

    def _keep_probability(self, prompts: NDArray[np.int64]) -> NDArray[np.float64]:
        kind, streak = self._kind[prompts], self._streak[prompts]
        keep = np.ones(prompts.size)
        for code, explore in self.explore.items():
            mine = kind == code
            keep[mine] = np.maximum(explore ** streak[mine], self.MIN_KEEP)
        return keep

    def _record(
        self, prompts: NDArray[np.int64], all_right: NDArray[np.bool_], all_wrong: NDArray[np.bool_]
    ) -> None:
        kind = np.where(all_right, self._EASY, np.where(all_wrong, self._HARD, 0)).astype(np.int8)
        same = (kind > 0) & (self._kind[prompts] == kind)
        self._streak[prompts] = np.where(kind > 0, np.where(same, self._streak[prompts] + 1, 1), 0)
        self._kind[prompts] = kind


class Rounds(Policy):
    """Sampling in rounds until a group holds a success and a failure (Reinforce-Ada, AR3PO).

    Prompts are sampled in rounds of ``round_size`` rollouts; a prompt leaves
    once its rollouts hold both a success and a failure, or after
    ``max_rounds`` rounds. ``round_size = 8`` and ``max_rounds = 4`` are
    Reinforce-Ada's published defaults (``round_repeat``, ``max_rounds``).
    The step's budget is spent in waves: a wave takes
    ``left // (round_size * max_rounds)`` prompts from the loader (at least
    one), so every prompt of a wave can run all its rounds; the rollouts its
    prompts do not use fund the next wave, until the budget is spent (a last
    single prompt may get fewer than ``max_rounds`` full rounds). Every
    group is trained on.

    Parameters
    ----------
    round_size : int, default 8
        Rollouts per active prompt and round.
    max_rounds : int, default 4
        Rounds after which a prompt leaves regardless.
    """

    name = "rounds"

    def __init__(self, round_size: int = 8, max_rounds: int = 4) -> None:
        self.round_size = integer_scalar("round_size", round_size, minimum=1)
        self.max_rounds = integer_scalar("max_rounds", max_rounds, minimum=1)

    def step(self, context: StepContext) -> StepResult:
        """See :meth:`Policy.step`."""
        waves = []
        per_prompt = self.round_size * self.max_rounds
        while context.left > 0:
            prompts = context.take(max(1, context.left // per_prompt))
            waves.append(self._wave(context, prompts))
        generated = Groups.concat(waves)
        return StepResult(generated=generated, trained=generated, extras={"waves": len(waves)})

    def _wave(self, context: StepContext, prompts: NDArray[np.int64]) -> Groups:
        sizes = np.zeros(prompts.size, dtype=np.int64)
        successes = np.zeros(prompts.size, dtype=np.int64)
        active = np.ones(prompts.size, dtype=np.bool_)
        for _ in range(self.max_rounds):
            index = np.flatnonzero(active)
            if index.size == 0 or context.left == 0:
                break
            counts = np.full(index.size, self.round_size)
            if index.size == 1:  # the last prompt of a step may get a partial round
                counts[0] = min(self.round_size, context.left)
            groups, _ = context.rollout(prompts[index], counts)
            sizes[index] += counts
            successes[index] += groups.successes
            active[index] = (successes[index] == 0) | (successes[index] == sizes[index])
        return Groups(prompts, sizes, successes)


#: Built-in policies by name, in the order reports list them.
POLICIES: dict[str, Any] = {
    "uniform": Uniform,
    "knapsack-paper": partial(Knapsack, "paper"),
    "knapsack-bayes": partial(Knapsack, "bayes"),
    "knapsack-rounds-paper": partial(KnapsackRounds, "paper"),
    "knapsack-rounds-bayes": partial(KnapsackRounds, "bayes"),
    "dapo": DynamicSampling,
    "greso": SelectiveRollout,
    "rounds": Rounds,
}


def make_policy(name: str) -> Policy:
    """Return a fresh built-in policy by name (see :data:`POLICIES`)."""
    if name not in POLICIES:
        listed = ", ".join(POLICIES)
        raise InvalidArgumentError(f"unknown policy {name!r}; the built-in policies are: {listed}.")
    policy: Policy = POLICIES[name]()
    return policy

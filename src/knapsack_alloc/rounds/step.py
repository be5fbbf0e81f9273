"""One training step sampled in rounds: plan a round, generate it, record it, plan the next.

:class:`StepRounds` is what :meth:`KnapsackAllocator.start_step
<knapsack_alloc.KnapsackAllocator.start_step>` returns. Each round spends its
share of the step's budget so as to maximise the expected value of the whole
step, under beliefs updated with the rewards of the step's earlier rounds; the
allocator's history is updated once, by :meth:`StepRounds.finish`, with every
round's rewards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import integer_array, positive_costs
from knapsack_alloc.allocator.history import WindowCounts
from knapsack_alloc.allocator.metrics import rule_counts
from knapsack_alloc.allocator.presets import PresetPlan, classify, rule_names
from knapsack_alloc.allocator.prompt_index import as_prompt_ids
from knapsack_alloc.allocator.rewards import read_round_rewards
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.rounds.plan import RoundPlan
from knapsack_alloc.rounds.rules import StepEvidence, bayes_round, paper_round
from knapsack_alloc.rounds.schedule import round_shares
from knapsack_alloc.values import NONZERO, NonzeroGradientValue, resolve_value
from knapsack_alloc.values.step_group import StepGroupValue

if TYPE_CHECKING:
    from knapsack_alloc.allocator import KnapsackAllocator


class StepRounds:
    """One step's rollouts, planned and generated in rounds.

    Create it with :meth:`KnapsackAllocator.start_step
    <knapsack_alloc.KnapsackAllocator.start_step>`. Each round:
    :meth:`plan_round` (or iterate over the object), generate the planned
    rollouts, :meth:`record` their rewards; then :meth:`finish` updates the
    allocator once with every round's rewards.

    Parameters
    ----------
    allocator : KnapsackAllocator
        Supplies the history, the preset and its parameters.
    prompt_ids : sequence of int or str
        The step's prompts; each batch position is one GRPO group across all
        rounds (duplicates are separate groups whose beliefs share evidence).
    budget : int or float
        Rollouts (or cost units) the whole step spends, over all rounds.
    rounds, first_share, shares
        The schedule; see :func:`round_shares`.
    costs : array_like, optional
        Cost of one rollout of each prompt; default from ``cost_model``.

    Examples
    --------
    >>> from knapsack_alloc import KnapsackAllocator
    >>> ka = KnapsackAllocator("bayes")
    >>> step = ka.start_step(["a", "b"], budget=16, rounds=2)
    >>> first = step.plan_round()
    >>> first.counts.tolist()
    [4, 4]
    >>> step.record([0, 0, 0, 0, 1, 0, 1, 0])  # "a" failed 4 times, "b" is mixed
    >>> second = step.plan_round()
    >>> second.counts.tolist(), second.sizes.tolist()
    ([8, 0], [12, 4])
    >>> step.record([0, 1, 0, 0, 0, 0, 0, 0])
    >>> step.finish()["prompts_with_gradient"]
    2.0
    """

    def __init__(
        self,
        allocator: KnapsackAllocator,
        prompt_ids: Any,
        budget: Any,
        *,
        rounds: Any = None,
        first_share: Any = None,
        shares: Sequence[Any] | None = None,
        costs: Any = None,
    ) -> None:
        self.shares = round_shares(rounds, first_share, shares)
        base = resolve_value(allocator.value)
        if not isinstance(base, NonzeroGradientValue):
            raise InvalidArgumentError(
                f"rounds need a value model of the P_nz family ('grpo', 'nonzero' or a "
                f"NonzeroGradientValue), got value == {allocator.value!r}: the value of a group "
                "that already holds rollouts is not defined for other models."
            )
        ids, kind = as_prompt_ids(prompt_ids, "prompt_ids")
        window, model, prior = allocator._snapshot(ids, kind, costs, budget)
        self._allocator = allocator
        self._base = base
        self._ids = ids
        self._window = window
        self._prior = prior
        self._costs = model
        self._n_updates = allocator.n_updates_
        self._history = allocator.history_
        # Step budget reached after each round, in whole cost units.
        cumulative = np.cumsum(self.shares)
        self._targets = [
            math.floor(model.budget_units * float(c) + 1e-9) for c in cumulative[:-1]
        ] + [model.budget_units]
        self._prompt_of = np.unique(ids, return_inverse=True)[1].reshape(-1)
        self._held = np.zeros(ids.size, dtype=np.int64)
        self._wins = np.zeros(ids.size, dtype=np.int64)
        self._spent = 0  # cost units
        self._cost = 0.0  # the caller's units
        self._pending: RoundPlan | None = None
        self._index: list[NDArray[np.int64]] = []
        self._rewards: list[NDArray[np.float64]] = []
        self._rollout_costs: list[NDArray[np.float64] | None] = []
        self._finished = False

    @property
    def rounds(self) -> int:
        """Number of rounds in the schedule."""
        return len(self.shares)

    @property
    def rounds_planned(self) -> int:
        """Rounds planned so far."""
        return len(self._index) + (self._pending is not None)

    @property
    def budget(self) -> float:
        """The step's budget, as given."""
        return self._costs.budget

    @property
    def group_sizes(self) -> NDArray[np.int64]:
        """Rewarded rollouts recorded so far in each prompt's group."""
        return self._held.copy()

    @property
    def group_successes(self) -> NDArray[np.int64]:
        """Successes recorded so far in each prompt's group."""
        return self._wins.copy()

    def rollouts(self) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Every reward recorded so far and the batch position (GRPO group) of its prompt.

        Returns
        -------
        index : numpy.ndarray of int64
            Batch position of each rollout, round after round.
        rewards : numpy.ndarray of float64
            The rewards as recorded (``-1`` failures kept as ``-1``).
        """
        if not self._index:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        return np.concatenate(self._index), np.concatenate(self._rewards)

    def __iter__(self) -> Iterator[RoundPlan]:
        """Plan the remaining rounds one after another (record each before the next)."""
        while self.rounds_planned < self.rounds:
            yield self.plan_round()

    def plan_round(self) -> RoundPlan:
        """Plan the next round.

        Returns
        -------
        RoundPlan
            ``counts`` to generate now. ``metrics``: ``round``, ``rounds``,
            ``prompts``, ``rollouts`` and ``cost`` (this round), ``budget``
            (this round's: the step's budget reached after it minus what the
            step has spent), ``unused_budget``, ``step_budget``,
            ``step_cost`` (the step's cost once this round is generated),
            ``rollouts_max`` (this round), ``group_max`` (largest group),
            ``prompts_open`` and ``prompts_mixed`` (before this round),
            ``pred_prompts_with_gradient`` and ``pred_effective_ratio`` (of
            the step once this round is generated, under each prompt's Beta
            belief), ``prompts_unseen`` ... ``prompts_effective``,
            ``prompts_fallback``, ``prior_a``, ``prior_b``, ``solve_time_s``,
            ``plan_time_s``.

        Raises
        ------
        InvalidArgumentError
            If the previous round's rewards were not recorded, the schedule is
            done, the step is finished, or the allocator was updated since the
            step started.
        """
        started = time.perf_counter()
        self._check_open("plan a round")
        if self._pending is not None:
            raise InvalidArgumentError(
                f"round {self._pending.round} was planned but its rewards were not recorded; "
                "call record() with them before planning the next round."
            )
        index = len(self._index)
        if index >= self.rounds:
            raise InvalidArgumentError(
                f"all {self.rounds} rounds of this step were planned; call finish()."
            )
        budget = self._targets[index] - self._spent
        evidence = self._evidence()
        updated = evidence.updated(self._window)
        if index == 0:
            chosen = self._first_round(budget)
        else:
            chosen = self._later_round(budget, evidence, updated)
        sizes, allocation = chosen.counts, chosen.allocation
        counts = sizes - self._held
        metrics = self._metrics(index, budget, counts, sizes, evidence, updated, chosen)
        metrics["solve_time_s"] = allocation.solve_time if allocation is not None else 0.0
        metrics["plan_time_s"] = time.perf_counter() - started
        self._pending = RoundPlan(
            round=index,
            prompt_ids=self._ids.copy(),
            counts=counts,
            sizes=sizes,
            open=~evidence.mixed,
            rules=rule_names(chosen.rule),
            fallback=chosen.fallback,
            estimates=updated.rates,
            metrics=metrics,
            allocation=allocation,
        )
        return self._pending

    def record(self, rewards: Any, *, index: Any = None, costs: Any = None) -> None:
        """Record the rewards of the round just planned.

        Parameters
        ----------
        rewards : array_like
            One reward per rollout of the round (as accepted by
            :meth:`KnapsackAllocator.update`), in the order of
            :meth:`RoundPlan.rollout_index` unless ``index`` is given. NaN
            marks a rollout that got no reward: it was paid for, but is
            neither a success nor a failure and is left out of the update.
        index : array_like of int, optional
            Batch position of each reward's prompt; each position must appear
            exactly ``counts[i]`` times.
        costs : array_like, optional
            Positive cost of each rollout, passed on to ``update`` by
            :meth:`finish` (for ``cost_model='tracked'``).

        Raises
        ------
        InvalidArgumentError, TypeError
            On a bad argument, before anything is recorded.
        """
        self._check_open("record rewards")
        plan = self._pending
        if plan is None:
            raise InvalidArgumentError(
                "no round is waiting for its rewards; call plan_round() first."
            )
        size = int(plan.counts.sum())
        if index is None:
            positions = plan.rollout_index()
        else:
            positions = integer_array("index", index, length=int(np.size(index)), minimum=0)
            found = np.bincount(positions, minlength=plan.counts.size)
            if (
                positions.size != size
                or found.size != plan.counts.size
                or (found != plan.counts).any()
            ):
                raise InvalidArgumentError(
                    f"index must give each batch position i exactly counts[i] times (round "
                    f"{plan.round} planned {size} rollouts over {plan.counts.size} prompts); "
                    f"got {positions.size} entries that do not match the plan."
                )
        raw, success = read_round_rewards(rewards, size, self._allocator.success_threshold)
        per_rollout = None if costs is None else positive_costs("costs", costs, length=size)
        if self._rollout_costs and (per_rollout is None) != (self._rollout_costs[0] is None):
            raise InvalidArgumentError(
                "give costs for every round of the step or for none of them."
            )
        scored = ~np.isnan(raw)
        np.add.at(self._held, positions[scored], 1)
        np.add.at(self._wins, positions[scored], success[scored].astype(np.int64))
        self._spent += int(self._costs.units @ plan.counts)
        self._cost += self._costs.spent(plan.counts)
        self._index.append(positions)
        self._rewards.append(raw)
        self._rollout_costs.append(per_rollout)
        self._pending = None

    def finish(self) -> dict[str, float]:
        """Update the allocator once with every round's rewards and close the step.

        Rounds not planned yet are skipped (their budget stays unspent).

        Returns
        -------
        dict of str to float
            :meth:`KnapsackAllocator.update`'s metrics (groups by prompt id),
            plus ``rounds`` (rounds recorded), ``step_budget`` and
            ``step_cost``.
        """
        self._check_open("finish")
        if self._pending is not None:
            raise InvalidArgumentError(
                f"round {self._pending.round} was planned but its rewards were not recorded; "
                "record them before finish()."
            )
        positions, rewards = self.rollouts()
        scored = ~np.isnan(rewards)
        costs = None
        if self._rollout_costs and self._rollout_costs[0] is not None:
            costs = np.concatenate([c for c in self._rollout_costs if c is not None])[scored]
        metrics = self._allocator.update(self._ids[positions[scored]], rewards[scored], costs)
        self._finished = True
        metrics["rounds"] = float(len(self._index))
        metrics["step_budget"] = self._costs.budget
        metrics["step_cost"] = self._cost
        return metrics

    # --------------------------------------------------------------- helpers
    def _check_open(self, action: str) -> None:
        if self._finished:
            raise InvalidArgumentError(f"cannot {action}: this step is finished.")
        allocator = self._allocator
        if allocator.n_updates_ != self._n_updates or allocator.history_ is not self._history:
            raise InvalidArgumentError(
                f"cannot {action}: the allocator was updated (or loaded) after this step started. "
                "A step's rewards are recorded once, by finish(); do not call update() between "
                "rounds."
            )

    def _evidence(self) -> StepEvidence:
        """Collect the step's rewards so far, per group and per prompt id."""
        size = self._ids.size
        distinct = int(self._prompt_of.max(initial=-1)) + 1
        trials = np.bincount(self._prompt_of, weights=self._held, minlength=distinct)
        successes = np.bincount(self._prompt_of, weights=self._wins, minlength=distinct)
        return StepEvidence(
            held=self._held.copy(),
            wins=self._wins.copy(),
            successes=successes[self._prompt_of].astype(np.int64).reshape(size),
            trials=trials[self._prompt_of].astype(np.int64).reshape(size),
        )

    def _first_round(self, budget: int) -> PresetPlan:
        """Plan the first round with the preset's own rule (``plan`` itself for one round)."""
        if self.rounds == 1:
            return self._preset_plan(budget)
        try:
            return self._preset_plan(budget)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(
                f"the first round gets {budget} of the step's {self._costs.budget_units} cost "
                f"units (share {self.shares[0]:g}) and cannot be planned: {error} With rounds, "
                "raise first_share (or the step's budget)."
            ) from None

    def _preset_plan(self, budget: int) -> PresetPlan:
        return self._allocator._preset_plan(
            self._window, self._costs.with_budget(budget), self._prior,
            self._first_default(budget) if self._allocator.preset == "paper" else None,
        )  # fmt: skip

    def _later_round(
        self, budget: int, evidence: StepEvidence, updated: WindowCounts
    ) -> PresetPlan:
        """Plan a round after the first with the preset's round rule."""
        allocator = self._allocator
        costs, solve = self._costs.with_budget(budget), allocator._solve()
        if allocator.preset == "paper":
            return paper_round(
                updated, evidence, costs, min_rollouts=allocator.min_rollouts,
                max_rollouts=allocator.max_rollouts, min_history=allocator.min_history,
                alpha=allocator.alpha, value=self._base, solve=solve,
            )  # fmt: skip
        allocation = bayes_round(
            updated, evidence, self._prior, costs, min_rollouts=allocator.min_rollouts,
            max_rollouts=allocator.max_rollouts, value=self._base, solve=solve,
        )  # fmt: skip
        rule = classify(updated.successes, updated.trials, updated.total, allocator.min_history)
        return PresetPlan(
            counts=allocation.counts.copy(),
            rule=rule,
            fallback=np.zeros(rule.size, dtype=np.bool_),
            allocation=allocation,
        )

    def _first_default(self, budget: int) -> int:
        """``default_rollouts`` scaled to the first round's share of the budget.

        Prompts without enough history are the paper's exploration; with
        rounds, the first round gives them their share and later rounds give
        more to those whose group is still open (as fallback candidates).
        """
        default: int = self._allocator.default_rollouts
        total = self._costs.budget_units
        if self.rounds == 1 or total == 0:
            return default
        floor = min(default, self._allocator.min_rollouts)
        return max(floor, default * budget // total)

    def _metrics(
        self,
        index: int,
        budget: int,
        counts: NDArray[np.int64],
        sizes: NDArray[np.int64],
        evidence: StepEvidence,
        updated: WindowCounts,
        chosen: PresetPlan,
    ) -> dict[str, float]:
        unit = self._costs.unit  # one cost unit in the caller's scale
        prior = self._prior
        beliefs = updated.beliefs(prior)
        mixed = StepGroupValue(NONZERO, evidence.held, evidence.wins).value(sizes, beliefs)
        total = int(sizes.sum())
        cost = self._costs.spent(counts)
        return {
            "round": float(index),
            "rounds": float(self.rounds),
            "prompts": float(counts.size),
            "rollouts": float(counts.sum()),
            "budget": budget * unit,
            "cost": cost,
            "unused_budget": budget * unit - cost,
            "step_budget": self._costs.budget,
            "step_cost": self._cost + cost,
            "rollouts_max": float(counts.max(initial=0)),
            "group_max": float(sizes.max(initial=0)),
            "prompts_open": float((~evidence.mixed).sum()),
            "prompts_mixed": float(evidence.mixed.sum()),
            "pred_prompts_with_gradient": float(mixed.sum()),
            "pred_effective_ratio": float(sizes @ mixed) / total if total else 0.0,
            **rule_counts(chosen.rule, chosen.fallback),
            "prior_a": prior[0],
            "prior_b": prior[1],
        }

"""The stateful allocator a training loop calls every step: plan, generate, update."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from knapsack_alloc._validation import real_array
from knapsack_alloc.allocator import metrics, parameters, state
from knapsack_alloc.allocator.history import RewardHistory, WindowCounts
from knapsack_alloc.allocator.presets import (
    PresetName,
    PresetPlan,
    bayes_counts,
    paper_counts,
    rule_names,
)
from knapsack_alloc.allocator.prior import fit_beta_prior
from knapsack_alloc.allocator.prompt_index import IdKind, as_prompt_ids
from knapsack_alloc.allocator.rewards import read_rewards, read_rollout_costs
from knapsack_alloc.batching import Partition, balance, expand_counts
from knapsack_alloc.costs import CostModel, resolve_costs
from knapsack_alloc.costs.tracked import tracked_costs
from knapsack_alloc.engine import MAX_TABLE_BYTES_VARIABLE, Solve, solver_options
from knapsack_alloc.exceptions import InvalidArgumentError
from knapsack_alloc.result import AllocationResult
from knapsack_alloc.solvers import SolverName
from knapsack_alloc.values import ValueArgument, resolve_value

if TYPE_CHECKING:
    from knapsack_alloc.rounds import StepRounds

# Sums of cost units x rollouts below this are exact in int64.
_EXACT_INT64 = 2**62


@dataclass(frozen=True, repr=False)
class StepPlan:
    """Rollouts per prompt for one training step, with what a trainer logs.

    Attributes
    ----------
    prompt_ids : numpy.ndarray
        The batch's prompt ids, as given to :meth:`KnapsackAllocator.plan`.
    counts : numpy.ndarray of int64
        Rollouts per prompt, in input order.
    rules : numpy.ndarray of str
        Each prompt's category: ``'unseen'``, ``'warmup'`` (fewer than
        ``min_history`` rewards), ``'zero'``, ``'one'`` or ``'effective'``.
    fallback : numpy.ndarray of bool
        Prompts that received the paper's fallback surplus.
    estimates : numpy.ndarray of float64
        Each prompt's window success rate (NaN if never seen).
    metrics : dict of str to float
        See :meth:`KnapsackAllocator.plan`.
    allocation : AllocationResult or None
        The :func:`~knapsack_alloc.allocate` result behind the plan (the
        effective prompts only for ``"paper"``; None if it had none).
    """

    prompt_ids: NDArray[Any]
    counts: NDArray[np.int64]
    rules: NDArray[np.str_]
    fallback: NDArray[np.bool_]
    estimates: NDArray[np.float64]
    metrics: dict[str, float]
    allocation: AllocationResult | None

    def __post_init__(self) -> None:
        for array in (self.prompt_ids, self.counts, self.rules, self.fallback, self.estimates):
            array.flags.writeable = False

    def __len__(self) -> int:
        return int(self.counts.size)

    def __repr__(self) -> str:
        return (
            f"StepPlan(prompts={len(self)}, rollouts={int(self.counts.sum())}, "
            f"max={int(self.counts.max(initial=0))}, "
            f"pred_effective_ratio={self.metrics['pred_effective_ratio']:.3f})"
        )

    def expand(self, order: Any = None) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Batch index and group id of every rollout; see :func:`expand_counts`.

        Parameters
        ----------
        order : array_like of int, optional
            Order of the groups, e.g. ``plan.balance(k).order``.

        Returns
        -------
        index, group : numpy.ndarray of int64
        """
        return expand_counts(self.counts, order)

    def balance(self, workers: int, *, costs: Any = None, equal_size: bool = False) -> Partition:
        """Split this batch's prompts across ``workers`` with equal rollout (or cost) totals.

        Parameters
        ----------
        workers : int
            Number of data-parallel workers.
        costs : array_like, optional
            Cost of one rollout of each prompt; the load of a prompt is then
            ``counts * costs`` instead of ``counts``.
        equal_size : bool, default False
            Give every worker the same number of prompts.

        Returns
        -------
        Partition
            See :func:`~knapsack_alloc.batching.balance`.
        """
        weights = (
            self.counts
            if costs is None
            else self.counts * real_array("costs", costs, length=len(self))
        )
        return balance(weights, workers, equal_size=equal_size)


class KnapsackAllocator:
    """Decide each prompt's rollouts from its reward history, step after step.

    Parameters
    ----------
    preset : {'paper', 'bayes'}, default 'paper'
        ``'paper'``: the Knapsack RL paper's rules, with the effective
        prompts' share split exactly optimally. ``'bayes'``: per-prompt
        ``Beta(a + s, b + f)`` beliefs and the exact posterior expected value.
    default_rollouts : int, default 8 (``'paper'`` only)
        Rollouts of a prompt with fewer than ``min_history`` rewards.
    min_rollouts, max_rollouts : int, default 2 and 128
        ``'paper'``: the base of every valid prompt and the bounds of the
        effective ones; ``'bayes'``: the bounds of every prompt.
    window : int, default 16 (``'paper'``) and 64 (``'bayes'``)
        Rewards per prompt its estimate uses (the most recent ones).
    min_history : int, default 8
        Rewards after which a prompt's estimate is valid. ``'bayes'``
        uses it only to fit the prior and to count rules in the metrics.
    alpha : float, default 0.9 (``'paper'`` only)
        Target probability of a gradient in the effective prompts'
        estimated need, which decides the fallback surplus.
    value : {'grpo', 'nonzero'}, ValueModel or callable, default 'grpo'
        Value model maximised (see :func:`~knapsack_alloc.allocate`).
    solver : {'auto', 'greedy', 'dp', 'ortools', 'textbook'}, default 'auto'
        Solver of :func:`~knapsack_alloc.allocate`.
    prior : 'empirical' or tuple of float, default 'empirical'
        Beta prior ``(a, b)`` of every prompt's success probability, or
        ``'empirical'`` to fit it to the tracked prompts (see
        :func:`~knapsack_alloc.allocator.prior.fit_beta_prior`). ``'paper'``
        uses it only for the predicted metrics.
    success_threshold : float, default 0.5
        A float reward in ``[0, 1]`` counts as a success when it is at
        least this value.
    cost_model : {'unit', 'tracked'}, default 'unit'
        Cost of one rollout when :meth:`plan` gets no ``costs``: ``'unit'``
        (the budget counts rollouts) or ``'tracked'`` (each prompt's mean of
        the per-rollout ``costs`` given to :meth:`update`, e.g. response
        tokens; needs ``cost_resolution``).
    cost_resolution : float, optional
        Unit real costs are rounded to (see :func:`~knapsack_alloc.allocate`).
    time_limit : float, optional
        Seconds allowed to the ``'ortools'`` solver; other solvers ignore it
        and warn once, here.
    allow_unused_budget : bool, default False
        Allow a budget larger than the bounds let the plan spend.

    Attributes
    ----------
    history_ : RewardHistory
        Reward windows of every prompt seen.
    n_updates_ : int
        Non-empty updates so far.
    n_rollouts_ : int
        Rewards recorded so far.

    Notes
    -----
    Safe to share between threads: :meth:`update`, :meth:`plan`,
    :meth:`state_dict`, :meth:`load_state_dict` and :meth:`save` hold an
    internal lock while they touch the learned state, so concurrent calls end
    in the state some sequential order of them gives. ``plan`` releases it
    before solving, so a slow solve does not hold up updates.

    Examples
    --------
    >>> ka = KnapsackAllocator("paper")
    >>> plan = ka.plan(["a", "b", "c"], budget=24)
    >>> plan.counts.tolist()
    [8, 8, 8]
    >>> metrics = ka.update(["a"] * 8 + ["b"] * 8, [1, 0] * 4 + [0] * 8)
    >>> metrics["effective_ratio"]
    0.5
    """

    preset: PresetName
    default_rollouts: int
    min_rollouts: int
    max_rollouts: int
    window: int
    min_history: int
    alpha: float
    value: ValueArgument
    solver: SolverName
    prior: Literal["empirical"] | tuple[float, float]
    success_threshold: float
    cost_model: Literal["unit", "tracked"]
    cost_resolution: float | None
    time_limit: float | None
    allow_unused_budget: bool

    def __init__(
        self,
        preset: PresetName = "paper",
        *,
        default_rollouts: int | None = None,
        min_rollouts: int = 2,
        max_rollouts: int = 128,
        window: int | None = None,
        min_history: int = 8,
        alpha: float | None = None,
        value: ValueArgument = "grpo",
        solver: SolverName = "auto",
        prior: Literal["empirical"] | tuple[float, float] = "empirical",
        success_threshold: float = 0.5,
        cost_model: Literal["unit", "tracked"] = "unit",
        cost_resolution: float | None = None,
        time_limit: float | None = None,
        allow_unused_budget: bool = False,
    ) -> None:
        given = {name: value for name, value in locals().items() if name in parameters.ALL}
        checked = parameters.check_parameters(preset, given)
        object.__setattr__(self, "preset", preset)
        for name, checked_value in checked.items():
            object.__setattr__(self, name, checked_value)
        # Guards the learned state: update() and plan() may run in different threads.
        self._lock = threading.Lock()
        self.history_ = RewardHistory(checked["window"])
        self.n_updates_ = 0
        self.n_rollouts_ = 0
        # The fitted prior, keyed by the history object and its revision.
        self._prior_cache: tuple[RewardHistory, int, tuple[float, float]] | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "preset" or name in parameters.ALL:
            raise AttributeError(
                f"{name} is fixed when the allocator is created; create a new "
                "KnapsackAllocator with the parameter you want."
            )
        object.__setattr__(self, name, value)

    def __getstate__(self) -> dict[str, Any]:
        copied = dict(self.__dict__)
        del copied["_lock"]  # a lock is not state; the copy gets its own
        copied.pop("_solve_cache", None)
        return copied

    def __setstate__(self, copied: dict[str, Any]) -> None:
        self.__dict__.update(copied)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        defaults = parameters.defaults(self.preset)
        changed = {k: v for k, v in self.get_params().items() if defaults.get(k) != v}
        extra = "".join(f", {k}={v!r}" for k, v in changed.items())
        return f"KnapsackAllocator({self.preset!r}{extra}, tracked={len(self.history_)})"

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """Names of every parameter of some preset, ``preset`` first."""
        return ("preset", *parameters.ALL)

    def get_params(self) -> dict[str, Any]:
        """Return the preset name and every parameter's value.

        Returns
        -------
        dict
            ``KnapsackAllocator(**params)`` builds an allocator with the same
            parameters.
        """
        names = parameters.preset_parameters(self.preset)
        return {"preset": self.preset, **{name: getattr(self, name) for name in names}}

    # ------------------------------------------------------------------ plan
    def plan(
        self, prompt_ids: ArrayLike, budget: float, costs: ArrayLike | None = None
    ) -> StepPlan:
        """Rollouts per prompt for the next step.

        Parameters
        ----------
        prompt_ids : sequence of int or str
            The batch's prompts (duplicates are planned independently).
        budget : int or float
            Rollouts to spend, or cost units when costs are used.
        costs : array_like, optional
            Cost of one rollout of each prompt (e.g. expected tokens); default
            from ``cost_model``.

        Returns
        -------
        StepPlan
            ``counts`` in input order, and ``metrics``: ``prompts``,
            ``rollouts``, ``budget``, ``cost``, ``unused_budget`` (the three
            in the scale of ``budget``, as the allocation's ``budget`` and
            ``total_cost``), ``rollouts_min``, ``rollouts_max``,
            ``rollouts_mean``, ``rollouts_p10`` ... ``rollouts_p90``,
            ``pred_effective_ratio`` (expected share of rollouts in groups
            with a gradient), ``pred_prompts_with_gradient``,
            ``prompts_unseen``, ``prompts_warmup``, ``prompts_zero``,
            ``prompts_one``, ``prompts_effective``, ``prompts_fallback``,
            ``prior_a``, ``prior_b``, ``solve_time_s`` (the solver) and
            ``plan_time_s`` (the whole call).
        """
        started = time.perf_counter()
        ids, kind = as_prompt_ids(prompt_ids, "prompt_ids")
        window, cost_model, prior = self._snapshot(ids, kind, costs, budget)  # solve unlocked
        chosen = self._preset_plan(window, cost_model, prior)
        counts = chosen.counts
        allocation = chosen.allocation
        found = metrics.plan_metrics(
            chosen, window, prior, cost_model.budget, cost_model.spent(counts)
        )
        found["solve_time_s"] = allocation.solve_time if allocation is not None else 0.0
        found["plan_time_s"] = time.perf_counter() - started
        return StepPlan(
            prompt_ids=ids.copy(),
            counts=counts,
            rules=rule_names(chosen.rule),
            fallback=chosen.fallback,
            estimates=window.rates,
            metrics=found,
            allocation=allocation,
        )

    def _preset_plan(
        self,
        window: WindowCounts,
        costs: CostModel,
        prior: tuple[float, float],
        default_rollouts: int | None = None,
    ) -> PresetPlan:
        """Run the preset's rule on one batch (costs and budget already in units).

        Parameters
        ----------
        window : WindowCounts
            Each prompt's reward counts.
        costs : CostModel
            The batch's costs and budget.
        prior : tuple of float
            The Beta prior of the ``'bayes'`` beliefs.
        default_rollouts : int, optional
            ``'paper'``: rollouts of a prompt not valid yet, if not
            ``self.default_rollouts`` (the first round of a step in rounds
            scales it down).

        Returns
        -------
        PresetPlan
        """
        solve = self._solve()
        if self.preset == "paper":
            return paper_counts(
                window, costs, default_rollouts=default_rollouts or self.default_rollouts,
                min_rollouts=self.min_rollouts, max_rollouts=self.max_rollouts,
                min_history=self.min_history, alpha=self.alpha, solve=solve,
            )  # fmt: skip
        return bayes_counts(
            window, prior, costs, min_rollouts=self.min_rollouts,
            max_rollouts=self.max_rollouts, min_history=self.min_history, solve=solve,
        )  # fmt: skip

    def _solve(self) -> Solve:
        """Bind the value model, the solver and its limits into the call the rules make.

        Built once per value of the table-size environment variable, which
        the limits read.
        """
        setting = os.environ.get(MAX_TABLE_BYTES_VARIABLE)
        cached = self.__dict__.get("_solve_cache")
        if cached is None or cached[0] != setting:
            options = solver_options(self.solver, self.time_limit, None, warn_depth=None)
            solve = Solve(resolve_value(self.value), self.solver, options, self.allow_unused_budget)
            cached = (setting, solve)
            self._solve_cache = cached
        return cached[1]

    def _snapshot(
        self, ids: NDArray[Any], kind: IdKind | None, costs: ArrayLike | None, budget: float
    ) -> tuple[WindowCounts, CostModel, tuple[float, float]]:
        """Window counts, costs in units and prior of ``ids``: what a plan reads.

        The history is read under the lock, so that it is consistent with
        some sequence of updates.
        """
        with self._lock:
            self.history_.check_kind(kind, "prompt_ids")
            rows = self.history_.lookup(ids)
            window = self.history_.counts(rows)
            per_rollout = self._per_rollout_costs(rows, costs)
            prior = self._prior()
        model = resolve_costs(per_rollout, budget, ids.size, self.cost_resolution)
        self._check_int64_sums(model.units)
        return window, model, prior

    def _per_rollout_costs(self, rows: NDArray[np.int64], costs: ArrayLike | None) -> Any:
        if costs is not None or self.cost_model == "unit":
            return costs
        mean, known = self.history_.costs(rows)
        return tracked_costs(mean, known, self.history_.mean_cost())

    def _prior(self) -> tuple[float, float]:
        if self.prior != "empirical":
            return self.prior
        history = self.history_
        cached = self._prior_cache
        if cached is None or cached[0] is not history or cached[1] != history.revision:
            prior = fit_beta_prior(history.window_histogram(), min(self.min_history, self.window))
            cached = (history, history.revision, prior)
            self._prior_cache = cached
        return cached[2]

    def _check_int64_sums(self, units: NDArray[np.int64]) -> None:
        """Refuse costs so large that the rules' int64 sums of cost x rollouts could overflow."""
        most = max(getattr(self, "default_rollouts", 0), self.min_rollouts, self.max_rollouts)
        worst = float(units.sum(dtype=np.float64)) * most
        if worst >= _EXACT_INT64:
            raise InvalidArgumentError(
                f"costs of {float(units.max()):.3g} units with up to {most} rollouts per prompt "
                "reach 2**62 cost units; give costs and budget in a coarser unit (or a coarser "
                "cost_resolution)."
            )

    def start_step(
        self,
        prompt_ids: ArrayLike,
        budget: float,
        *,
        rounds: int | None = None,
        first_share: float | None = None,
        shares: Sequence[float] | None = None,
        costs: ArrayLike | None = None,
    ) -> StepRounds:
        """Sample the next step in rounds: spend part of the budget, look, re-plan the rest.

        Parameters
        ----------
        prompt_ids : sequence of int or str
            The step's prompts; each batch position is one group across all rounds.
        budget : int or float
            Rollouts (or cost units) of the whole step, over all rounds.
        rounds : int, optional
            Number of rounds; default 2, or the length of ``shares``.
        first_share : float, optional
            Share of the budget of the first round; the others split the rest
            equally. Default ``1 / rounds``.
        shares : sequence of float, optional
            Every round's share (summing to 1), instead of ``rounds`` and
            ``first_share``.
        costs : array_like, optional
            Cost of one rollout of each prompt; default from ``cost_model``.

        Returns
        -------
        StepRounds
            Plan each round with ``plan_round()``, record its rewards with
            ``record()``, and call ``finish()`` to update the history once.
            With ``rounds=1`` the only round is :meth:`plan`'s plan.

        Examples
        --------
        >>> ka = KnapsackAllocator("bayes")
        >>> step = ka.start_step(["a", "b", "c"], budget=24, rounds=2)
        >>> for round_plan in step:
        ...     index = round_plan.rollout_index()       # prompt of each rollout
        ...     step.record([1, 0] * (index.size // 2))  # your generation and rewards
        >>> step.finish()["rounds"]
        2.0
        """
        from knapsack_alloc.rounds import StepRounds

        return StepRounds(
            self, prompt_ids, budget, rounds=rounds, first_share=first_share, shares=shares,
            costs=costs,
        )  # fmt: skip

    # ---------------------------------------------------------------- update
    def update(
        self, rollout_prompt_ids: ArrayLike, rewards: ArrayLike, costs: ArrayLike | None = None
    ) -> dict[str, float]:
        """Record one step's rewards, one entry per rollout.

        Parameters
        ----------
        rollout_prompt_ids : sequence of int or str
            Prompt of each rollout; rollouts are grouped by prompt id.
        rewards : array_like
            One reward per rollout: 0/1, -1/1 (-1 is a failure), bools, or
            floats in ``[0, 1]`` (a success when ``>= success_threshold``).
        costs : array_like, optional
            Positive cost of each rollout (e.g. its response tokens), tracked
            per prompt for ``cost_model='tracked'``.

        Returns
        -------
        dict of str to float
            ``rollouts``, ``prompts``, ``new_prompts``, ``tracked_prompts``,
            ``success_rate``, ``effective_ratio`` (share of rollouts in groups
            whose rewards are not all equal, i.e. with a GRPO gradient),
            ``prompts_with_gradient``, ``prompts_all_correct``,
            ``prompts_all_wrong``.

        Raises
        ------
        InvalidArgumentError, InvalidArgumentTypeError
            On a bad argument, before any state changes.
        """
        ids, kind = as_prompt_ids(rollout_prompt_ids, "rollout_prompt_ids")
        values, success = read_rewards(rewards, ids.size, self.success_threshold)
        per_rollout = None if costs is None else read_rollout_costs(costs, ids.size)
        with self._lock:
            self.history_.check_kind(kind, "rollout_prompt_ids")
            summary = self.history_.record(ids, kind, success, per_rollout, values)
            if ids.size:
                self.n_updates_ += 1
                self.n_rollouts_ += int(ids.size)
            tracked = len(self.history_)
        return metrics.update_metrics(summary, tracked)

    # ------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Parameters and learned state as plain values and numeric numpy arrays.

        Returns
        -------
        dict
            ``format``, ``version``, ``params`` (JSON-compatible), ``id_kind``,
            ``n_updates``, ``n_rollouts`` and ``arrays`` (int64/int32/int8/
            uint8/float64 numpy arrays only). Pass it to :meth:`load_state_dict`.

        Raises
        ------
        InvalidArgumentError
            If ``value`` is a custom object (it cannot be stored as data).
        """
        with self._lock:
            return state.state_dict(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore parameters and learned state from :meth:`state_dict` output.

        Parameters
        ----------
        state_dict : dict
            As returned by :meth:`state_dict`.

        Raises
        ------
        InvalidArgumentError
            If ``state_dict`` is not a valid allocator state; nothing changes then.
        """
        other = state.from_state(state_dict)
        with self._lock:
            for name in self.parameter_names():
                if hasattr(other, name):
                    object.__setattr__(self, name, getattr(other, name))
                elif name in self.__dict__:
                    del self.__dict__[name]
            self.__dict__.pop("_solve_cache", None)  # built from the old parameters
            self.history_ = other.history_
            self.n_updates_ = other.n_updates_
            self.n_rollouts_ = other.n_rollouts_

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the allocator to ``path`` atomically (see :mod:`.checkpoint`).

        Parameters
        ----------
        path : str or os.PathLike
            Destination file; a crash during ``save`` leaves the old or the
            new file, never a mix.
        """
        state.save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KnapsackAllocator:
        """Read an allocator written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint file.

        Returns
        -------
        KnapsackAllocator

        Raises
        ------
        CheckpointError
            If the file is missing, empty, truncated, corrupted, foreign, or
            from a newer format version.
        """
        return state.load(path)

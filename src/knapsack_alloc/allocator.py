"""The stateful allocator a training loop calls every step."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc._validation import (
    InvalidArgumentError,
    choice,
    integer_scalar,
    real_array,
    real_scalar,
)
from knapsack_alloc.batching import Partition, balance, expand_counts
from knapsack_alloc.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from knapsack_alloc.costs import resolve_costs
from knapsack_alloc.history import (
    UPDATE_CHUNK,
    IdKind,
    RewardHistory,
    UpdateSummary,
    WindowCounts,
    as_prompt_ids,
)
from knapsack_alloc.presets import (
    RULES,
    bayes_counts,
    classify,
    fit_beta_prior,
    paper_counts,
)
from knapsack_alloc.result import AllocationResult
from knapsack_alloc.solvers import SOLVERS
from knapsack_alloc.values import resolve_value

if TYPE_CHECKING:
    from knapsack_alloc.rounds import StepRounds

_COMMON: dict[str, Any] = {
    "min_rollouts": 2,
    "max_rollouts": 128,
    "window": 16,
    "min_history": 8,
    "value": "grpo",
    "solver": "auto",
    "prior": "empirical",
    "success_threshold": 0.5,
    "cost_model": "unit",
    "cost_resolution": None,
    "time_limit": None,
    "allow_unused_budget": False,
}

#: Default parameters of each preset; every one can be overridden by keyword.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"default_rollouts": 8, "alpha": 0.9, **_COMMON},
    # A longer window for the posterior: see docs/allocator.md (the "bayes" preset).
    "bayes": {**_COMMON, "window": 64},
}

_STATE_FORMAT = "knapsack-alloc/KnapsackAllocator"
_STATE_VERSION = 1
_MAX_WINDOW = 1024
# Sums of cost units x rollouts below this are exact in int64.
_EXACT_INT64 = 2**62
_QUANTILES = (10, 25, 50, 75, 90)


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
    **params
        Overrides of the preset's parameters:

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
        solver : str, default 'auto'
            Solver of :func:`~knapsack_alloc.allocate`.
        prior : 'empirical' or tuple of float, default 'empirical'
            Beta prior ``(a, b)`` of every prompt's success probability, or
            ``'empirical'`` to fit it to the tracked prompts (see
            :func:`~knapsack_alloc.presets.fit_beta_prior`). ``'paper'`` uses
            it only for the predicted metrics.
        success_threshold : float, default 0.5
            A float reward in ``[0, 1]`` counts as a success when it is at
            least this value.
        cost_model : {'unit', 'tracked'}, default 'unit'
            Cost of one rollout when :meth:`plan` gets no ``costs``:
            ``'unit'`` (the budget counts rollouts) or ``'tracked'`` (each
            prompt's mean of the per-rollout ``costs`` given to
            :meth:`update`, e.g. response tokens).
        cost_resolution : float, optional
            Unit real costs are rounded to (see :func:`~knapsack_alloc.allocate`).
        time_limit : float, optional
            Seconds allowed to the ``'ortools'`` solver.
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

    _PARAMETERS: ClassVar[frozenset[str]] = frozenset(PRESETS["paper"]) | {"preset"}

    def __init__(self, preset: str = "paper", **params: Any) -> None:
        preset = choice("preset", preset, PRESETS)
        allowed = PRESETS[preset]
        for name in sorted(params):
            if name not in allowed:
                listed = ", ".join(sorted(allowed))
                raise TypeError(
                    f"{name!r} is not a parameter of the {preset!r} preset; its parameters are: "
                    f"{listed}."
                )
        checked = _check_params({**allowed, **params})
        object.__setattr__(self, "preset", preset)
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        # Guards the learned state: update() and plan() may run in different threads.
        self._lock = threading.Lock()
        self.history_ = RewardHistory(checked["window"])
        self.n_updates_ = 0
        self.n_rollouts_ = 0
        # The fitted prior, keyed by the history object and its revision.
        self._prior_cache: tuple[RewardHistory, int, tuple[float, float]] | None = None

    preset: str
    default_rollouts: int
    min_rollouts: int
    max_rollouts: int
    window: int
    min_history: int
    alpha: float
    value: Any
    solver: str
    prior: str | tuple[float, float]
    success_threshold: float
    cost_model: str
    cost_resolution: float | None
    time_limit: float | None
    allow_unused_budget: bool

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._PARAMETERS:
            raise AttributeError(
                f"{name} is fixed when the allocator is created; create a new "
                "KnapsackAllocator with the parameter you want."
            )
        object.__setattr__(self, name, value)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]  # a lock is not state; the copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        changed = {
            k: v
            for k, v in self.get_params().items()
            if k != "preset" and PRESETS[self.preset][k] != v
        }
        extra = "".join(f", {k}={v!r}" for k, v in changed.items())
        return f"KnapsackAllocator({self.preset!r}{extra}, tracked={len(self.history_)})"

    def get_params(self) -> dict[str, Any]:
        """Return the preset name and every parameter's value.

        Returns
        -------
        dict
            ``KnapsackAllocator(**params)`` builds an allocator with the same
            parameters.
        """
        names = PRESETS[self.preset]
        return {"preset": self.preset, **{name: getattr(self, name) for name in names}}

    # ------------------------------------------------------------------ plan
    def plan(self, prompt_ids: Any, budget: Any, costs: Any = None) -> StepPlan:
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
            ``rollouts``, ``budget``, ``cost``, ``unused_budget``,
            ``rollouts_min``, ``rollouts_max``, ``rollouts_mean``,
            ``rollouts_p10`` ... ``rollouts_p90``, ``pred_effective_ratio``
            (expected share of rollouts in groups with a gradient),
            ``pred_prompts_with_gradient``, ``prompts_unseen``,
            ``prompts_warmup``, ``prompts_zero``, ``prompts_one``,
            ``prompts_effective``, ``prompts_fallback``, ``prior_a``,
            ``prior_b``, ``solve_time_s`` (the allocate call) and
            ``plan_time_s`` (the whole call).
        """
        started = time.perf_counter()
        ids, kind = as_prompt_ids(prompt_ids, "prompt_ids")
        size = ids.size
        window, per_rollout, prior = self._snapshot(ids, kind, costs)  # the solve runs unlocked
        model = resolve_costs(per_rollout, budget, size, self.cost_resolution)
        self._check_int64_sums(model.units)
        if size == 0 and model.budget_units > 0:
            raise InvalidArgumentError(
                f"budget == {budget!r} but there are no prompts; pass budget=0 for an empty batch."
            )
        fallback = np.zeros(size, dtype=np.bool_)
        allocation: AllocationResult | None
        if self.preset == "paper":
            paper = paper_counts(
                window.successes,
                window.trials,
                window.total,
                model.units,
                model.budget_units,
                default_rollouts=self.default_rollouts,
                min_rollouts=self.min_rollouts,
                max_rollouts=self.max_rollouts,
                min_history=self.min_history,
                alpha=self.alpha,
                value=self.value,
                solver=self.solver,
                time_limit=self.time_limit,
                allow_unused_budget=self.allow_unused_budget,
            )
            counts, rule, fallback, allocation = (
                paper.counts,
                paper.rule,
                paper.fallback,
                paper.allocation,
            )
        else:
            allocation = bayes_counts(
                window.successes,
                window.trials,
                prior,
                model.units,
                model.budget_units,
                min_rollouts=self.min_rollouts,
                max_rollouts=self.max_rollouts,
                value=self.value,
                solver=self.solver,
                time_limit=self.time_limit,
                allow_unused_budget=self.allow_unused_budget,
            )
            counts = allocation.counts.copy()
            rule = classify(window.successes, window.trials, window.total, self.min_history)
        with np.errstate(invalid="ignore", divide="ignore"):
            estimates = np.where(window.trials > 0, window.successes / window.trials, np.nan)
        spent = float(model.per_rollout @ counts)
        metrics = _plan_metrics(counts, rule, fallback, window, prior, float(budget))
        metrics["cost"] = spent
        metrics["unused_budget"] = float(budget) - spent
        metrics["solve_time_s"] = allocation.solve_time if allocation is not None else 0.0
        metrics["plan_time_s"] = time.perf_counter() - started
        return StepPlan(
            prompt_ids=ids.copy(),
            counts=counts,
            rules=np.asarray(RULES)[rule],
            fallback=fallback,
            estimates=estimates,
            metrics=metrics,
            allocation=allocation,
        )

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
        prompt_ids: Any,
        budget: Any,
        *,
        rounds: Any = None,
        first_share: Any = None,
        shares: Any = None,
        costs: Any = None,
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

    def _snapshot(
        self, ids: NDArray[Any], kind: IdKind | None, costs: Any
    ) -> tuple[WindowCounts, Any, tuple[float, float]]:
        """Window counts, per-rollout costs and prior of ``ids``: what a plan reads.

        Taken under the lock, so that it is consistent with some sequence of updates.
        """
        with self._lock:
            self.history_.check_kind(kind, "prompt_ids")
            rows = self.history_.lookup(ids)
            return self.history_.counts(rows), self._costs(rows, costs), self._prior()

    def _costs(self, rows: NDArray[np.int64], costs: Any) -> Any:
        if costs is not None or self.cost_model == "unit":
            return costs
        mean, known = self.history_.costs(rows)
        if known.all():
            return mean
        fill = float(mean[known].mean()) if known.any() else self.history_.mean_cost()
        if fill is None:
            raise InvalidArgumentError(
                "cost_model == 'tracked' but no prompt has reported costs yet; pass costs= to "
                "plan() for this step (e.g. the maximum response length), and per-rollout "
                "costs= to update()."
            )
        return np.where(known, mean, fill)

    def _prior(self) -> tuple[float, float]:
        if self.prior != "empirical":
            return self.prior  # type: ignore[return-value]
        history = self.history_
        cached = self._prior_cache
        if cached is None or cached[0] is not history or cached[1] != history.revision:
            prior = fit_beta_prior(history.window_histogram(), min(self.min_history, self.window))
            cached = (history, history.revision, prior)
            self._prior_cache = cached
        return cached[2]

    # ---------------------------------------------------------------- update
    def update(self, rollout_prompt_ids: Any, rewards: Any, costs: Any = None) -> dict[str, float]:
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
        InvalidArgumentError, TypeError
            On a bad argument, before any state changes.
        """
        ids, kind = as_prompt_ids(rollout_prompt_ids, "rollout_prompt_ids")
        values, success = self._checked_rewards(rewards, ids.size)
        per_rollout = None
        if costs is not None:
            if np.ndim(costs) == 1 and len(costs) != ids.size:
                raise InvalidArgumentError(
                    f"costs must have one entry per rollout, got {len(costs)} costs for "
                    f"{ids.size} rollouts."
                )
            per_rollout = real_array("costs", costs, length=ids.size)
            bad = per_rollout <= 0
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InvalidArgumentError(
                    f"costs[{i}] == {float(per_rollout[i])!r}, must be > 0 (cost of one rollout)."
                )
        with self._lock:
            self.history_.check_kind(kind, "rollout_prompt_ids")
            summary = self.history_.record(ids, kind, success, per_rollout, values)
            if ids.size:
                self.n_updates_ += 1
                self.n_rollouts_ += int(ids.size)
            tracked = len(self.history_)
        return _update_metrics(summary, tracked)

    def _rewards(self, rewards: Any, size: int) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Check the rewards; return a float64 copy of them and each rollout's success."""
        values, success = self._checked_rewards(rewards, size)
        return values.astype(np.float64), success.copy()

    def _checked_rewards(
        self, rewards: Any, size: int
    ) -> tuple[NDArray[Any], NDArray[np.bool_]]:
        """Check the rewards; return them as an array (not copied) and each rollout's success.

        Checked a chunk at a time, so a large update makes no float copy of them.
        """
        if isinstance(rewards, (str, bytes)):
            raise TypeError(
                f"rewards must be an array of numbers or bools, not a string: {rewards!r}."
            )
        try:
            array = np.asarray(rewards)
        except ValueError as error:
            raise InvalidArgumentError(
                f"rewards could not be read as a 1-d array: {error}"
            ) from None
        if array.ndim != 1:
            raise InvalidArgumentError(
                f"rewards must be 1-dimensional (one reward per rollout), got shape {array.shape}."
            )
        if array.size != size:
            raise InvalidArgumentError(
                f"rollout_prompt_ids and rewards must have one entry per rollout each, got "
                f"{size} ids and {array.size} rewards."
            )
        if array.dtype == np.bool_:
            return array, array
        if array.dtype.kind not in "iuf":
            raise TypeError(
                f"rewards must be numbers or bools, got an array of dtype {array.dtype}; "
                "map them to 0/1 first."
            )
        success = np.empty(size, dtype=np.bool_)
        for start in range(0, size, UPDATE_CHUNK):
            raw = array[start : start + UPDATE_CHUNK].astype(np.float64)
            bad = ~np.isfinite(raw) | (raw > 1.0) | ((raw < 0.0) & (raw != -1.0))
            if bad.any():
                i = start + int(np.flatnonzero(bad)[0])
                raise InvalidArgumentError(
                    f"rewards[{i}] == {array[i].item()!r} is not a valid reward. Rewards must be "
                    f"0/1, -1/1 (-1 is a failure), bools, or floats in [0, 1] (a success when >= "
                    f"success_threshold == {self.success_threshold!r}); rescale them into "
                    "[0, 1] or map them to 0/1."
                )
            np.greater_equal(raw, self.success_threshold, out=success[start : start + raw.size])
        return array, success

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
        params = self.get_params()
        if not isinstance(params["value"], str):
            raise InvalidArgumentError(
                f"value == {params['value']!r} is a custom value model, which cannot be saved "
                "as data; save an allocator with value='grpo' or 'nonzero'."
            )
        if isinstance(params["prior"], tuple):
            params["prior"] = list(params["prior"])
        with self._lock:
            return {
                "format": _STATE_FORMAT,
                "version": _STATE_VERSION,
                "params": params,
                "id_kind": self.history_.id_kind,
                "n_updates": self.n_updates_,
                "n_rollouts": self.n_rollouts_,
                "arrays": self.history_.to_arrays(),
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore parameters and learned state from :meth:`state_dict` output.

        Parameters
        ----------
        state : dict
            As returned by :meth:`state_dict`.

        Raises
        ------
        InvalidArgumentError
            If ``state`` is not a valid allocator state; nothing changes then.
        """
        other = _from_state(state)
        with self._lock:
            for name in ("preset", *PRESETS["paper"]):
                if hasattr(other, name):
                    object.__setattr__(self, name, getattr(other, name))
                elif name in self.__dict__:
                    del self.__dict__[name]
            self.history_ = other.history_
            self.n_updates_ = other.n_updates_
            self.n_rollouts_ = other.n_rollouts_

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the allocator to ``path`` atomically (see :mod:`knapsack_alloc.checkpoint`).

        Parameters
        ----------
        path : str or os.PathLike
            Destination file; a crash during ``save`` leaves the old or the
            new file, never a mix.
        """
        state = self.state_dict()
        arrays = state.pop("arrays")
        write_checkpoint(path, "KnapsackAllocator", state, arrays)

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
        meta, arrays = read_checkpoint(path, "KnapsackAllocator")
        try:
            return _from_state({**meta, "arrays": arrays})
        except (InvalidArgumentError, TypeError) as error:
            raise CheckpointError(
                f"{os.fspath(path)!r} holds an invalid allocator: {error}"
            ) from None


def _check_params(params: dict[str, Any]) -> dict[str, Any]:
    checked = dict(params)
    for name in ("min_rollouts", "window", "min_history"):
        checked[name] = integer_scalar(
            name, params[name], minimum=0 if name == "min_rollouts" else 1
        )
    if checked["window"] > _MAX_WINDOW:
        raise InvalidArgumentError(f"window == {params['window']!r}, must be <= {_MAX_WINDOW}.")
    checked["max_rollouts"] = integer_scalar(
        "max_rollouts", params["max_rollouts"], minimum=max(checked["min_rollouts"], 1)
    )
    if "default_rollouts" in params:
        checked["default_rollouts"] = integer_scalar(
            "default_rollouts", params["default_rollouts"], minimum=1
        )
    if "alpha" in params:
        checked["alpha"] = _open_unit("alpha", params["alpha"])
    threshold = real_scalar("success_threshold", params["success_threshold"])
    if not 0.0 < threshold <= 1.0:
        raise InvalidArgumentError(
            f"success_threshold == {params['success_threshold']!r}, must be in (0, 1]."
        )
    checked["success_threshold"] = threshold
    resolve_value(params["value"])
    choice("solver", params["solver"], SOLVERS)
    choice("cost_model", params["cost_model"], {"unit", "tracked"})
    checked["prior"] = _check_prior(params["prior"])
    for name in ("cost_resolution", "time_limit"):
        if params[name] is not None:
            number = real_scalar(name, params[name])
            if number <= 0:
                raise InvalidArgumentError(f"{name} == {params[name]!r}, must be > 0 (or None).")
            checked[name] = number
    if not isinstance(params["allow_unused_budget"], (bool, np.bool_)):
        raise TypeError(
            "allow_unused_budget must be a bool, got "
            f"{type(params['allow_unused_budget']).__name__}."
        )
    checked["allow_unused_budget"] = bool(params["allow_unused_budget"])
    return checked


def _open_unit(name: str, value: Any) -> float:
    number = real_scalar(name, value)
    if not 0.0 < number < 1.0:
        raise InvalidArgumentError(f"{name} == {value!r}, must be in (0, 1).")
    return number


def _check_prior(prior: Any) -> str | tuple[float, float]:
    if prior == "empirical":
        return "empirical"
    if isinstance(prior, str) or not isinstance(prior, (tuple, list)) or len(prior) != 2:
        raise InvalidArgumentError(
            f"prior must be 'empirical' or a pair (a, b) of positive numbers, got {prior!r}."
        )
    a, b = real_scalar("prior[0]", prior[0]), real_scalar("prior[1]", prior[1])
    if a <= 0 or b <= 0:
        raise InvalidArgumentError(f"prior == {tuple(prior)!r}, both entries must be > 0.")
    return (a, b)


def _plan_metrics(
    counts: NDArray[np.int64],
    rule: NDArray[np.int8],
    fallback: NDArray[np.bool_],
    window: WindowCounts,
    prior: tuple[float, float],
    budget: float,
) -> dict[str, float]:
    total = int(counts.sum())
    nonzero = _expected_nonzero(
        counts, window.successes + prior[0], window.trials - window.successes + prior[1]
    )
    by_rule = np.bincount(rule, minlength=len(RULES))
    metrics = {
        "prompts": float(counts.size),
        "rollouts": float(total),
        "budget": budget,
        "rollouts_mean": total / counts.size if counts.size else 0.0,
        **_quantiles(counts),
        "pred_effective_ratio": float(counts @ nonzero) / total if total else 0.0,
        "pred_prompts_with_gradient": float(nonzero.sum()),
        **{f"prompts_{name}": float(by_rule[code]) for code, name in enumerate(RULES)},
        "prompts_fallback": float(fallback.sum()),
        "prior_a": prior[0],
        "prior_b": prior[1],
    }
    return metrics


def _expected_nonzero(
    counts: NDArray[np.int64], a: NDArray[np.floating[Any]], b: NDArray[np.floating[Any]]
) -> NDArray[np.float64]:
    """Probability ``1 - E[p**N] - E[(1 - p)**N]`` of a gradient under ``p ~ Beta(a, b)``."""
    from scipy.special import gammaln

    n = counts.astype(np.float64)
    # One call over all six argument vectors: the per-call cost dominates at batch sizes.
    logs = gammaln(np.concatenate([a + n, a, b + n, b, a + b, a + b + n])).reshape(6, -1)
    shared = logs[4] - logs[5]
    all_succeed = np.exp(logs[0] - logs[1] + shared)
    all_fail = np.exp(logs[2] - logs[3] + shared)
    return np.where(counts > 0, 1.0 - all_succeed - all_fail, 0.0)


def _quantiles(counts: NDArray[np.int64]) -> dict[str, float]:
    """Min, max and the ``_QUANTILES`` percentiles (linear interpolation, as numpy's default)."""
    if not counts.size:
        return {"rollouts_min": 0.0, "rollouts_max": 0.0} | {
            f"rollouts_p{q}": 0.0 for q in _QUANTILES
        }
    ordered = np.sort(counts).astype(np.float64)
    position = np.asarray(_QUANTILES) / 100.0 * (ordered.size - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, ordered.size - 1)
    values = ordered[below] + (position - below) * (ordered[above] - ordered[below])
    result = {"rollouts_min": float(ordered[0]), "rollouts_max": float(ordered[-1])}
    result.update(zip([f"rollouts_p{q}" for q in _QUANTILES], values.tolist(), strict=True))
    return result


def _update_metrics(summary: UpdateSummary, tracked: int) -> dict[str, float]:
    size = summary.rollouts
    return {
        "rollouts": float(size),
        "prompts": float(summary.prompts),
        "new_prompts": float(summary.new_prompts),
        "tracked_prompts": float(tracked),
        "success_rate": summary.successes / size if size else 0.0,
        "effective_ratio": summary.rollouts_with_gradient / size if size else 0.0,
        "prompts_with_gradient": float(summary.prompts_with_gradient),
        "prompts_all_correct": float(summary.prompts_all_correct),
        "prompts_all_wrong": float(summary.prompts_all_wrong),
    }


def _from_state(state: Any) -> KnapsackAllocator:
    if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
        raise InvalidArgumentError(
            "state is not a KnapsackAllocator state dict (its 'format' is missing or wrong)."
        )
    version = state.get("version")
    if not isinstance(version, int) or version > _STATE_VERSION:
        raise InvalidArgumentError(
            f"state has version {version!r}; this version reads versions up to {_STATE_VERSION}."
        )
    params = state.get("params")
    arrays = state.get("arrays")
    id_kind: IdKind | None = state.get("id_kind")
    n_updates, n_rollouts = state.get("n_updates"), state.get("n_rollouts")
    if not isinstance(params, dict) or not isinstance(arrays, dict) or "preset" not in params:
        raise InvalidArgumentError("state lacks its 'params' or 'arrays'.")
    if not all(isinstance(c, int) and c >= 0 for c in (n_updates, n_rollouts)):
        raise InvalidArgumentError("state's 'n_updates' and 'n_rollouts' must be ints >= 0.")
    params = dict(params)
    if isinstance(params.get("prior"), list):
        params["prior"] = tuple(params["prior"])
    allocator = KnapsackAllocator(**params)
    allocator.history_ = RewardHistory.from_arrays(allocator.window, id_kind, arrays)
    allocator.n_updates_, allocator.n_rollouts_ = int(n_updates), int(n_rollouts)  # type: ignore[arg-type]
    return allocator

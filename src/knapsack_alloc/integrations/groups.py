"""Options that keep large groups stable, shared by the framework adapters.

With allocation one prompt can get 90+ rollouts. A lone success among ``N``
rollouts then gets the normalised advantage ``(1 - 1/N) * sqrt(N)`` (about
9.5 for ``N = 93``), and a token- or sequence-mean loss gives a group a weight
proportional to its size. Two options, applied in this order after the
framework's own group baseline:

* ``advantage_clip``: clip every advantage to ``[-c, c]`` (the Knapsack RL
  reference run uses ``c = 5``);
* ``group_weighting``: scale the advantages of a group of ``N_g`` rollouts by
  ``w_g`` proportional to ``N_g ** -gamma``, normalised so that the weights
  of all rollouts of the batch sum to the number of rollouts. Scaling a
  rollout's advantage by a positive ``w`` multiplies its policy-gradient
  (and PPO-clip) loss term by ``w``, so this is per-prompt loss weighting.

See ``docs/integrations/`` for what each framework offers on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from knapsack_alloc._validation import choice, real_scalar
from knapsack_alloc.exceptions import InvalidArgumentError

__all__ = ["GROUP_WEIGHTINGS", "GroupStability"]

#: Exponent ``gamma`` of each ``group_weighting``: a group's weight is proportional to
#: ``size ** -gamma``. ``"equal"`` gives every prompt of the batch the same total weight.
GROUP_WEIGHTINGS = {"none": 0.0, "sqrt": 0.5, "equal": 1.0}


@dataclass(frozen=True)
class GroupStability:
    """Advantage clipping and per-prompt weighting for groups of unequal size.

    Parameters
    ----------
    advantage_clip : float or None, default None
        Clip advantages to ``[-advantage_clip, advantage_clip]``; None leaves
        them unclipped.
    group_weighting : {"none", "sqrt", "equal"}, default "none"
        Weight of a group of ``N_g`` rollouts: ``"none"`` keeps the
        framework's weighting (proportional to ``N_g``), ``"equal"`` scales
        every rollout by ``mean(N) / N_g`` so each prompt weighs the same,
        ``"sqrt"`` sits between the two (proportional to ``sqrt(N_g)``).

    Examples
    --------
    The methods take torch tensors (the adapters' environments have torch)::

        options = GroupStability(advantage_clip=5.0, group_weighting="equal")
        advantages, metrics = options.apply(advantages, group_ids)
        # a lone success among 93 (advantage 9.5) now gets 5 x mean(N) / 93
    """

    advantage_clip: float | None = None
    group_weighting: str = "none"

    def __post_init__(self) -> None:
        if self.advantage_clip is not None:
            clip = real_scalar("advantage_clip", self.advantage_clip)
            if not clip > 0:
                raise InvalidArgumentError(
                    f"advantage_clip == {self.advantage_clip!r}, must be > 0 (or None for no "
                    "clipping); the Knapsack RL reference run uses 5."
                )
            object.__setattr__(self, "advantage_clip", clip)
        choice("group_weighting", self.group_weighting, GROUP_WEIGHTINGS)

    @property
    def active(self) -> bool:
        """Whether :meth:`apply` changes anything."""
        return self.advantage_clip is not None or self.group_weighting != "none"

    def apply(self, advantages: Any, group_ids: Any) -> tuple[Any, dict[str, float]]:
        """Clip, then weight, the advantages of one batch.

        Parameters
        ----------
        advantages : torch.Tensor
            Shape ``(n_rollouts,)`` or ``(n_rollouts, n_tokens)``.
        group_ids : torch.Tensor
            Integer group (prompt) of each rollout, shape ``(n_rollouts,)``,
            values in ``0 .. n_groups - 1``.

        Returns
        -------
        advantages : torch.Tensor
            A new tensor of the same shape and dtype.
        metrics : dict of str to float
            Those of :meth:`clip`, plus ``group_weight_min`` and
            ``group_weight_max``.
        """
        rows = advantages.shape[0] if advantages.dim() else 0
        if group_ids.numel() != rows:
            raise InvalidArgumentError(
                f"group_ids has {group_ids.numel()} entries, advantages has {rows} rollouts; "
                "give one group id per rollout."
            )
        out, metrics = self.clip(advantages)
        weights = self.weights(group_ids).to(device=out.device)
        metrics["group_weight_min"] = float(weights.min()) if weights.numel() else 1.0
        metrics["group_weight_max"] = float(weights.max()) if weights.numel() else 1.0
        if self.group_weighting != "none":
            shape = (-1,) + (1,) * (out.dim() - 1)
            out = out * weights.to(out.dtype).reshape(shape)
        return out, metrics

    def clip(self, advantages: Any) -> tuple[Any, dict[str, float]]:
        """Clip advantages to ``[-advantage_clip, advantage_clip]`` (a copy when unclipped).

        Parameters
        ----------
        advantages : torch.Tensor
            Shape ``(n_rollouts,)`` or ``(n_rollouts, n_tokens)``.

        Returns
        -------
        advantages : torch.Tensor
            A new tensor of the same shape and dtype.
        metrics : dict of str to float
            ``advantage_abs_max`` (before clipping) and ``advantages_clipped``
            (share of rollouts with an advantage beyond the clip).
        """
        rows = advantages.reshape(advantages.shape[0], -1) if advantages.dim() else advantages
        magnitude = rows.abs().amax(dim=1) if rows.numel() else rows.new_zeros(0)
        metrics = {
            "advantage_abs_max": float(magnitude.max()) if magnitude.numel() else 0.0,
            "advantages_clipped": 0.0,
        }
        if self.advantage_clip is None:
            return advantages.clone(), metrics
        if magnitude.numel():
            metrics["advantages_clipped"] = float((magnitude > self.advantage_clip).float().mean())
        return advantages.clamp(min=-self.advantage_clip, max=self.advantage_clip), metrics

    def weights(self, group_ids: Any) -> Any:
        """Per-rollout weight of :attr:`group_weighting` (all ones for ``"none"``).

        Parameters
        ----------
        group_ids : torch.Tensor
            Integer group of each rollout, shape ``(n_rollouts,)``.

        Returns
        -------
        torch.Tensor
            float64, shape ``(n_rollouts,)``; the weights sum to ``n_rollouts``.
        """
        import torch

        groups = group_ids.to(dtype=torch.long).reshape(-1)
        if groups.numel() == 0:
            return torch.zeros(0, dtype=torch.float64, device=groups.device)
        size = torch.bincount(groups).to(torch.float64)[groups]
        scale = size ** -GROUP_WEIGHTINGS[self.group_weighting]
        return scale * (groups.numel() / scale.sum())

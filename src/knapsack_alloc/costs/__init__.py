"""Cost models: what one rollout of each prompt costs, in whole units.

* :mod:`~.model`: unit, integer and rounded costs, and the budget in the same units;
* :mod:`~.tracked`: costs learned from the costs given to ``update``.
"""

from __future__ import annotations

from knapsack_alloc.costs.model import SPEND_TOLERANCE, CostModel, resolve_costs

__all__ = ["SPEND_TOLERANCE", "CostModel", "resolve_costs"]

"""The engine of ``knapsack-alloc diagnose``.

How much of a run's rollout budget fell in groups without a gradient, and
what knapsack allocation would have done.

Example (``rollout_data`` being a verl ``trainer.rollout_data_dir``)::

    from knapsack_alloc.diagnose import diagnose

    result = diagnose(["rollout_data"])
    result.effective_gradient_ratio  # observed
    result.projections["paper"].effective_gradient_ratio  # replayed, under the model

The pipeline, one module each: :mod:`~.sources` finds the files and their
format, :mod:`~.readers` (with :mod:`~.jsonlines` and :mod:`~.tables`) turns
them into batches of rollouts, :mod:`~.groups` folds them into per-group
sums, :mod:`~.figures` computes the per-step and per-prompt figures,
:mod:`~.replay` the counterfactual, :mod:`~.report` and :mod:`~.plot` the
outputs.
"""

from __future__ import annotations

from knapsack_alloc.diagnose.diagnosis import Diagnosis, diagnose
from knapsack_alloc.exceptions import InputFileError

__all__ = ["Diagnosis", "InputFileError", "diagnose"]

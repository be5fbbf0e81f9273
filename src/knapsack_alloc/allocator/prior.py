"""The empirical-Bayes prior of the ``"bayes"`` preset, fitted to the tracked prompts."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: Prior used when too few prompts are tracked to fit one.
FALLBACK_PRIOR = (1.0, 1.0)
#: Prompts with enough rewards needed before the prior is fitted.
MIN_PRIOR_PROMPTS = 32
#: Range the fitted prior mean ``a / (a + b)`` is clipped to.
PRIOR_MEAN_RANGE = (0.01, 0.99)
#: Smallest fitted prior concentration ``a + b``; the largest is the window size.
MIN_PRIOR_CONCENTRATION = 1.0


def fit_beta_prior(histogram: NDArray[np.int64], min_trials: int) -> tuple[float, float]:
    """Fit a Beta prior to tracked prompts' window means by the method of moments.

    Parameters
    ----------
    histogram : numpy.ndarray of int64, shape (W + 1, W + 1)
        ``histogram[n, s]``: prompts whose window holds ``n`` rewards with
        ``s`` successes (see :meth:`RewardHistory.window_histogram`).
    min_trials : int
        Only prompts with at least this many rewards in their window count.

    Returns
    -------
    tuple of float
        ``(a, b)``; :data:`FALLBACK_PRIOR` when fewer than
        :data:`MIN_PRIOR_PROMPTS` prompts count.

    Notes
    -----
    With ``p_hat = s / n`` per prompt, ``m`` the mean of ``p_hat``, ``h`` the
    mean of ``1 / n`` and ``m2`` the mean of ``p_hat**2``, binomial noise
    gives ``E[p**2] = (m2 - m h) / (1 - h)``, so the spread of the true
    success rates is ``v = E[p**2] - m**2`` with the sampling noise removed.
    Matching a Beta's mean and variance gives the concentration
    ``a + b = m (1 - m) / v - 1``. The mean is clipped to
    :data:`PRIOR_MEAN_RANGE` and the concentration to
    ``[MIN_PRIOR_CONCENTRATION, W]``, so a full window always weighs at
    least as much as the prior.
    """
    window = histogram.shape[0] - 1
    grid = np.indices(histogram.shape, dtype=np.int64)
    n, s = grid[0], grid[1]
    use = (n >= max(min_trials, 1)) & (s <= n) & (histogram > 0)
    weight = histogram[use].astype(np.float64)
    prompts = weight.sum()
    if prompts < MIN_PRIOR_PROMPTS:
        return FALLBACK_PRIOR
    trials = n[use].astype(np.float64)
    p_hat = s[use] / trials
    m = float(weight @ p_hat / prompts)
    m2 = float(weight @ p_hat**2 / prompts)
    h = float(weight @ (1.0 / trials) / prompts)
    mean = min(max(m, PRIOR_MEAN_RANGE[0]), PRIOR_MEAN_RANGE[1])
    spread = (m2 - m * h) / (1.0 - h) - m * m if h < 1.0 else 0.0
    concentration = mean * (1.0 - mean) / spread - 1.0 if spread > 0 else float(window)
    concentration = min(max(concentration, MIN_PRIOR_CONCENTRATION), float(window))
    return (mean * concentration, (1.0 - mean) * concentration)

"""The numba kernels behind the solvers (and the textbook DP, in NumPy).

Kernels take contiguous int64/float64 arrays, never validate, and return
arrays; :mod:`knapsack_alloc.solvers` calls them on a checked
:class:`~knapsack_alloc.solvers.problem.Problem`.

* :mod:`~.greedy`: the greedy by gain per cost (exact for unit costs);
* :mod:`~.dp`: the exact DP over the budget, and the Lagrangian windows;
* :mod:`~.dual`: the Lagrangian dual bound behind every certificate;
* :mod:`~.ties`: the one tie rule, applied to any exact answer;
* :mod:`~.gains`: the gain arithmetic every kernel shares;
* :mod:`~.fused`: the most common instance in one compiled call;
* :mod:`~.textbook`: the O(n * B * U) baseline.
"""

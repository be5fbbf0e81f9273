"""The solvers a test can run here: OR-Tools is an optional dependency."""

from __future__ import annotations

from importlib.util import find_spec

import pytest

HAVE_ORTOOLS = find_spec("ortools") is not None
needs_ortools = pytest.mark.skipif(
    not HAVE_ORTOOLS, reason="needs OR-Tools: pip install 'knapsack-alloc[ortools]'"
)
#: ``"ortools"`` as a pytest parameter, skipped where OR-Tools is not installed.
ORTOOLS = pytest.param("ortools", marks=needs_ortools)
#: Every exact solver, as pytest parameters.
EXACT_SOLVERS = ["auto", "dp", "textbook", ORTOOLS]
#: The exact solvers that run here, for a test that compares them in one go.
EXACT_HERE = ["auto", "dp", "textbook", *(["ortools"] if HAVE_ORTOOLS else [])]

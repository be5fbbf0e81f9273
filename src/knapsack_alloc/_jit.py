"""One place for the numba settings of every kernel.

Kernels are compiled on first use and cached on disk (``cache=True``), so a
fresh process pays only a cache load. ``NUMBA_DISABLE_JIT=1`` runs them as
plain Python (for coverage and debugging).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


def kernel(function: F) -> F:
    """Compile ``function`` with the project's numba options."""
    compiled: F = njit(cache=True, nogil=True)(function)  # type: ignore[assignment]
    return compiled

"""One place for the numba settings of every kernel.

Kernels are compiled on first use and cached on disk (``cache=True``), so a
fresh process pays only a cache load. Numba writes the cache next to the
sources, else under ``NUMBA_CACHE_DIR`` or the user's cache directory; when
none of them is writable (a read-only install with a read-only home) the
kernels are compiled in memory instead, after one :class:`KernelCacheWarning`.
``NUMBA_DISABLE_JIT=1`` runs them as plain Python (for coverage and
debugging). See ``docs/deployment.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


class KernelCacheWarning(RuntimeWarning):
    """Compiled kernels cannot be cached on disk, so each process compiles them again."""


_NO_CACHE = (
    "knapsack_alloc cannot cache its compiled kernels on disk: numba found no writable "
    "cache directory (NUMBA_CACHE_DIR if set, the package directory, the user cache "
    "directory; {error}). They are compiled in memory instead, which adds several seconds "
    "to the first allocation of every process. Set the environment variable "
    "NUMBA_CACHE_DIR to a writable directory to cache them (see docs/deployment.md)."
)

# False once numba has found no cache directory: later kernels skip the attempt.
_cache_usable = True


def kernel(function: F) -> F:
    """Compile ``function`` with the project's numba options."""
    global _cache_usable
    if _cache_usable:
        try:
            cached: F = njit(cache=True, nogil=True)(function)  # type: ignore[assignment]
            return cached
        except RuntimeError as error:  # numba's "no locator available"
            _cache_usable = False
            warnings.warn(_NO_CACHE.format(error=error), KernelCacheWarning, stacklevel=2)
    compiled: F = njit(nogil=True)(function)  # type: ignore[assignment]
    return compiled

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

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import config, njit

from knapsack_alloc.exceptions import KernelCacheWarning

F = TypeVar("F", bound=Callable[..., Any])


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
    if getattr(config, "DISABLE_JIT", False):  # NUMBA_DISABLE_JIT=1
        return _like_compiled(function)
    if _cache_usable:
        try:
            cached: F = njit(cache=True, nogil=True)(function)  # type: ignore[assignment]
            return cached
        except RuntimeError as error:  # numba's "no locator available"
            _cache_usable = False
            warnings.warn(_NO_CACHE.format(error=error), KernelCacheWarning, stacklevel=2)
    compiled: F = njit(nogil=True)(function)  # type: ignore[assignment]
    return compiled


def _like_compiled(function: F) -> F:
    """Run ``function`` as plain Python, returning the types a compiled kernel returns.

    Compiled kernels box scalars as Python ``float``, ``int`` and ``bool``;
    as plain Python the same code returns numpy scalars, which would change
    results (``np.True_`` for ``True``) and break ``json.dump``.
    """

    @functools.wraps(function)
    def run(*args: Any) -> Any:
        return _boxed(function(*args))

    return cast(F, run)


def _boxed(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_boxed(item) for item in value)
    return value

"""Every exception and warning knapsack-alloc raises on purpose.

All errors derive from :class:`KnapsackAllocError`, so ``except
KnapsackAllocError`` catches what the library reports about its input and
its environment, and nothing else: any other exception is a bug. Each error
also derives from the built-in exception it stands for (``ValueError``,
``TypeError``, ``ImportError``, ``RuntimeError``), so code that catches
those keeps working.
"""

from __future__ import annotations


class KnapsackAllocError(Exception):
    """Base class of every error knapsack-alloc raises on purpose."""


class InvalidArgumentError(KnapsackAllocError, ValueError):
    """An argument has the right type but a value that is not allowed."""


class InvalidArgumentTypeError(KnapsackAllocError, TypeError):
    """An argument has a type that is not allowed."""


class InputFileError(InvalidArgumentError):
    """A problem in an input file: the message names the file, the line or row, and what is wrong.

    Parameters
    ----------
    path : str
        The file (or directory).
    problem : str
        What is wrong, e.g. ``"line 3: not valid JSON (...)"``.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class CheckpointError(KnapsackAllocError, ValueError):
    """A checkpoint file is missing, empty, truncated, corrupted, foreign or too new."""


class MissingDependencyError(KnapsackAllocError, ImportError):
    """An optional dependency needed for the requested feature is not installed."""


class SolverError(KnapsackAllocError, RuntimeError):
    """A solver back end stopped without any allocation to return."""


class KernelCacheWarning(RuntimeWarning):
    """Compiled kernels cannot be cached on disk, so each process compiles them again."""


class IgnoredArgumentWarning(UserWarning):
    """An argument was given that the chosen method does not use."""

"""The error every reader raises for a problem in the user's files."""

from __future__ import annotations

from knapsack_alloc._validation import InvalidArgumentError


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

"""The examples in docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "knapsack_alloc",
        "knapsack_alloc.engine",
        "knapsack_alloc.posterior",
        "knapsack_alloc.certificates",
    ],
)
def test_docstring_examples(module):
    failures, attempted = doctest.testmod(importlib.import_module(module), verbose=False)
    assert attempted > 0
    assert failures == 0

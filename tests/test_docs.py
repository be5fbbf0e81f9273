"""The examples in docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import knapsack_alloc

PACKAGE = Path(knapsack_alloc.__file__).parent


def modules_with_examples() -> list[str]:
    """Every module of the package whose source holds a doctest prompt."""
    names = ["knapsack_alloc"]
    for module in pkgutil.walk_packages([str(PACKAGE)], prefix="knapsack_alloc."):
        names.append(module.name)
    return [
        name for name in names
        if ">>>" in Path(importlib.util.find_spec(name).origin).read_text(encoding="utf-8")
    ]  # fmt: skip


MODULES = modules_with_examples()


def test_the_public_modules_have_examples():
    assert {"knapsack_alloc", "knapsack_alloc.engine",
            "knapsack_alloc.allocator.allocator"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    failures, attempted = doctest.testmod(
        importlib.import_module(module), verbose=False, optionflags=doctest.ELLIPSIS
    )
    assert attempted > 0
    assert failures == 0

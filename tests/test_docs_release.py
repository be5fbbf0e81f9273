"""What the release says about itself agrees with itself.

The version comes from one place (``pyproject.toml``, read back through the
installed metadata); the changelog has a section for it; the classifiers name
exactly the Pythons that CI runs the tests on, and the oldest of them is the
``requires-python`` floor.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import knapsack_alloc

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml with Python 3.11's tomllib")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def changelog_versions() -> list[str]:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    return re.findall(r"^## \[([^\]]+)\](?: - \d{4}-\d{2}-\d{2})?$", text, re.MULTILINE)


def noxfile_constant(name: str) -> object:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"noxfile.py defines no {name}")


def test_one_version_everywhere():
    declared = pyproject()["project"]["version"]
    assert importlib.metadata.version("knapsack-alloc") == declared
    assert knapsack_alloc.__version__ == declared
    shown = subprocess.run([sys.executable, "-m", "knapsack_alloc", "--version"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert shown.strip() == f"knapsack-alloc {declared}"


def test_the_changelog_covers_this_version():
    declared = pyproject()["project"]["version"]
    versions = changelog_versions()
    assert versions, "CHANGELOG.md has no '## [version] - date' sections"
    if re.search(r"\.dev\d+$", declared):
        # Work towards the next release is listed under Unreleased.
        assert versions[0] == "Unreleased"
        released = versions[1]
        assert tuple(map(int, released.split("."))) < tuple(
            map(int, declared.split(".dev")[0].split("."))
        ), f"{declared} does not come after the last release {released}"
    else:
        assert declared in versions, f"CHANGELOG.md has no section for {declared}"


def test_classifiers_name_the_tested_pythons():
    project = pyproject()["project"]
    classified = sorted(
        (c.rsplit(" :: ", 1)[1] for c in project["classifiers"]
         if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)),
        key=version_key,
    )  # fmt: skip
    tested = sorted({noxfile_constant("MAIN_PYTHON"), *noxfile_constant("OTHER_PYTHONS")},
                    key=version_key)  # fmt: skip
    assert classified == tested
    assert project["requires-python"] == f">={tested[0]}"


@pytest.mark.skipif(
    os.environ.get("CI") != "true" or "NOX_CURRENT_SESSION" in os.environ,
    reason="checks the interpreter of CI's own test run",
)
def test_ci_runs_the_main_python():
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == noxfile_constant("MAIN_PYTHON")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(map(int, version.split(".")))

"""Framework integration test sessions, each in its own virtual environment.

The core test command (``pytest``) never needs these frameworks; each session
installs one framework from ``integrations/<name>/requirements.txt`` and runs
``integrations/<name>/tests``.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent


def _run_framework_tests(session: nox.Session, name: str) -> None:
    folder = ROOT / "integrations" / name
    install = folder / "install.sh"
    if install.exists():
        session.run("bash", str(install), session.bin, external=True)
    else:
        session.install("-r", str(folder / "requirements.txt"))
    session.install("-e", f"{ROOT}[test]")
    session.run("pytest", str(folder / "tests"), "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session(name="trl")
def trl(session: nox.Session) -> None:
    """Test the TRL adapter against a real ``GRPOTrainer`` on CPU."""
    _run_framework_tests(session, "trl")


@nox.session(name="verl")
def verl(session: nox.Session) -> None:
    """Test the verl adapter against the real ``DataProto`` and GRPO advantages."""
    _run_framework_tests(session, "verl")


@nox.session(name="openrlhf")
def openrlhf(session: nox.Session) -> None:
    """Test the OpenRLHF adapter against real ``Experience`` objects."""
    _run_framework_tests(session, "openrlhf")


@nox.session(name="learning")
def learning(session: nox.Session) -> None:
    """Train a tiny Llama with GRPO under each allocation policy (see docs/evidence.md).

    ``nox -s learning -- [--quick] [--seeds K] [--steps S] [--json PATH]
    [--plot PATH.png] [--device cuda]``: the harness's toy-size tests first,
    then the experiment with these arguments.
    """
    session.run(
        "bash", str(ROOT / "integrations" / "trl" / "install.sh"), session.bin, external=True
    )
    session.install("-e", f"{ROOT}[plot]", "pytest")
    env = {"HF_HUB_OFFLINE": "1"}
    tests = str(ROOT / "benchmarks" / "learning" / "tests")
    session.run("python", "-m", "pytest", tests, "-q", "-p", "no:cacheprovider", env=env)
    session.run("python", "-m", "benchmarks.learning", *session.posargs, env=env)

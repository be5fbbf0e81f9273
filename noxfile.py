"""Sessions that need their own virtual environment.

* ``trl``, ``verl``, ``openrlhf``: each installs one framework from
  ``integrations/<name>/requirements.txt`` and runs ``integrations/<name>/tests``;
  the core test command (``pytest``) never needs these frameworks.
* ``tests``: the core suite on the other supported Pythons (CI's main
  environment runs it on 3.11).
* ``docs``: build the site with ``--strict``, check every link, render every
  page in headless Chromium and take screenshots.
* ``release``: build the sdist and wheel, ``twine check`` them, install the
  wheel into a fresh environment outside the repository and run the README's
  first command and a smoke test there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
# The Pythons of the classifiers in pyproject.toml: CI's own (python3, which
# runs the README's test command and the sessions below) and the others.
MAIN_PYTHON = "3.11"
OTHER_PYTHONS = ["3.10", "3.12", "3.13"]
# Where the docs session leaves the built site and its screenshots.
SITE = ROOT / "site"
SCREENSHOTS = ROOT / "build" / "site-screenshots"


def _expose_pyenv_interpreters() -> None:
    """Let pyenv's shims answer ``python3.X`` for every installed version.

    nox finds interpreters by name on ``PATH``; pyenv's shims answer only for
    the active version unless ``PYENV_VERSION`` lists the others.
    """
    if "PYENV_VERSION" in os.environ or shutil.which("pyenv") is None:
        return

    def pyenv(*args: str) -> list[str]:
        done = subprocess.run(["pyenv", *args], capture_output=True, text=True, check=False)
        return done.stdout.split()

    versions = [*pyenv("version-name"), *pyenv("versions", "--bare")]
    os.environ["PYENV_VERSION"] = ":".join(dict.fromkeys(versions))


_expose_pyenv_interpreters()


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


@nox.session(python=OTHER_PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the core tests against a regular (not editable) install on another Python."""
    session.install(f"{ROOT}[test,ortools]")
    session.run("pytest", "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=MAIN_PYTHON)
def docs(session: nox.Session) -> None:
    """Build the site with --strict, check its links and render it in headless Chromium."""
    session.install("-e", f"{ROOT}[docs]", "linkchecker>=10.5", "playwright>=1.45")
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # a banner about MkDocs 2, on every build
    session.run("mkdocs", "build", "--strict", "--site-dir", str(SITE))
    session.run(
        "python", str(ROOT / "tools" / "docs" / "check_site.py"), str(SITE),
        "--screenshots", str(SCREENSHOTS), *session.posargs,
    )  # fmt: skip


@nox.session(python=MAIN_PYTHON)
def release(session: nox.Session) -> None:
    """Build and check the distributions, then smoke-test the wheel outside the repository."""
    session.install("build>=1.2", "twine>=5.1")
    with tempfile.TemporaryDirectory(prefix="knapsack-alloc-dist-") as dist:
        session.run("python", "-m", "build", "--outdir", dist, str(ROOT))
        session.run("twine", "check", "--strict", *map(str, sorted(Path(dist).iterdir())))
        session.run("python", str(ROOT / "tools" / "release" / "check_release.py"), dist)

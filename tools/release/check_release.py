"""Check built distributions the way a user meets them.

Usage: ``python tools/release/check_release.py DIST_DIR``

1. The wheel holds the package and its metadata only, with the licence and
   ``py.typed``; the sdist holds the sources, tests and docs, and none of the
   virtual environments, built sites or caches a working tree collects.
2. The wheel is installed, without its extras, into a fresh virtual
   environment in a temporary folder outside the repository.
3. There, the README's first command runs, with the wheel in place of the
   editable install: its ``knapsack-alloc`` command on a copy of the
   example data.
4. A smoke test runs in that environment (``--inside``): the package comes
   from the environment, not the repository; its version is the wheel's; the
   import stays light; ``allocate``, ``KnapsackAllocator`` with a checkpoint
   round trip, and ``knapsack-alloc --version`` work.

Exits with a non-zero status and a message on the first failure.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Paths an sdist must never carry: environments, build output, caches.
STRAY = re.compile(r"/(\.venv[^/]*|\.nox|site|build|dist|__pycache__|\.\w+_cache|\.hypothesis)/")


class ReleaseError(Exception):
    """A distribution does not hold, install or work as a user expects."""


def require(condition: object, message: str) -> None:
    """Raise :class:`ReleaseError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ReleaseError(message)


def check_wheel(wheel: Path) -> None:
    """Require the package and its metadata only, licence and type marker included."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    foreign = [n for n in names if not n.startswith(("knapsack_alloc/", "knapsack_alloc-"))]
    require(not foreign, f"{wheel.name} holds files outside the package: {foreign[:5]}")
    for required in ("knapsack_alloc/py.typed", "knapsack_alloc/__init__.py"):
        require(required in names, f"{wheel.name} lacks {required}")
    require(any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "wheel lacks LICENSE")
    require(not any("__pycache__" in n for n in names), f"{wheel.name} holds __pycache__")


def check_sdist(sdist: Path) -> None:
    """Require what builds, tests and documents the package, and no stray files."""
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    stray = [n for n in names if STRAY.search(n + "/")]
    require(not stray, f"{sdist.name} holds stray files: {stray[:5]}")
    top = names[0].split("/")[0]
    for required in ("pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE",
                     "src/knapsack_alloc/__init__.py", "tests/test_engine.py"):  # fmt: skip
        require(f"{top}/{required}" in names, f"{sdist.name} lacks {required}")


def readme_first_command() -> list[str]:
    """Return the README's first command without its install step, one shell command each."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    if block is None:
        raise ReleaseError("README.md has no bash block")
    line = block.group(1).strip().splitlines()[0]
    steps = [step.strip() for step in line.split("&&")]
    commands = [s for s in steps if not re.match(r"(python -m )?pip install", s)]
    require(commands, f"the README's first command is only an install: {line!r}")
    return commands


def run(command: list[str] | str, cwd: Path) -> str:
    """Run a command, echo it, and fail with its output if it fails."""
    shown = command if isinstance(command, str) else shlex.join(command)
    print(f"$ {shown}", flush=True)
    done = subprocess.run(command, cwd=cwd, shell=isinstance(command, str), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    print(done.stdout, end="", flush=True)
    require(done.returncode == 0, f"{shown!r} exited with {done.returncode}")
    return done.stdout


def outside(dist: Path) -> None:
    """Install the wheel in a fresh environment outside the repository and use it."""
    (wheel,) = dist.glob("knapsack_alloc-*.whl")
    (sdist,) = dist.glob("knapsack_alloc-*.tar.gz")
    check_wheel(wheel)
    check_sdist(sdist)
    version = wheel.name.split("-")[1]
    with tempfile.TemporaryDirectory(prefix="knapsack-alloc-user-") as scratch:
        home = Path(scratch)
        run([sys.executable, "-m", "venv", str(home / "venv")], home)
        bin_dir = home / "venv" / "bin"
        run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], home)
        shutil.copytree(ROOT / "examples" / "data", home / "examples" / "data")
        for command in readme_first_command():
            run(f'PATH="{bin_dir}:$PATH" {command}', home)
        shutil.copy(__file__, home / "check_release.py")
        run([str(bin_dir / "python"), "check_release.py", "--inside", version, str(ROOT)], home)
    print(f"release check: {wheel.name} and {sdist.name} pass")


def inside(version: str, repository: Path) -> None:
    """Smoke test, run by the fresh environment's Python."""
    import importlib.metadata

    probe = "import sys, knapsack_alloc; print(sorted({'numba', 'scipy'} & set(sys.modules)))"
    heavy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True).stdout.strip()  # fmt: skip
    require(heavy == "[]", f"import knapsack_alloc loads {heavy}; they must load lazily")

    import numpy as np

    import knapsack_alloc
    from knapsack_alloc import KnapsackAllocator, allocate

    location = Path(knapsack_alloc.__file__).resolve()
    require(location.is_relative_to(Path(sys.prefix).resolve()), f"imported from {location}")
    require(not location.is_relative_to(repository), f"imported from the repository: {location}")
    installed = (knapsack_alloc.__version__, importlib.metadata.version("knapsack-alloc"))
    require(installed == (version, version), f"versions {installed}, the wheel's is {version}")
    require((location.parent / "py.typed").is_file(), "the installed package lacks py.typed")

    result = allocate([0.0, 0.5, 0.9, 1.0], budget=32, max_rollouts=16)
    expected = ([2, 12, 16, 2], "optimal")
    require((result.counts.tolist(), result.status) == expected, f"allocate gave {result!r}")
    allocator = KnapsackAllocator("bayes")
    ids = np.arange(64)
    plan = allocator.plan(ids, budget=512)
    index, _ = plan.expand()
    allocator.update(ids[index], np.arange(index.size) % 3 == 0)
    allocator.save("allocator.ka")
    restored = KnapsackAllocator.load("allocator.ka")
    same = np.array_equal(restored.plan(ids, 512).counts, allocator.plan(ids, 512).counts)
    require(same, "a saved and loaded allocator plans differently")

    script = Path(sys.executable).with_name("knapsack-alloc")
    shown = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    require(shown.stdout.strip() == f"knapsack-alloc {version}", shown.stdout)
    print(f"smoke test: knapsack-alloc {version} from {location.parent} works")


def main(argv: list[str] | None = None) -> int:
    """Check the distributions in DIST_DIR, or run the smoke test with --inside."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", nargs="?", type=Path, help="folder holding the sdist and wheel")
    parser.add_argument("--inside", nargs=2, metavar=("VERSION", "REPOSITORY"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.inside:
            inside(args.inside[0], Path(args.inside[1]).resolve())
        elif args.dist is not None:
            outside(args.dist)
        else:
            parser.error("give DIST_DIR")
    except ReleaseError as failure:
        print(f"release check failed: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

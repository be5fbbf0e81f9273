"""A read-only install with a read-only home: kernels compile in memory, with one warning.

The real test installs the package (the wheel named by ``KNAPSACK_ALLOC_WHEEL``,
else a copy of the source tree) into a directory, bind-mounts it and an
empty home read-only in a private mount namespace (``unshare``; as root,
file modes alone do not stop writes) and runs ``allocate`` there in a fresh
interpreter. It needs root or unprivileged user namespaces and skips
cleanly elsewhere, except when ``KNAPSACK_ALLOC_WHEEL`` is set (CI), where
it must run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numba
import pytest

from knapsack_alloc import _jit
from knapsack_alloc._jit import KernelCacheWarning

# Compilation and its cache are what these tests check: there is none without the JIT.
pytestmark = pytest.mark.skipif(
    numba.config.DISABLE_JIT, reason="tests numba's kernel cache, off with NUMBA_DISABLE_JIT=1"
)

SOURCE = Path(__file__).resolve().parents[1] / "src" / "knapsack_alloc"
WHEEL = os.environ.get("KNAPSACK_ALLOC_WHEEL")

# Runs inside the namespace: proves the directories are unwritable, then allocates.
PROBE = textwrap.dedent(
    """
    import json, os, sys, warnings
    site, home = sys.argv[1], sys.argv[2]
    writable = []
    for folder in (os.path.join(site, "knapsack_alloc"), home):
        try:
            with open(os.path.join(folder, "probe"), "w"):
                writable.append(folder)
        except OSError:
            pass
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import knapsack_alloc
        from knapsack_alloc import allocate
        unit = allocate([0.1, 0.5, 0.9, 0.5], 24)
        costs = allocate([0.1, 0.5, 0.9], 30, costs=[1, 2, 3], solver="dp")
    print(json.dumps({
        "module": knapsack_alloc.__file__,
        "writable": writable,
        "unit": unit.counts.tolist(),
        "costs": costs.counts.tolist(),
        "statuses": [unit.status, costs.status],
        "warnings": [[type(w.message).__name__, str(w.message)] for w in caught],
    }))
    """
)

NAMESPACE = textwrap.dedent(
    """
    set -e
    for folder in "$SITE" "$EMPTY_HOME"; do
        mount --bind "$folder" "$folder"
        mount -o remount,bind,ro "$folder"
    done
    exec "$PYTHON" -c "$PROBE" "$SITE" "$EMPTY_HOME"
    """
)


def _unshare_prefix() -> list[str] | None:
    """A command prefix that gives a private mount namespace here, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    options = [["-m"]] if os.geteuid() == 0 else [["-r", "-m"]]
    for option in options:
        prefix = [unshare, *option, "--propagation", "private"]
        probe = subprocess.run([*prefix, "sh", "-c", "mount --bind / /mnt"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


def _stage(site: Path) -> None:
    """Install the package into ``site``: the wheel if given, else a copy of the sources."""
    if WHEEL:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
             "--target", str(site), WHEEL],
            check=True,
        )  # fmt: skip
    else:
        shutil.copytree(SOURCE, site / "knapsack_alloc",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip


def _run_read_only(tmp_path: Path, prefix: list[str], cache_dir: Path | None) -> dict:
    site, home = tmp_path / "site", tmp_path / "home"
    home.mkdir(exist_ok=True)
    if not site.exists():
        _stage(site)
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "NUMBA_CACHE_DIR")}
    env.update(HOME=str(home), PYTHONPATH=str(site), SITE=str(site), EMPTY_HOME=str(home),
               PYTHON=sys.executable, PROBE=PROBE)  # fmt: skip
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    done = subprocess.run([*prefix, "sh", "-c", NAMESPACE], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["module"].startswith(str(site))  # the staged copy, not the source tree
    assert report["writable"] == []  # the install and the home really are read-only
    return report


@pytest.fixture(scope="module")
def unshare_prefix():
    prefix = _unshare_prefix()
    if prefix is None:
        message = (
            "needs a private mount namespace (run as root, or enable unprivileged user "
            "namespaces) to make the install truly read-only"
        )
        if WHEEL:
            pytest.fail(f"KNAPSACK_ALLOC_WHEEL is set but this test {message}")
        pytest.skip(message)
    return prefix


@pytest.mark.slow
def test_read_only_install_compiles_in_memory_with_one_warning(tmp_path, unshare_prefix):
    from knapsack_alloc import allocate

    report = _run_read_only(tmp_path, unshare_prefix, cache_dir=None)
    assert report["unit"] == allocate([0.1, 0.5, 0.9, 0.5], 24).counts.tolist()
    expected = allocate([0.1, 0.5, 0.9], 30, costs=[1, 2, 3], solver="dp")
    assert report["costs"] == expected.counts.tolist()
    assert report["statuses"] == ["optimal", "optimal"]
    assert len(report["warnings"]) == 1
    category, message = report["warnings"][0]
    assert category == "KernelCacheWarning"
    assert "NUMBA_CACHE_DIR" in message and "no writable cache directory" in message


@pytest.mark.slow
def test_numba_cache_dir_makes_a_read_only_install_cache_again(tmp_path, unshare_prefix):
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    report = _run_read_only(tmp_path, unshare_prefix, cache_dir=cache)
    assert report["warnings"] == []
    assert report["statuses"] == ["optimal", "optimal"]
    assert any(cache.rglob("*.nbi"))  # the compiled kernels were written there


def test_fallback_warns_once_and_the_kernels_still_run(monkeypatch):
    """The fallback itself, in process: numba refuses every cache, kernels still compile."""
    from numba import njit

    def refusing_njit(**options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x.py'")
        return njit(**options)

    monkeypatch.setattr(_jit, "njit", refusing_njit)
    monkeypatch.setattr(_jit, "_cache_usable", True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        double = _jit.kernel(lambda x: 2 * x)
        triple = _jit.kernel(lambda x: 3 * x)
    assert (double(4), triple(4)) == (8, 12)
    assert [type(w.message) for w in caught] == [KernelCacheWarning]
    assert "no locator available" in str(caught[0].message)

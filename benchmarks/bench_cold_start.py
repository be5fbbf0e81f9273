"""What a fresh process pays before its first answer, with an empty and a warm kernel cache.

Run: ``pytest benchmarks/bench_cold_start.py --benchmark-group-by=param:call``.
Each round starts a new interpreter that imports knapsack_alloc and makes
one call, with ``NUMBA_CACHE_DIR`` pointing at an empty directory ("cold":
every kernel it needs is compiled) or at one a previous process filled
("warm": they are loaded). The difference is the compile cost that
``docs/deployment.md`` tells containers and clusters how to avoid.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

CALLS = {
    "allocate, the paper's step": """
        import numpy as np
        from knapsack_alloc import allocate
        allocate(np.random.default_rng(0).integers(0, 17, 256) / 16, 2048)
    """,
    "allocate, integer costs": """
        import numpy as np
        from knapsack_alloc import allocate
        rng = np.random.default_rng(0)
        costs = rng.integers(2, 17, 256)
        allocate(rng.integers(0, 17, 256) / 16, int(8 * costs.sum()) + 7, costs=costs)
    """,
    "KnapsackAllocator plan + update": """
        import numpy as np
        from knapsack_alloc import KnapsackAllocator
        allocator = KnapsackAllocator("paper")
        ids = np.repeat(np.arange(256), 8)
        allocator.update(ids, np.arange(ids.size) % 3 == 0)
        allocator.plan(np.arange(256), 2048)
    """,
}


def _run(code: str, cache: str) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, check=True)


@pytest.mark.parametrize("cache", ["cold", "warm"])
@pytest.mark.parametrize("call", list(CALLS))
def test_first_call_in_a_fresh_process(benchmark, tmp_path, call, cache):
    code = CALLS[call]
    warm = str(tmp_path / "warm")
    if cache == "warm":
        _run(code, warm)

    def fresh_cache():
        directory = warm if cache == "warm" else tempfile.mkdtemp(dir=tmp_path)
        return (code, directory), {}

    benchmark.pedantic(_run, setup=fresh_cache, rounds=3, iterations=1)

"""Benchmarks of ``knapsack-alloc diagnose`` on generated rollout logs.

Run with ``python -m pytest benchmarks/bench_diagnose.py --benchmark-only``.

The verl dumps imitate real ones: 256 prompts x 8 rollouts per step file, a
chat-template prompt, a response whose length varies around a mean, ground
truth and reward-extra fields. Three line sizes:

* ``short`` (about 1.2 kB a line): a small model on GSM8K-style problems;
* ``medium`` (about 3.6 kB): a 7B math model with ~700-token responses;
* ``long`` (about 15 kB): a reasoning model with ~3,500-token responses.

Each benchmark reports ``rollouts_per_minute`` (the floor is 10 million)
and ``megabytes_per_second`` from the median round, and the load average
(the machine is shared); reading with msgspec and with the standard
library's json is measured side by side. ``test_peak_memory`` runs
the command in a fresh process on one and on four times as many rollouts
and reports each peak resident memory: bounded memory means they stay close.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from knapsack_alloc.diagnose import diagnose

PROMPTS_PER_STEP = 256
ROLLOUTS_PER_PROMPT = 8
PROFILES = {  # name: (mean response characters, steps)
    "short": (700, 96),
    "medium": (2_800, 48),
    "long": (14_000, 12),
}
WORDS = (
    "the", "of", "a", "number", "is", "let", "find", "compute", "sum", "integer", "prime",
    "triangle", "angle", "value", "x", "y", "z", "answer", "boxed", "therefore", "since",
    "hence", "we", "have", "so",
)  # fmt: skip
SYSTEM = ("system\nYou are a helpful assistant. Please reason step by step, and put your final "
          "answer within \\boxed{}.\nuser\n")  # fmt: skip


def write_dump(folder: Path, mean_chars: int, steps: int, seed: int = 0) -> int:
    """Write a verl rollout dump; returns the number of rollouts."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    text = " ".join(rng.choice(WORDS) for _ in range(12 * mean_chars // 5))
    problems = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 110))) for _ in range(4096)
    ]
    rate = [rng.betavariate(0.4, 0.4) for _ in problems]
    for step in range(1, steps + 1):
        lines = []
        for problem in rng.sample(range(len(problems)), PROMPTS_PER_STEP):
            prompt = SYSTEM + problems[problem] + "\nassistant\n"
            for _ in range(ROLLOUTS_PER_PROMPT):
                score = float(rng.random() < rate[problem])
                start = rng.randrange(0, len(text) // 4)
                length = rng.randint(mean_chars // 4, mean_chars * 7 // 4)
                lines.append(json.dumps({
                    "input": prompt, "output": text[start:start + length], "gts": str(problem),
                    "score": score, "step": step, "acc": score > 0, "pred": str(problem),
                }, ensure_ascii=False))  # fmt: skip
        (folder / f"{step}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return steps * PROMPTS_PER_STEP * ROLLOUTS_PER_PROMPT


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    root = tmp_path_factory.mktemp("dumps")
    made = {}
    for name, (chars, steps) in PROFILES.items():
        folder = root / name
        rollouts = write_dump(folder, chars, steps)
        size = sum(f.stat().st_size for f in folder.iterdir())
        made[name] = (folder, rollouts, size)
    return made


def _record(benchmark, rollouts, size):
    # The median: the machine is shared, and a round slowed by another job says nothing.
    mean = benchmark.stats.stats.median
    benchmark.extra_info["rollouts"] = rollouts
    benchmark.extra_info["bytes_per_line"] = round(size / rollouts)
    benchmark.extra_info["rollouts_per_minute"] = round(60 * rollouts / mean)
    benchmark.extra_info["megabytes_per_second"] = round(size / mean / 1e6, 1)
    benchmark.extra_info["load_average"] = os.getloadavg()


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("decoder", ["msgspec", "json"])
def test_read_verl_dump(benchmark, dumps, profile, decoder):
    folder, rollouts, size = dumps[profile]
    result = benchmark.pedantic(
        diagnose, args=([str(folder)],), kwargs={"presets": (), "fast": decoder == "msgspec"},
        rounds=3, warmup_rounds=1,
    )  # fmt: skip
    assert result.rollouts == rollouts
    assert result.log.decoder.startswith(decoder)
    _record(benchmark, rollouts, size)


def test_diagnose_with_replay(benchmark, dumps):
    folder, rollouts, size = dumps["medium"]
    diagnose([str(folder)])  # loads the compiled kernels once
    result = benchmark.pedantic(diagnose, args=([str(folder)],), rounds=2)
    benchmark.extra_info["replay_seconds"] = result.seconds["replay"]
    benchmark.extra_info["steps"] = int(result.steps.step.size)
    _record(benchmark, rollouts, size)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("tables")
    rng = random.Random(1)
    rows = 2_000_000
    steps = [1 + i // 2048 for i in range(rows)]
    prompts = [f"prompt-{(i // 8 * 7919) % 50_000}" for i in range(rows)]
    rewards = [float(rng.random() < 0.4) for _ in range(rows)]
    with open(root / "run.csv", "w") as handle:
        handle.write("step,prompt_id,reward\n")
        records = zip(steps, prompts, rewards, strict=True)
        handle.writelines(f"{s},{p},{r:g}\n" for s, p, r in records)
    pq.write_table(pa.table({"step": steps, "prompt_id": prompts, "reward": rewards}),
                   root / "run.parquet")  # fmt: skip
    return root, rows


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_read_table(benchmark, tables, suffix):
    root, rows = tables
    path = root / f"run.{suffix}"
    result = benchmark.pedantic(diagnose, args=([str(path)],), kwargs={"presets": ()}, rounds=2)
    assert result.rollouts == rows
    _record(benchmark, rows, path.stat().st_size)


# VmHWM is the peak resident memory of this process image (ru_maxrss would
# carry over the pytest parent's peak across fork and exec).
PEAK = """
import re, sys
from knapsack_alloc.diagnose import diagnose
if sys.argv[1:]:
    diagnose(sys.argv[1:], presets=())
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)))
"""


def test_peak_memory(benchmark, tmp_path):
    """Peak resident memory of a fresh process on a run and on a run four times longer."""
    small, large = tmp_path / "small", tmp_path / "large"
    write_dump(small, PROFILES["medium"][0], 12, seed=2)
    write_dump(large, PROFILES["medium"][0], 48, seed=2)

    def peak(*folders):
        done = subprocess.run([sys.executable, "-c", PEAK, *map(str, folders)],
                              capture_output=True, text=True, check=True)  # fmt: skip
        return int(done.stdout.split()[-1]) // 1024

    small_mb = peak(small)
    large_mb = benchmark.pedantic(peak, args=(large,), rounds=1)
    benchmark.extra_info["import_only_peak_mb"] = peak()
    benchmark.extra_info["peak_mb_24k_rollouts"] = small_mb
    benchmark.extra_info["peak_mb_98k_rollouts"] = large_mb
    assert large_mb < 2 * small_mb

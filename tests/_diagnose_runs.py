"""Runs written to disk in each input format, and a brute-force oracle of their figures."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path

TEMPLATE = "system\nPlease reason step by step.\nuser\n{}\nassistant\n"


def make_rollouts(rng, *, steps=4, prompts=12, per_step=5, sizes=(1, 2, 8), rewards=(0.0, 1.0)):
    """(step, prompt index, reward) triples; group sizes drawn from ``sizes``."""
    rollouts = []
    for step in range(1, steps + 1):
        for prompt in rng.sample(range(prompts), per_step):
            size = rng.choice(sizes)
            if callable(rewards):
                values = [rewards(rng) for _ in range(size)]
            else:
                bias = rng.random()
                values = [rewards[-1] if rng.random() < bias else rewards[0] for _ in range(size)]
            rollouts.extend((step, prompt, value) for value in values)
    return rollouts


def prompt_text(prompt):
    return TEMPLATE.format(
        f'Problem {prompt}: what is {prompt} + {prompt * 7}? \u00e9\u4e2d"quoted"'
    )


def write_verl(folder: Path, rollouts, rng, *, extra=True, files_per_step=1):
    """verl's _dump_generations layout: {step}.jsonl, lines shuffled."""
    folder.mkdir(parents=True, exist_ok=True)
    by_step = defaultdict(list)
    for step, prompt, reward in rollouts:
        line = {
            "input": prompt_text(prompt),
            "output": "The answer is " + "x" * rng.randrange(0, 300) + "\n\\boxed{3}",
            "gts": str(prompt),
            "score": reward,
            "step": step,
        }
        if extra:
            line["acc"] = reward > 0
            line["pred"] = {"input": "nested, not the prompt", "value": [1, 2]}
        by_step[step].append(json.dumps(line, ensure_ascii=False))
    for step, lines in by_step.items():
        rng.shuffle(lines)
        if files_per_step == 1:
            (folder / f"{step}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            half = len(lines) // 2
            (folder / f"{step}a.jsonl").write_text("\n".join(lines[:half]) + "\n", encoding="utf-8")
            (folder / f"{step}b.jsonl").write_text("\n".join(lines[half:]) + "\n", encoding="utf-8")
    return folder


def table_rows(rollouts, rng):
    rows = [{"step": s, "prompt_id": f"p{p}", "reward": r} for s, p, r in rollouts]
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows, columns=("step", "prompt_id", "reward")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([[row[c] for c in columns] for row in rows])
    return path


def write_jsonl(path: Path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_parquet(path: Path, columns: dict):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


def oracle(rollouts):
    """Figures computed the obvious way: dicts of lists."""
    groups = defaultdict(list)
    for step, prompt, reward in rollouts:
        groups[(step, prompt)].append(reward)
    values = sorted({r for _, _, r in rollouts})
    binary = len(values) <= 2
    high = values[-1]

    def success(r):
        return (r > 0) if len(values) == 1 else r == high

    steps = {}
    for (step, _), rewards in sorted(groups.items()):
        entry = steps.setdefault(step, dict(step=step, rollouts=0, groups=0, homogeneous_groups=0,
                                            wasted_rollouts=0, all_correct_groups=0,
                                            all_wrong_groups=0))  # fmt: skip
        entry["rollouts"] += len(rewards)
        entry["groups"] += 1
        if len(set(rewards)) == 1:
            entry["homogeneous_groups"] += 1
            entry["wasted_rollouts"] += len(rewards)
            if binary:
                entry["all_correct_groups" if success(rewards[0]) else "all_wrong_groups"] += 1
    prompts = {}
    for (step, prompt), rewards in sorted(groups.items()):
        entry = prompts.setdefault(prompt, dict(sampled=0, rollouts=0, wins=0, wasted=0, steps=[]))
        entry["sampled"] += 1
        entry["rollouts"] += len(rewards)
        entry["wins"] += sum(map(success, rewards)) if binary else 0
        entry["wasted"] += len(rewards) if len(set(rewards)) == 1 else 0
        entry["steps"].append(step)
    return {"steps": list(steps.values()), "prompts": prompts, "binary": binary}


def seeded(seed):
    return random.Random(seed)

"""The console script, run for real in a subprocess on real files."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _solvers import HAVE_ORTOOLS

SCRIPT = shutil.which("knapsack-alloc")
COMMANDS = [[SCRIPT]] if SCRIPT else []
COMMANDS.append([sys.executable, "-m", "knapsack_alloc"])


def run(*args, command=None):
    completed = subprocess.run(
        [*(command or COMMANDS[0]), *map(str, args)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "160"},
    )  # fmt: skip
    return completed


def write_csv(path: Path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def batch(tmp_path):
    rates = np.random.default_rng(0).integers(0, 17, 64) / 16
    return write_csv(tmp_path / "batch.csv", ["prompt_id", "success_rate"],
                     [[f"p{i}", r] for i, r in enumerate(rates)])  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: Path(c[-1]).name)
def test_allocate_writes_counts_in_input_order(batch, tmp_path, command):
    out = tmp_path / "plan.csv"
    report = tmp_path / "report.json"
    done = run("allocate", batch, "--budget", 512, "-o", out, "--json", report, command=command)
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["prompt_id"] for row in rows] == [f"p{i}" for i in range(64)]
    counts = np.array([int(row["rollouts"]) for row in rows])
    assert counts.sum() == 512 and counts.min() >= 2 and counts.max() <= 128
    assert "predicted effective-gradient ratio" in done.stderr
    assert "certified optimal" in done.stderr
    data = json.loads(report.read_text())
    assert data["counts"] == counts.tolist() and data["status"] == "optimal"
    assert data["predicted_effective_ratio"] >= data["uniform_effective_ratio"]


def test_allocate_to_stdout_from_json_lines_with_successes_and_costs(tmp_path):
    path = tmp_path / "history.jsonl"
    rows = [{"prompt_id": i, "successes": i % 5, "trials": 8, "cost": 1 + i % 3} for i in range(20)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    done = run("allocate", path, "--budget", 300, "--prior", 1, 2)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "prompt_id,rollouts" and len(lines) == 21
    counts = np.array([int(line.split(",")[1]) for line in lines[1:]])
    costs = np.array([r["cost"] for r in rows])
    assert costs @ counts <= 300


def test_allocate_reads_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "batch.parquet"
    parquet.write_table(
        pa.table({"prompt_id": [10, 11, 12], "success_rate": [0.0, 0.5, 0.9], "cost": [2, 1, 1]}),
        path,
    )
    done = run("allocate", path, "--budget", 20, "--max-rollouts", 8)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "prompt_id,rollouts" and [line.split(",")[0] for line in lines[1:]] == [
        "10", "11", "12",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("header", "rows", "args", "message"),
    [
        (["prompt_id", "success_rate"], [["a", "0.5"], ["b", "abc"]], [],
         "batch.csv: row 3, column 'success_rate': 'abc' is not a finite number"),
        (["prompt_id", "success_rate"], [["a", "0.5"], ["b", "1.5"]], [],
         "batch.csv: row 3, column 'success_rate': 1.5 is outside [0, 1]"),
        (["prompt_id", "rate"], [["a", "0.5"]], [],
         "batch.csv: needs a 'success_rate' column, or 'successes' and 'trials' "
         "(columns: 'prompt_id', 'rate')"),
        (["id", "success_rate"], [["a", "0.5"]], [],
         "batch.csv: missing column 'prompt_id' (columns: 'id', 'success_rate')"),
        (["prompt_id", "successes", "trials"], [["a", "9", "8"]], [],
         "batch.csv: row 2, column 'successes': 9 must be between 0 and trials (8)"),
        (["prompt_id", "success_rate"], [["a", "0.5"], ["b", "0.5"]], ["--budget", "3"],
         "budget == 3.0 is below the 4 cost units that min_rollouts requires"),
        (["prompt_id", "success_rate", "cost"], [["a", "0.5", "0"]], [],
         "costs[0] == 0.0, must be > 0 (cost of one rollout)."),
    ],
)
def test_allocate_bad_input_is_one_line(tmp_path, header, rows, args, message):
    path = write_csv(tmp_path / "batch.csv", header, rows)
    done = run("allocate", path, *(args or ["--budget", "8"]))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("knapsack-alloc: error: ")
    assert message in done.stderr


def test_missing_file_is_one_line(tmp_path):
    done = run("allocate", tmp_path / "nope.csv", "--budget", 8)
    assert done.returncode == 2 and done.stderr.strip().endswith("nope.csv: no such file")


def test_help_texts_have_examples():
    for args in (["--help"], ["allocate", "--help"], ["bench", "--help"]):
        done = run(*args)
        assert done.returncode == 0 and "examples:" in done.stdout


@pytest.mark.slow
def test_bench_quick_json_has_every_solver_and_they_agree(tmp_path):
    report = tmp_path / "bench.json"
    done = run("bench", "--quick", "--min-time", "0.01", "--json", report)
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    assert data["all_agree"] is True
    solvers = {row["solver"] for row in data["results"] if "skipped" not in row}
    assert solvers == {"greedy", "dp", "textbook", *(["ortools"] if HAVE_ORTOOLS else [])}
    if not HAVE_ORTOOLS:  # an optional solver that is not installed is skipped, and says why
        ortools = [row for row in data["results"] if row["solver"] == "ortools"]
        assert all("OR-Tools not installed" in row["skipped"] for row in ortools)
    paper_step = [row for row in data["results"]
                  if row["instance"] == "256x2048" and "skipped" not in row]  # fmt: skip
    objectives = {row["solver"]: row["objective"] for row in paper_step}
    assert max(objectives.values()) - min(objectives.values()) <= 1e-7 * max(objectives.values())
    assert all(row["median_s"] > 0 for row in paper_step)
    assert any("skipped" in row for row in data["results"])


def test_the_certified_line_is_computed_by_certify(tmp_path):
    """The greedy with integer costs can stop short of the optimum: the CLI says so."""
    rng = np.random.default_rng(3)
    costs = rng.integers(2, 17, 64)
    rates = rng.random(64)
    rows = [[i, r, c] for i, (r, c) in enumerate(zip(rates, costs, strict=True))]
    path = write_csv(tmp_path / "costs.csv", ["prompt_id", "success_rate", "cost"], rows)
    budget = int(8 * costs.sum()) + 7
    report = tmp_path / "report.json"
    done = run("allocate", path, "--budget", budget, "--solver", "greedy", "--json", report)
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    assert "not proven optimal: objective" in done.stderr and "(gap " in done.stderr
    assert data["certified_optimal"] is False and data["upper_bound"] > data["objective"]
    exact = run("allocate", path, "--budget", budget, "--json", report)  # the DP proves it
    assert "certified optimal: objective" in exact.stderr
    assert json.loads(report.read_text())["certified_optimal"] is True


def test_rounded_costs_are_certified_against_the_real_costs(tmp_path):
    path = write_csv(tmp_path / "real.csv", ["prompt_id", "success_rate", "cost"],
                     [[i, (i % 15 + 1) / 16, 1.0 + 0.37 * (i % 7)] for i in range(40)])  # fmt: skip
    report = tmp_path / "report.json"
    done = run("allocate", path, "--budget", 300, "--cost-resolution", 0.5, "--json", report)
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    assert data["total_cost"] <= 300
    assert data["upper_bound"] >= data["objective"]


def test_a_library_bug_is_a_traceback_not_a_usage_error(tmp_path, monkeypatch):
    from knapsack_alloc import cli
    from knapsack_alloc.cli import allocate_command

    path = tmp_path / "batch.csv"
    path.write_text("prompt_id,success_rate\na,0.5\nb,0.25\n")

    def broken(*args, **kwargs):
        raise ValueError("an internal invariant failed")

    monkeypatch.setattr("knapsack_alloc.allocate", broken)
    with pytest.raises(ValueError, match="an internal invariant failed"):
        cli.main(["allocate", str(path), "--budget", "8"])
    assert allocate_command.run is not None


def test_the_choices_are_the_registries():
    from knapsack_alloc.cli import build_parser
    from knapsack_alloc.solvers import SOLVERS
    from knapsack_alloc.values import BUILT_IN

    allocate = build_parser()._subparsers._group_actions[0].choices["allocate"]
    choices = {action.dest: action.choices for action in allocate._actions}
    assert choices["solver"] == list(SOLVERS)
    assert choices["value"] == sorted(BUILT_IN)

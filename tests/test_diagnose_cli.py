"""``knapsack-alloc diagnose`` run for real in a subprocess, outputs included."""

from __future__ import annotations

import json

import pytest

from _diagnose_runs import make_rollouts, seeded, write_verl
from test_cli import run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def dump(tmp_path):
    rng = seeded(31)
    rollouts = make_rollouts(rng, steps=5, prompts=16, per_step=8, sizes=(8,))
    return write_verl(tmp_path / "rollout_data", rollouts, rng)


def test_report_json_and_plot(dump, tmp_path):
    report, figure = tmp_path / "report.json", tmp_path / "report.png"
    done = run("diagnose", dump, "--json", report, "--plot", figure, "--seed", 4)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "verl rollout dump, 5 files, 5 steps (1 to 5)" in out
    assert "counterfactual" in out and "knapsack, paper" in out and "knapsack, bayes" in out
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("verdict: ") and "fell in groups with no gradient" in verdict
    data = json.loads(report.read_text())
    summary = data["summary"]
    assert set(summary) >= {"rollouts", "groups", "wasted_rollouts", "effective_gradient_ratio",
                            "projected"}  # fmt: skip
    assert set(summary["projected"]) >= {"model", "seed", "bounds", "suggested_bounds", "as_run",
                                         "paper", "bayes"}  # fmt: skip
    assert summary["projected"]["seed"] == 4
    assert [row["step"] for row in data["steps"]] == [1, 2, 3, 4, 5]
    assert set(data["steps"][0]) >= {"step", "rollouts", "groups", "wasted_rollouts",
                                     "effective_gradient_ratio"}  # fmt: skip
    assert sum(row["rollouts"] for row in data["prompts"]) == summary["rollouts"] == 5 * 8 * 8
    assert verdict == "verdict: " + summary["verdict"]
    png = figure.read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    assert not list(tmp_path.glob(".knapsack-alloc-*"))


def test_bad_input_exits_2_with_one_line_and_writes_nothing(dump, tmp_path):
    (dump / "2.jsonl").write_text('{"input": "q", "score": 1, "step": 2}\n{"input": oops}\n')
    report, figure = tmp_path / "report.json", tmp_path / "report.png"
    report.write_text("previous report")
    done = run("diagnose", dump, "--json", report, "--plot", figure)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("knapsack-alloc: error: ")
    assert "2.jsonl: line 2: not valid JSON" in lines[0]
    assert done.stdout == ""
    assert report.read_text() == "previous report" and not figure.exists()
    assert not list(tmp_path.glob(".knapsack-alloc-*"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-rollouts", "9"], "--min-rollouts == 9 is too high"),
        (["--json", "missing/folder/r.json"], "missing/folder/r.json: the folder"),
        (["--format", "table"], "1.jsonl: line 1: no 'prompt_id' field"),
    ],
)
def test_other_errors_exit_2(dump, tmp_path, args, message):
    done = run("diagnose", dump, *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_empty_directory_exits_2(tmp_path):
    done = run("diagnose", tmp_path)
    assert done.returncode == 2
    assert "no rollout files" in done.stderr


def test_no_replay(dump):
    done = run("diagnose", dump, "--no-replay")
    assert done.returncode == 0, done.stderr
    assert "counterfactual" not in done.stdout
    assert done.stdout.strip().splitlines()[-1].endswith("fell in groups with no gradient.")


def test_help_lists_diagnose():
    done = run("--help")
    assert "diagnose" in done.stdout
    assert "rollout_data_dir" in run("diagnose", "--help").stdout

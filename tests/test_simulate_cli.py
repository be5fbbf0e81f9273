"""``knapsack-alloc simulate`` run for real in a subprocess, on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SMALL = ["--prompts", "300", "--batch", "16", "--budget", "128", "--steps", "20", "--no-progress"]
KEYS = {"effective_gradient_ratio", "max_rollouts", "final_mean_success", "rollouts", "series"}


def simulate(*args):
    return subprocess.run(
        [sys.executable, "-m", "knapsack_alloc", "simulate", *map(str, args)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def test_end_to_end_with_json_and_plot(tmp_path):
    report, figure = tmp_path / "sim.json", tmp_path / "sim.png"
    done = simulate(*SMALL, "--json", report, "--plot", figure, "--jobs", "1")
    assert done.returncode == 0, done.stderr
    names = ["uniform", "knapsack-paper", "knapsack-bayes", "knapsack-rounds-paper",
             "knapsack-rounds-bayes", "dapo", "greso", "rounds"]  # fmt: skip
    for name in names:
        assert name in done.stdout
    data = json.loads(report.read_text())
    assert list(data["policies"]) == names
    for entry in data["policies"].values():
        assert entry.keys() >= KEYS
        assert entry["rollouts"] == sum(entry["series"]["rollouts"])
        assert len(entry["series"]["effective_ratio"]) == 20
        assert entry["effective_gradient_ratio"] == pytest.approx(
            sum(entry["series"]["effective_ratio"]) / 20
        )
    assert data["policies"]["uniform"]["rollouts"] == 128 * 20
    assert data["scenario"]["prompts"] == 300 and data["seeds"] == [0]
    png = figure.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".simulate-")]
    umask = os.umask(0)
    os.umask(umask)
    assert figure.stat().st_mode & 0o777 == report.stat().st_mode & 0o777 == 0o666 & ~umask


def test_seeds_report_mean_and_spread_in_parallel(tmp_path):
    report = tmp_path / "sim.json"
    done = simulate(*SMALL, "--seeds", 3, "--seed", 5, "--jobs", 2, "--json", report,
                    "--policies", "uniform", "knapsack-bayes")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "3 seeds" in done.stdout and "±" in done.stdout
    data = json.loads(report.read_text())
    assert data["seeds"] == [5, 6, 7]
    entry = data["policies"]["knapsack-bayes"]
    assert [run["seed"] for run in entry["per_seed"]] == [5, 6, 7]
    values = [run["effective_gradient_ratio"] for run in entry["per_seed"]]
    assert entry["effective_gradient_ratio"] == pytest.approx(sum(values) / 3)
    assert entry["spread"]["effective_gradient_ratio"] > 0
    assert len(entry["series_spread"]["mean_success"]) == 20


def test_compute_to_match(tmp_path):
    report = tmp_path / "sim.json"
    done = simulate(*SMALL, "--policies", "uniform", "dapo", "--compute-to-match",
                    "--json", report)  # fmt: skip
    assert done.returncode == 0, done.stderr
    match = json.loads(report.read_text())["compute_to_match"]["dapo"]
    run = match["per_seed"][0]
    lo, hi = run["bracket"]
    assert run["status"] in ("matched", "below_range")
    assert run["uniform_budget"] == hi and run["factor"] == hi / 128
    assert hi - lo <= max(1, 0.01 * 128) or run["status"] == "below_range"
    assert "uniform budget to match" in done.stdout


def test_compute_to_match_on_a_static_population(tmp_path):
    report = tmp_path / "sim.json"
    done = simulate(*SMALL, "--learning-rate", 0, "--policies", "uniform", "rounds",
                    "--compute-to-match", "--json", report)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(report.read_text())["compute_to_match"]["rounds"]["status"] == "static"
    assert "n/a (static)" in done.stdout


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_population_from_a_file(tmp_path, suffix):
    rates = [i / 99 for i in range(100)]
    path = tmp_path / f"rates.{suffix}"
    if suffix == "csv":
        rows = "".join(f"q{i},{r}\n" for i, r in enumerate(rates))
        path.write_text("prompt_id,success_rate\n" + rows)
    elif suffix == "jsonl":
        path.write_text("".join(json.dumps({"prompt_id": i, "success_rate": r}) + "\n"
                                for i, r in enumerate(rates)))  # fmt: skip
    else:
        pa = pytest.importorskip("pyarrow")
        parquet = pytest.importorskip("pyarrow.parquet")
        parquet.write_table(pa.table({"prompt_id": list(range(100)), "success_rate": rates}), path)
    report = tmp_path / "sim.json"
    done = simulate("--population", path, "--batch", 16, "--budget", 128, "--steps", 10,
                    "--policies", "uniform", "--json", report, "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    assert data["scenario"]["prompts"] == 100
    assert data["policies"]["uniform"]["initial_mean_success"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.csv", "prompt_id,rate\n1,0.5\n", "a.csv: missing column 'success_rate' (columns: "
                                              "'prompt_id', 'rate')"),
        ("b.csv", "prompt_id,success_rate\n1,0.5\n2,1.5\n",
         "b.csv: row 3, column 'success_rate': 1.5 is outside [0, 1]"),
        ("c.csv", "prompt_id,success_rate\n1,half\n", "c.csv: row 2, column 'success_rate': "
                                                       "'half' is not a finite number"),
        ("d.csv", "prompt_id,success_rate\n7,0.5\n7,0.2\n", "d.csv: row 3, column 'prompt_id': "
                                                             "'7' already appears in row 2"),
        ("e.csv", "", "e.csv: the file is empty (expected a header row)"),
        ("f.csv", "prompt_id,success_rate\n", "f.csv: no rows"),
        ("g.jsonl", '{"prompt_id": 1, "success_rate": 0.5}\n{oops\n', "g.jsonl: row 2: not valid "
                                                                       "JSON"),
        ("h.csv", "prompt_id,success_rate\n1,0.5,3\n", "h.csv: row 2 has 3 fields, the header "
                                                        "has 2"),
    ],
)  # fmt: skip
def test_bad_population_files_get_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    done = simulate("--population", path, "--policies", "uniform", "--no-progress")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("knapsack-alloc: error: ")
    assert message in lines[0]
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--population", "missing.csv"], "missing.csv: no such file"),
        (
            ["--population", "rates.csv", "--prompts", "10"],
            "cannot be combined with the population file",
        ),
        (["--population", "beta(1)"], "beta(a,b) takes two numbers > 0"),
        (["--budget", "100"], "budget == 100 is below 2 rollouts per prompt of a batch of 256"),
        (["--learning-rate", "-1"], "learning_rate == -1.0, must be in [0, 4]"),
        (["--seeds", "0"], "--seeds must be >= 1, got 0"),
        (["--plot", "out.pdf"], "--plot writes a PNG"),
        (["--json", "no/such/folder/x.json"], "the folder"),
    ],
)
def test_bad_arguments_get_one_line_errors(tmp_path, args, message):
    (tmp_path / "rates.csv").write_text("prompt_id,success_rate\n1,0.5\n")
    done = subprocess.run(
        [sys.executable, "-m", "knapsack_alloc", "simulate", *args, "--no-progress"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_help_lists_the_policies_and_presets():
    done = simulate("--help")
    assert done.returncode == 0
    for word in ("knapsack-bayes", "greso", "rounds", "math-rl", "--compute-to-match"):
        assert word in done.stdout

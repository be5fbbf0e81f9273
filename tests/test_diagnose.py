"""Exact figures of ``diagnose`` on runs written to disk, against a brute-force oracle."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _diagnose_runs import (
    make_rollouts,
    oracle,
    prompt_text,
    seeded,
    table_rows,
    write_csv,
    write_jsonl,
    write_parquet,
    write_verl,
)
from knapsack_alloc.diagnose import diagnose
from knapsack_alloc.diagnose import groups as groups_module
from knapsack_alloc.diagnose.report import json_report

REWARDS = {
    "binary": (0.0, 1.0),
    "plus-minus": (-1.0, 1.0),
    "real": lambda rng: round(rng.uniform(-0.5, 2.0), 3),
    "constant-zero": (0.0, 0.0),
    "constant-one": (1.0, 1.0),
}


def assert_figures(result, rollouts, label):
    expected = oracle(rollouts)
    report = json_report(result)
    got = [{k: row.get(k) for k in expected["steps"][0]} for row in report["steps"]]
    if not expected["binary"]:
        for row in expected["steps"]:
            row.pop("all_correct_groups"), row.pop("all_wrong_groups")
        got = [{k: v for k, v in row.items() if k in expected["steps"][0]} for row in got]
    assert got == expected["steps"]
    total = sum(row["rollouts"] for row in expected["steps"])
    wasted = sum(row["wasted_rollouts"] for row in expected["steps"])
    summary = report["summary"]
    assert summary["rollouts"] == total == result.rollouts
    assert summary["wasted_rollouts"] == wasted
    assert summary["effective_gradient_ratio"] == pytest.approx(1 - wasted / total, abs=1e-15)
    assert summary["groups"] == sum(row["groups"] for row in expected["steps"])
    rows = {row["prompt"]: row for row in report["prompts"]}
    assert len(rows) == len(expected["prompts"])
    for prompt, want in expected["prompts"].items():
        row = rows[label(prompt)]
        assert row["sampled"] == want["sampled"]
        assert row["rollouts"] == want["rollouts"]
        assert row["wasted_rollouts"] == want["wasted"]
        assert row["history"]["steps"] == want["steps"]
        if expected["binary"]:
            assert row["successes"] == want["wins"]
            assert row["always_solved"] == (want["wins"] == want["rollouts"])
            assert row["never_solved"] == (want["wins"] == 0)
            assert sum(row["history"]["successes"]) == want["wins"]
        else:
            assert row["successes"] is None and row["always_solved"] is None


def verl_label(prompt):
    return hashlib.blake2b(prompt_text(prompt).encode(), digest_size=16).hexdigest()[:16]


@pytest.mark.parametrize("kind", list(REWARDS))
@pytest.mark.parametrize("fast", [True, False], ids=["msgspec", "json"])
def test_verl_dump_figures_are_exact(tmp_path, kind, fast):
    rng = seeded(1)
    rollouts = make_rollouts(rng, rewards=REWARDS[kind])
    folder = write_verl(tmp_path / "dump", rollouts, rng)
    result = diagnose([str(folder)], fast=fast, presets=())
    assert result.sources.format == "verl"
    assert result.log.decoder.startswith("msgspec" if fast else "json")
    assert_figures(result, rollouts, verl_label)


def test_line_order_and_file_split_do_not_change_the_figures(tmp_path):
    rollouts = make_rollouts(seeded(2), steps=3)
    first = diagnose([str(write_verl(tmp_path / "a", rollouts, seeded(3)))], presets=())
    split = write_verl(tmp_path / "b", rollouts, seeded(4), files_per_step=2)
    second = diagnose([str(split)], presets=())
    assert len(second.sources.files) == 6
    assert json_report(first)["steps"] == json_report(second)["steps"]
    assert_figures(second, rollouts, verl_label)


def test_groups_of_one_are_homogeneous(tmp_path):
    rollouts = make_rollouts(seeded(5), sizes=(1,))
    result = diagnose([str(write_verl(tmp_path / "d", rollouts, seeded(5)))], presets=())
    assert result.wasted_rollouts == result.rollouts == len(rollouts)
    assert result.effective_gradient_ratio == 0.0


def test_several_paths_make_one_run(tmp_path):
    rng = seeded(6)
    rollouts = make_rollouts(rng, steps=4)
    folder = write_verl(tmp_path / "d", rollouts, rng)
    files = sorted(str(p) for p in folder.iterdir())
    result = diagnose([*files[:2], files[2], files[3]], presets=())
    assert_figures(result, rollouts, verl_label)


def test_verl_uid_splits_groups_and_index_labels_prompts(tmp_path):
    # verl's v1 trainer dumps uid as "{prompt uid}_{session}_{output}"; two groups of one
    # prompt in a step stay apart. "index" labels a prompt; its text identifies it, since
    # index values repeat across the data sources of a mixed dataset.
    groups = [
        (1, "u1", 7, "q", [1, 0]),
        (1, "u2", 7, "q", [1, 1]),
        (2, "u3", 7, "q", [0, 0]),
        (2, "u4", 7, "other source", [1, 1]),
    ]
    lines = []
    for step, uid, index, text, rewards in groups:
        for session, reward in enumerate(rewards):
            uid_field = f"{uid}-a_{session}_0"
            lines.append(
                {"input": text, "output": "o", "score": reward, "step": step, "uid": uid_field,
                 "index": index}
            )  # fmt: skip
    path = write_jsonl(tmp_path / "1.jsonl", lines)
    report = json_report(diagnose([str(path)], presets=()))
    assert [(s["groups"], s["wasted_rollouts"]) for s in report["steps"]] == [(2, 2), (2, 4)]
    first, second = sorted(report["prompts"], key=lambda row: row["sampled"])
    assert (first["prompt"], first["text"], first["sampled"], first["successes"]) == (
        7, "other source", 1, 2)  # fmt: skip
    assert (second["prompt"], second["text"], second["sampled"], second["successes"]) == (
        7, "q", 3, 3)  # fmt: skip
    assert (second["first_step"], second["last_step"]) == (1, 2)


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("kind", ["binary", "plus-minus", "real"])
def test_table_figures_are_exact(tmp_path, suffix, kind):
    rng = seeded(7)
    rollouts = make_rollouts(rng, steps=5, rewards=REWARDS[kind])
    rows = table_rows(rollouts, rng)
    path = tmp_path / f"run.{suffix}"
    if suffix == "csv":
        write_csv(path, rows)
    elif suffix == "jsonl":
        write_jsonl(path, rows)
    else:
        write_parquet(path, {k: [row[k] for row in rows] for k in ("step", "prompt_id", "reward")})
    result = diagnose([str(path)], presets=())
    assert result.sources.format == "table"
    assert_figures(result, rollouts, lambda prompt: f"p{prompt}")


def test_table_split_over_files_in_any_order(tmp_path):
    rng = seeded(8)
    rollouts = make_rollouts(rng, steps=6)
    rows = table_rows(rollouts, rng)
    write_csv(tmp_path / "a.csv", rows[: len(rows) // 3])
    write_csv(tmp_path / "b.csv", rows[len(rows) // 3 :])
    assert_figures(diagnose([str(tmp_path)], presets=()), rollouts, lambda p: f"p{p}")


def trl_file(path, step, rollouts, conversational=False, extra_reward=False):
    prompts = [prompt_text(p) for _, p, _ in rollouts]
    if conversational:
        prompts = [[{"role": "user", "content": text}] for text in prompts]
    columns = {
        "step": [step] * len(rollouts),
        "prompt": prompts,
        "completion": [f"completion {i}" for i in range(len(rollouts))],
        "accuracy_reward": [r for _, _, r in rollouts],
    }
    if extra_reward:
        # TRL logs NaN where a reward function returned None; it adds the others (nansum).
        columns["format_reward"] = [float("nan")] * len(rollouts)
    columns["advantage"] = [0.0] * len(rollouts)
    return write_parquet(path, columns)


@pytest.mark.parametrize("conversational", [False, True])
def test_trl_completions_figures_are_exact(tmp_path, conversational):
    rng = seeded(9)
    rollouts = make_rollouts(rng, steps=3)
    folder = tmp_path / "out" / "completions"
    folder.mkdir(parents=True)
    for step in (1, 2, 3):
        part = [r for r in rollouts if r[0] == step]
        trl_file(folder / f"completions_{step:05d}.parquet", step, part, conversational,
                 extra_reward=True)  # fmt: skip
    # A logging step that repeats the last generation batch (TRL logs the latest one).
    trl_file(folder / "completions_00004.parquet", 4, [r for r in rollouts if r[0] == 3],
             conversational, extra_reward=True)  # fmt: skip
    result = diagnose([str(tmp_path / "out")], presets=())
    assert result.sources.format == "trl"
    assert result.log.skipped == [str(folder / "completions_00004.parquet")]
    assert "accuracy_reward" in result.log.reward and "format_reward" in result.log.reward

    def label(prompt):  # TRL prompts are keyed by a digest of their text (conversations as JSON)
        text = prompt_text(prompt)
        if conversational:
            text = json.dumps([{"content": text, "role": "user"}], ensure_ascii=False)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()[:16]

    assert_figures(result, rollouts, label)


def test_accumulator_merges_partial_groups_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(groups_module, "COMPACT_ROWS", 3)
    rng = seeded(10)
    rollouts = make_rollouts(rng, steps=6, sizes=(1, 3, 5))
    rows = table_rows(rollouts, rng)
    for i in range(0, len(rows), 7):
        write_csv(tmp_path / f"part{i:04d}.csv", rows[i : i + 7])
    assert_figures(diagnose([str(tmp_path)], presets=()), rollouts, lambda p: f"p{p}")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rng=st.randoms(use_true_random=False), sizes=st.sampled_from([(1,), (2, 3), (1, 4, 16)]),
       kind=st.sampled_from(sorted(REWARDS)))  # fmt: skip
def test_figures_match_the_oracle_on_generated_runs(tmp_path_factory, rng, sizes, kind):
    # st.randoms: every draw of the run generator is Hypothesis data, so failures shrink.
    rollouts = make_rollouts(rng, steps=rng.randint(1, 5), prompts=6, per_step=rng.randint(1, 6),
                             sizes=sizes, rewards=REWARDS[kind])  # fmt: skip
    folder = write_verl(tmp_path_factory.mktemp("run"), rollouts, rng, extra=False)
    assert_figures(diagnose([str(folder)], presets=()), rollouts, verl_label)


def test_success_threshold_counts_real_rewards(tmp_path):
    rows = [
        {"step": 1, "prompt_id": "a", "reward": 0.9},
        {"step": 1, "prompt_id": "a", "reward": 0.7},
        {"step": 1, "prompt_id": "b", "reward": 0.2},
        {"step": 1, "prompt_id": "b", "reward": 0.2},
        {"step": 1, "prompt_id": "c", "reward": 0.4},
    ]
    report = json_report(diagnose([str(write_jsonl(tmp_path / "t.jsonl", rows))],
                                  success_threshold=0.5, presets=()))  # fmt: skip
    summary = report["summary"]
    # 'a' is all successes but not homogeneous: it has a gradient.
    assert summary["homogeneous_groups"] == 2
    assert summary["all_correct_groups"] == 0 and summary["all_wrong_groups"] == 2
    by_id = {row["prompt"]: row for row in report["prompts"]}
    assert by_id["a"]["always_solved"] and by_id["b"]["never_solved"]
    assert by_id["a"]["successes"] == 2 and by_id["c"]["successes"] == 0


def test_reward_field_picks_another_verl_field(tmp_path):
    rng = seeded(11)
    rollouts = make_rollouts(rng)
    folder = write_verl(tmp_path / "d", rollouts, rng)
    by_acc = diagnose([str(folder)], reward_field="acc", presets=())
    by_score = diagnose([str(folder)], presets=())
    assert json_report(by_acc)["steps"] == json_report(by_score)["steps"]
    assert by_acc.log.reward == "field 'acc'"


def test_report_is_deterministic_in_the_seed(tmp_path):
    rng = seeded(12)
    folder = write_verl(tmp_path / "d", make_rollouts(rng, steps=6, prompts=20, per_step=10), rng)
    one, two = (diagnose([str(folder)], seed=3) for _ in range(2))
    assert json_report(one)["summary"]["projected"] == json_report(two)["summary"]["projected"]
    assert np.isfinite(one.projections["paper"].effective_gradient_ratio)

"""Bad input gets one clear error naming the file, the line or row, and the problem;
the fast JSON-lines decoder agrees with the reference one."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _diagnose_runs import make_rollouts, seeded, write_csv, write_jsonl, write_parquet, write_verl
from knapsack_alloc.diagnose import InputFileError, diagnose
from knapsack_alloc.diagnose.jsonlines import Field, JsonLinesReader

VERL_LINE = {"input": "q", "output": "o", "score": 1.0, "step": 3}


def verl_dump(tmp_path, lines, name="3.jsonl"):
    folder = tmp_path / "dump"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return folder


def good(**change):
    return json.dumps({**VERL_LINE, **change})


def fails(paths, match, **kwargs):
    with pytest.raises(InputFileError, match=match) as caught:
        diagnose([str(p) for p in paths], presets=(), **kwargs)
    assert "\n" not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("fast", [True, False])
def test_broken_json_line_names_file_and_line(tmp_path, fast):
    folder = verl_dump(tmp_path, [good(), good(), "", '{"input": "q", "score": 1', good()])
    message = fails([folder], r"3\.jsonl: line 4: not valid JSON", fast=fast)
    assert message.startswith(str(folder / "3.jsonl"))


def test_error_lines_are_counted_across_blocks(tmp_path, monkeypatch):
    import knapsack_alloc.diagnose.jsonlines as jsonlines

    monkeypatch.setattr(jsonlines, "BLOCK_BYTES", 64)
    lines = [good(step=3) for _ in range(40)] + [good(score="high")]
    fails([verl_dump(tmp_path, lines)], r"line 41, field 'score': \"high\" is not a finite number")


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (good(score="0.5"), r"line 2, field 'score': \"0\.5\" is not a finite number"),
        (good(score=None), r"line 2, field 'score': null is not a finite number"),
        ('{"input": "q", "output": "o", "score": NaN, "step": 3}', r"line 2, field 'score': NaN"),
        (good(score=[1]), r"line 2, field 'score': \[1\] is not a finite number"),
        (good(step=3.0), r"line 2, field 'step': 3\.0 is not an integer"),
        (good(step=True), r"line 2, field 'step': true is not an integer"),
        (good(input=["a"]), r"line 2, field 'input': \[\"a\"\] is not a string"),
        (
            json.dumps({"input": "q", "step": 3}),
            r"line 2: no 'score' field \(fields: 'input', 'step'\)",
        ),
        ("[1, 2]", r"line 2: expected a JSON object, got an array"),
        (good(step=2**70), r"line 2, field 'step': 1180591620717411303424 is out of range"),
    ],
)
@pytest.mark.parametrize("fast", [True, False])
def test_bad_verl_lines(tmp_path, line, match, fast):
    fails([verl_dump(tmp_path, [good(), line])], match, fast=fast)


def test_invalid_utf8(tmp_path):
    folder = tmp_path / "dump"
    folder.mkdir()
    (folder / "1.jsonl").write_bytes(good().encode() + b"\n" + b'{"input": "\xff"}\n')
    fails([folder], r"line 2: not valid UTF-8")


def test_missing_reward_field_suggests_nothing_silently(tmp_path):
    fails([verl_dump(tmp_path, [good()])], r"line 1: no 'acc' field", reward_field="acc")


def test_empty_step_file_is_a_step_without_groups(tmp_path):
    folder = verl_dump(tmp_path, [good()])
    (folder / "4.jsonl").write_text("\n\n")
    fails([folder], r"4\.jsonl: no rollouts in this file \(a step without groups\)")


def test_empty_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("not a rollout file")
    fails([tmp_path], r"no rollout files \(\.jsonl, \.ndjson, \.csv, \.parquet\) in this directory")


def test_missing_path(tmp_path):
    fails([tmp_path / "nope"], r"nope: no such file or directory")


def test_unknown_format_is_named(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"a": 1}])
    fails([path], r"x\.jsonl: line 1: cannot tell the format from the fields \('a'\)")


def test_mixed_formats_are_refused(tmp_path):
    rng = seeded(1)
    folder = write_verl(tmp_path / "d", make_rollouts(rng, steps=1), rng)
    table = write_csv(tmp_path / "t.csv", [{"step": 1, "prompt_id": "a", "reward": 1}])
    fails([folder, table], r"t\.csv: is in the table format but .* is in the verl format")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (
            "step,prompt_id,score\n1,a,1\n",
            r"missing column 'reward' \(columns: 'step', 'prompt_id', 'score'\)",
        ),
        (
            "step,prompt_id,reward\n1,a,1\n2,b,abc\n",
            r"row 3, column 'reward': 'abc' is not a number",
        ),
        (
            "step,prompt_id,reward\n1,a,1\n2,b,inf\n",
            r"row 3, column 'reward': 'inf' is not a finite number",
        ),
        (
            "step,prompt_id,reward\n1,a,1\n2.5,b,1\n",
            r"row 3, column 'step': '2\.5' is not an integer",
        ),
        ("step,prompt_id,reward\n1,,1\n", r"row 2, column 'prompt_id': '' is not a prompt id"),
        ("step,prompt_id,reward\n1,a,1,9\n", r"row 2 has 4 fields, the header has 3"),
        ("step,prompt_id,reward\n", r"no rollouts in this file"),
        ("", r"the file is empty \(expected a header row\)"),
    ],
)
def test_bad_csv_tables(tmp_path, rows, match):
    path = tmp_path / "t.csv"
    path.write_text(rows)
    fails([path], r"t\.csv: " + match)


def test_csv_reader_switches_to_the_standard_library_mid_file(tmp_path, monkeypatch):
    import knapsack_alloc.diagnose.tables as tables

    monkeypatch.setattr(tables, "BLOCK_ROWS", 8)
    lines = [f"{1 + i // 10},p{i % 10},{i % 3 == 0:d}" for i in range(200)]
    lines[150] = "16,p0,True"  # pyarrow's float parser refuses this; csv reads it as 1
    lines.insert(100, "")
    path = tmp_path / "t.csv"
    path.write_text("step,prompt_id,reward\n" + "\n".join(lines) + "\n")
    result = diagnose([str(path)], presets=())
    assert result.rollouts == 200
    assert result.groups.size.sum() == 200 and set(result.steps.rollouts) == {10}
    lines[180] = "19,p0,oops"
    path.write_text("step,prompt_id,reward\n" + "\n".join(lines) + "\n")
    fails([path], r"row 181, column 'reward': 'oops' is not a number")  # blank lines are not rows


def test_csv_booleans_are_rewards(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("step,prompt_id,reward\n1,a,True\n1,a,false\n")
    result = diagnose([str(path)], presets=())
    assert result.wasted_rollouts == 0 and result.scale.values == (0.0, 1.0)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (
            [
                {"step": 1, "prompt_id": "a", "reward": 1},
                {"step": 1, "prompt_id": "a", "reward": "x"},
            ],
            r"line 2, field 'reward': \"x\" is not a finite number",
        ),
        ([{"step": 1, "prompt_id": "a"}], r"line 1: no 'reward' field"),
        (
            [{"step": 1, "prompt_id": 1.5, "reward": 1}],
            r"line 1, field 'prompt_id': 1\.5 is not an integer or a string",
        ),
    ],
)
def test_bad_json_lines_tables(tmp_path, rows, match):
    fails([write_jsonl(tmp_path / "t.jsonl", rows)], r"t\.jsonl: " + match)


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        (
            {"step": [1, 2], "prompt_id": ["a", "b"], "reward": [1.0, None]},
            r"row 2, column 'reward': None is not a number",
        ),
        (
            {"step": [1, 2], "prompt_id": ["a", "b"], "reward": [1.0, float("nan")]},
            r"row 2, column 'reward': nan is not a finite number",
        ),
        (
            {"step": [1, 2], "prompt_id": ["a", "b"], "reward": ["1", "0"]},
            r"row 1, column 'reward': '1' is not a number",
        ),
        (
            {"step": [1.0, 2.5], "prompt_id": ["a", "b"], "reward": [1, 0]},
            r"row 1, column 'step': 1\.0 is not an integer",
        ),
        ({"step": [1, 2], "prompt_id": ["a", "b"]}, r"missing column 'reward'"),
        (
            {"step": ["1", "2"], "prompt_id": ["a", "b"], "reward": [1, 0]},
            r"row 1, column 'step': '1' is not an integer",
        ),
        (
            {"step": [True, False], "prompt_id": ["a", "b"], "reward": [1, 0]},
            r"row 1, column 'step': True is not an integer",
        ),
        (
            {"step": [1, 2], "prompt_id": [1.5, 2.5], "reward": [1, 0]},
            r"row 1, column 'prompt_id': 1\.5 is not a prompt id",
        ),
    ],
)
def test_bad_parquet_tables(tmp_path, columns, match):
    columns = {"prompt_id": columns.pop("prompt_id"), **columns}
    fails([write_parquet(tmp_path / "t.parquet", columns)], r"t\.parquet: " + match)


def test_trl_row_without_any_reward(tmp_path):
    path = write_parquet(tmp_path / "completions_00001.parquet", {
        "step": [1, 1], "prompt": ["p", "p"], "completion": ["a", "b"],
        "accuracy": [1.0, float("nan")], "advantage": [0.0, 0.0],
    })  # fmt: skip
    fails([path], r"row 2: no reward \(every reward column, 'accuracy', is empty\)")


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"not parquet at all")
    fails([path], r"t\.parquet: not a readable Parquet file")


# ----------------------------------------------------------- fast == reference
FIELDS = (
    Field("input", "text"),
    Field("score", "number"),
    Field("step", "integer"),
    Field("index", "identifier", required=False),
)
values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip
records = st.dictionaries(
    st.sampled_from(["input", "score", "step", "index", "output", "other"]), values, max_size=6
)
raw_lines = st.one_of(
    records.map(json.dumps),
    st.just(""),
    st.just("   "),
    st.sampled_from(
        [
            '{"input": "a", "score": NaN, "step": 1}',
            '{"input": "a",',
            "[]",
            "1",
            '{"input": "a", "score": 1, "step": 1, "input": 2}',
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(raw_lines, max_size=6))
def test_fast_decoder_agrees_with_the_reference(lines):
    data = "\n".join(lines).encode("utf-8")
    fast = JsonLinesReader(FIELDS, fast=True)
    assert fast.fast
    reference = JsonLinesReader(FIELDS, fast=False)
    try:
        expected = reference.decode("f", data, lambda: 0).columns
    except InputFileError as error:
        with pytest.raises(InputFileError) as caught:
            fast.decode("f", data, lambda: 0)
        assert str(caught.value) == str(error)
        return
    got = fast.decode("f", data, lambda: 0).columns
    assert got == expected
    for name in ("score",):
        assert all(type(v) in (float, bool) for v in got[name])


def test_blocks_split_lines_exactly(tmp_path):
    lines = [json.dumps({"input": "é" * i, "score": i % 2, "step": i}) for i in range(50)]
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")  # no final newline
    reader = JsonLinesReader(FIELDS[:3])
    for size in (1, 7, 100, 10_000):
        steps = [s for block in reader.blocks(str(path), size) for s in block.columns["step"]]
        assert steps == list(range(50))


def test_error_messages_are_one_line_and_name_the_file(tmp_path):
    message = fails([verl_dump(tmp_path, ['{"input":\n'])], r"line 1: not valid JSON")
    assert re.match(r".*3\.jsonl: line 1", message)

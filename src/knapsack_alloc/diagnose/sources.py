"""Find the files of a run and tell their format."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from knapsack_alloc.exceptions import InputFileError

#: Formats :func:`find_sources` recognises.
FORMATS = ("verl", "table", "trl")
#: File name endings read from a directory.
SUFFIXES = (".jsonl", ".ndjson", ".csv", ".parquet")
#: Fields of a verl rollout dump line that tell the format apart.
VERL_FIELDS = frozenset({"input", "step"})
#: Columns of the table format.
TABLE_COLUMNS = ("step", "prompt_id", "reward")
#: Columns of TRL's completions tables that tell the format apart.
TRL_COLUMNS = frozenset({"step", "prompt", "completion"})


@dataclass(frozen=True)
class Sources:
    """The files of one run, all of one format.

    Attributes
    ----------
    files : tuple of str
        In natural order (``2.jsonl`` before ``10.jsonl``).
    format : {'verl', 'table', 'trl'}
    """

    files: tuple[str, ...]
    format: str


def find_sources(paths: list[str], format: str = "auto") -> Sources:
    """Expand ``paths`` (files and directories) into a run's files and detect their format.

    Parameters
    ----------
    paths : list of str
        Files, or directories whose ``.jsonl``/``.ndjson``/``.csv``/``.parquet``
        files are read (not recursively; a TRL ``output_dir`` is read through
        its ``completions`` folder).
    format : {'auto', 'verl', 'table', 'trl'}
        ``'auto'`` detects it from each file's first record or columns.

    Returns
    -------
    Sources

    Raises
    ------
    InputFileError
        If a path is missing or empty, a file's format is unknown, or the
        files are of different formats.
    """
    if format != "auto" and format not in FORMATS:
        raise InputFileError(format, f"unknown format; use one of auto, {', '.join(FORMATS)}")
    files: list[str] = []
    for path in paths:
        files.extend(_expand(path))
    if not files:
        raise InputFileError(", ".join(paths) or "(no path)", "no input files given")
    seen: dict[str, str] = {}
    for file in files:
        detected = format if format != "auto" else detect_format(file)
        seen.setdefault(detected, file)
        if len(seen) > 1:
            (first, one), (second, other) = list(seen.items())[:2]
            raise InputFileError(
                other,
                f"is in the {second} format but {one} is in the {first} format; "
                "one run is read from files of one format",
            )
    return Sources(tuple(dict.fromkeys(files)), next(iter(seen)))


def _expand(path: str) -> list[str]:
    if os.path.isdir(path):
        files = _data_files(path)
        if not files:
            completions = os.path.join(path, "completions")
            if os.path.isdir(completions):
                files = _data_files(completions)
        if not files:
            raise InputFileError(
                path, f"no rollout files ({', '.join(SUFFIXES)}) in this directory"
            )
        return files
    if not os.path.exists(path):
        raise InputFileError(path, "no such file or directory")
    return [path]


def _data_files(folder: str) -> list[str]:
    names = [
        name
        for name in os.listdir(folder)
        if not name.startswith(".")
        and name.lower().endswith(SUFFIXES)
        and os.path.isfile(os.path.join(folder, name))
    ]
    return [os.path.join(folder, name) for name in sorted(names, key=natural_key)]


def natural_key(name: str) -> list[int | str]:
    """Sort key putting ``2.jsonl`` before ``10.jsonl``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def detect_format(path: str) -> str:
    """Tell a file's format from its first record (JSON lines) or its columns.

    Parameters
    ----------
    path : str

    Returns
    -------
    {'verl', 'table', 'trl'}
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "table"
    if suffix == ".parquet":
        return _parquet_format(path)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _json_lines_format(path)
    raise InputFileError(
        path, f"unknown file type {suffix!r}; use .jsonl, .csv or .parquet, or pass --format"
    )


def _json_lines_format(path: str) -> str:
    from knapsack_alloc.diagnose.jsonlines import Field, JsonLinesReader

    with open(path, "rb") as handle:
        number, raw = 0, b""
        for number, raw in enumerate(handle, start=1):  # noqa: B007 - used after the loop
            if raw.strip():
                break
        else:
            raise InputFileError(path, "no rollouts in this file (a step without groups)")
    # The reference decoder gives the exact error for a broken first line.
    JsonLinesReader((Field("_", "text", required=False),), fast=False).decode(
        path, raw, lambda: number - 1
    )
    keys = set(json.loads(raw))
    if keys >= VERL_FIELDS:
        return "verl"
    if {"step", "prompt_id"} <= keys:
        return "table"
    present = ", ".join(repr(key) for key in sorted(keys)[:12]) or "none"
    raise InputFileError(
        path,
        f"line {number}: cannot tell the format from the fields ({present}); a verl rollout dump "
        "has 'input', 'score' and 'step', a table 'step', 'prompt_id' and 'reward' "
        "(or pass --format)",
    )


def _parquet_format(path: str) -> str:
    from knapsack_alloc.diagnose.tables import parquet_schema_names

    names = set(parquet_schema_names(path))
    if "prompt_id" in names:
        return "table"
    if names >= TRL_COLUMNS:
        return "trl"
    present = ", ".join(repr(name) for name in sorted(names)[:12]) or "none"
    raise InputFileError(
        path,
        f"cannot tell the format from the columns ({present}); a table has 'step', "
        "'prompt_id' and 'reward', a TRL completions table 'step', 'prompt' and 'completion' "
        "(or pass --format)",
    )

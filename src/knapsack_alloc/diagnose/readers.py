"""Turn a run's files, in any of the supported formats, into batches of rollouts."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.diagnose.jsonlines import Block, Field, JsonLinesReader
from knapsack_alloc.diagnose.prompts import PromptRegistry, RolloutBatch, hash64
from knapsack_alloc.diagnose.sources import TABLE_COLUMNS, Sources
from knapsack_alloc.diagnose.tables import TableBlock, csv_blocks, parquet_blocks
from knapsack_alloc.exceptions import InputFileError

#: Reward field read by default, per format (TRL: the sum of its reward columns).
DEFAULT_REWARD = {"verl": "score", "table": "reward"}
#: TRL completions columns that are not rewards.
TRL_RESERVED = frozenset({"step", "prompt", "completion", "advantage", "image", "images"})
# verl's v1 trainer writes uid as "{prompt uid}_{session}_{output}"; the group is the prompt uid.
_V1_UID = re.compile(r"^(.*)_\d+_\d+$")


@dataclass
class ReadLog:
    """What reading a run found besides the rollouts.

    Attributes
    ----------
    reward : str
        Where rewards came from, e.g. ``"field 'score'"``.
    decoder : str
        What parsed the files (``msgspec``, ``json``, ``csv``, ``pyarrow``).
    grouping : str
        How rollouts were grouped, e.g. ``"step and prompt text"``.
    skipped : list of str
        Files left out because they repeat an earlier file (TRL logs the
        latest generation batch at every logging step).
    """

    reward: str = ""
    decoder: str = ""
    grouping: str = ""
    skipped: list[str] = field(default_factory=list)


class RunReader:
    """Read the files of one run as :class:`RolloutBatch` es.

    Parameters
    ----------
    sources : Sources
        The run's files and their format.
    reward_field : str, optional
        Field or column holding the reward: default ``score`` (verl),
        ``reward`` (table), the sum of the reward columns (TRL; give
        several names separated by commas to add them up).
    fast : bool, default True
        Decode JSON lines with msgspec when it is installed.
    """

    def __init__(self, sources: Sources, *, reward_field: str | None = None, fast: bool = True):
        self.sources = sources
        self.reward_field = reward_field
        self.fast = fast
        self.registry = PromptRegistry()
        self.log = ReadLog()
        self._verl_reader: JsonLinesReader | None = None
        self._uid = self._index = False
        self._trl_rewards: list[str] | None = None
        self._trl_fingerprints: set[bytes] = set()

    def batches(self) -> Iterator[RolloutBatch]:
        """Yield every file's rollouts, in blocks.

        Raises
        ------
        InputFileError
            On the first problem in a file; see :mod:`knapsack_alloc.diagnose`.
        """
        read = {"verl": self._verl, "table": self._table, "trl": self._trl}[self.sources.format]
        for path in self.sources.files:
            found = 0
            for batch in read(path):
                found += len(batch)
                yield batch
            if not found and path not in self.log.skipped:
                raise InputFileError(path, "no rollouts in this file (a step without groups)")

    # ------------------------------------------------------------------ verl
    def _verl(self, path: str) -> Iterator[RolloutBatch]:
        reward = self.reward_field or DEFAULT_REWARD["verl"]
        if self._verl_reader is None:
            first = _first_record(self.sources.files[0])
            self._uid = first.get("uid") is not None
            self._index = first.get("index") is not None
            fields = [Field("input", "text"), Field(reward, "number"), Field("step", "integer")]
            if self._uid:
                fields.append(Field("uid", "text"))
            if self._index:
                fields.append(Field("index", "identifier", required=False))
            self._verl_reader = JsonLinesReader(tuple(fields), fast=self.fast)
            self.log.reward = f"field {reward!r}"
            self.log.decoder = "msgspec" if self._verl_reader.fast else "json (standard library)"
            self.log.grouping = (
                f"step and {'uid' if self._uid else 'prompt text'}; prompts matched across "
                f"steps by their text{', labelled by index' if self._index else ''}"
            )
        reader = self._verl_reader
        for block in reader.blocks(path):
            if not block.size:
                continue
            columns = block.columns
            texts = columns["input"]
            # Prompts are matched by their text: index values repeat across the data
            # sources of a mixed dataset, so index only labels them.
            labels = columns["index"] if self._index else None
            prompts = self.registry.ids(texts, labels=labels, digest=True)
            if self._uid:
                groups = hash64([_uid_group(uid) for uid in columns["uid"]])
            else:
                groups = np.zeros(block.size, dtype=np.int64)
            yield RolloutBatch(
                steps=_json_steps(path, block),
                prompts=prompts,
                groups=groups,
                rewards=np.asarray(columns[reward], dtype=np.float64),
            )

    # ----------------------------------------------------------------- table
    def _table(self, path: str) -> Iterator[RolloutBatch]:
        step, prompt, _ = TABLE_COLUMNS
        reward = self.reward_field or DEFAULT_REWARD["table"]
        self.log.reward = f"column {reward!r}"
        self.log.grouping = "step and prompt_id"
        suffix = os.path.splitext(path)[1].lower()
        if suffix in (".jsonl", ".ndjson", ".json"):
            reader = JsonLinesReader(
                (Field(step, "integer"), Field(prompt, "identifier"), Field(reward, "number")),
                fast=self.fast,
            )
            self.log.decoder = "msgspec" if reader.fast else "json (standard library)"
            for block in reader.blocks(path):
                if block.size:
                    yield RolloutBatch(
                        steps=_json_steps(path, block),
                        prompts=self.registry.ids(block.columns[prompt]),
                        groups=np.zeros(block.size, dtype=np.int64),
                        rewards=np.asarray(block.columns[reward], dtype=np.float64),
                    )
            return
        names = (step, prompt, reward)
        if suffix == ".parquet":
            self.log.decoder = "pyarrow"
            blocks = parquet_blocks(path, names)
        else:
            self.log.decoder = "csv (standard library)"
            blocks = csv_blocks(path, names)
        for table in blocks:
            yield RolloutBatch(
                steps=table.integers(step),
                prompts=self.registry.ids(table.identifiers(prompt)),
                groups=np.zeros(table.size, dtype=np.int64),
                rewards=table.numbers(reward),
            )

    # ------------------------------------------------------------------- trl
    def _trl(self, path: str) -> Iterator[RolloutBatch]:
        from knapsack_alloc.diagnose.tables import parquet_schema_names

        if not path.lower().endswith(".parquet"):
            raise InputFileError(path, "TRL completions are read from Parquet files")
        names = parquet_schema_names(path)
        rewards = self._trl_reward_columns(path, names)
        wanted = ("step", "prompt", *(["completion"] if "completion" in names else []), *rewards)
        blocks = list(parquet_blocks(path, wanted, block_rows=1 << 30))
        if not blocks:
            return
        (table,) = blocks  # a completions file holds one generation batch
        prompts = [_prompt_text(p) for p in table.columns["prompt"]]
        for index, text in enumerate(prompts):
            if not text:
                raise table.fail("prompt", index, "the prompt is empty")
        per_column = np.column_stack([_reward_column(table, name) for name in rewards])
        missing = np.flatnonzero(np.isnan(per_column).all(axis=1))
        if missing.size:
            index = int(missing[0])
            listed = ", ".join(repr(name) for name in rewards)
            raise InputFileError(
                path,
                f"row {table.first_row + index}: no reward (every reward column, {listed}, "
                "is empty)",
            )
        total = np.nansum(per_column, axis=1)
        completions = table.columns.get("completion")
        fingerprint = hashlib.blake2b(
            json.dumps([prompts, [_prompt_text(c) for c in completions or []]]).encode()
            + total.tobytes(),
            digest_size=16,
        ).digest()
        if fingerprint in self._trl_fingerprints:
            self.log.skipped.append(path)
            return
        self._trl_fingerprints.add(fingerprint)
        yield RolloutBatch(
            steps=table.integers("step"),
            prompts=self.registry.ids(prompts, digest=True),
            groups=np.zeros(table.size, dtype=np.int64),
            rewards=total,
        )

    def _trl_reward_columns(self, path: str, names: list[str]) -> list[str]:
        if self.reward_field:
            chosen = [name.strip() for name in self.reward_field.split(",")]
            for name in chosen:
                if name not in names:
                    shown = ", ".join(repr(c) for c in names[:12])
                    raise InputFileError(path, f"missing column {name!r} (columns: {shown})")
        else:
            chosen = [name for name in names if name not in TRL_RESERVED and _numeric(path, name)]
            if not chosen:
                shown = ", ".join(repr(c) for c in names[:12])
                raise InputFileError(
                    path,
                    f"no numeric reward column (columns: {shown}); name one with --reward-field",
                )
        if self._trl_rewards is None:
            self._trl_rewards = chosen
            self.log.reward = " + ".join(f"column {name!r}" for name in chosen)
            self.log.decoder = "pyarrow"
            self.log.grouping = "step and prompt text"
        elif chosen != self._trl_rewards:
            raise InputFileError(
                path,
                f"reward columns {chosen} differ from those of the first file "
                f"{self._trl_rewards}; name them with --reward-field",
            )
        return chosen


def _numeric(path: str, name: str) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as parquet

    kind = parquet.ParquetFile(path).schema_arrow.field(name).type
    return bool(
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    )


def _reward_column(table: TableBlock, name: str) -> NDArray[np.float64]:
    cells = table.columns[name]
    if isinstance(cells, np.ndarray):
        return cells.astype(np.float64)
    # A reward function may return None for a rollout: TRL adds the others (nansum).
    values = [np.nan if cell is None else cell for cell in cells]
    for index, value in enumerate(values):
        if isinstance(value, str) or not isinstance(value, (int, float)):
            raise table.fail(name, index, f"{value!r} is not a number")
    array = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(np.isinf(array))
    if bad.size:
        raise table.fail(name, int(bad[0]), f"{values[int(bad[0])]!r} is not a finite number")
    return array


def _prompt_text(prompt: Any) -> str:
    """Key a conversational prompt (a list of messages) by canonical JSON, text as is."""
    if isinstance(prompt, str):
        return prompt
    return json.dumps(prompt, ensure_ascii=False, sort_keys=True)


def _uid_group(uid: str) -> str:
    match = _V1_UID.match(uid)
    return match.group(1) if match else uid


def _json_steps(path: str, block: Block) -> NDArray[np.int64]:
    steps = block.columns["step"]
    try:
        return np.asarray(steps, dtype=np.int64)
    except OverflowError:
        index = next(i for i, s in enumerate(steps) if not -(2**63) <= s < 2**63)
        raise InputFileError(
            path, f"line {block.line_of(index)}, field 'step': {steps[index]} is out of range"
        ) from None


def _first_record(path: str) -> dict[str, Any]:
    with open(path, "rb") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    record = json.loads(raw)
                except ValueError:
                    return {}  # the block reader reports the broken line
                return record if isinstance(record, dict) else {}
    return {}

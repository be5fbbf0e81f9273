"""Read per-prompt tables (CSV, JSON lines, Parquet) and write allocations."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import KnapsackAllocError


class CommandError(KnapsackAllocError):
    """A problem the user can fix; the command prints it as one line and exits 2."""


@dataclass(frozen=True)
class Table:
    """Columns of a per-prompt input file, as read (values are not parsed yet).

    Attributes
    ----------
    path : str
        The file, for error messages.
    columns : dict of str to list
        Column name to its cells, in row order.
    first_row : int
        Line number of the first data row (2 for CSV with a header, 1 for
        JSON lines); Parquet rows are counted from 1.
    """

    path: str
    columns: dict[str, list[Any]]
    first_row: int

    @property
    def rows(self) -> int:
        """Number of data rows."""
        return len(next(iter(self.columns.values()), []))

    def require(self, name: str) -> list[Any]:
        """Cells of column ``name``, or a clear error naming the file and columns."""
        if name not in self.columns:
            present = ", ".join(repr(c) for c in self.columns) or "none"
            raise CommandError(f"{self.path}: missing column {name!r} (columns: {present})")
        return self.columns[name]

    def numbers(self, name: str) -> NDArray[np.float64]:
        """Column ``name`` as finite floats; names file, row and column on a bad cell."""
        cells = self.require(name)
        values = np.empty(len(cells), dtype=np.float64)
        for index, cell in enumerate(cells):
            try:
                value = float(cell)
            except (TypeError, ValueError):
                value = math.nan
            if isinstance(cell, bool) or not math.isfinite(value):
                raise CommandError(
                    f"{self.path}: row {self.first_row + index}, column {name!r}: "
                    f"{cell!r} is not a finite number"
                )
            values[index] = value
        return values

    def fail(self, name: str, index: int, problem: str) -> CommandError:
        """Build the error for one cell."""
        row = self.first_row + index
        return CommandError(f"{self.path}: row {row}, column {name!r}: {problem}")


def read_table(path: str) -> Table:
    """Read ``path`` by its extension: ``.csv``, ``.jsonl``/``.ndjson`` or ``.parquet``.

    Parameters
    ----------
    path : str
        File to read.

    Returns
    -------
    Table
    """
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{path}: no such file")
    suffix = file.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix in (".jsonl", ".ndjson"):
        return _read_json_lines(path)
    if suffix in (".csv", ".txt", ""):
        return _read_csv(path)
    raise CommandError(f"{path}: unknown file type {suffix!r}; use .csv, .jsonl or .parquet")


def _read_csv(path: str) -> Table:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise CommandError(f"{path}: the file is empty (expected a header row)")
        names = [name.strip() for name in header]
        columns: dict[str, list[Any]] = {name: [] for name in names}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(names):
                raise CommandError(
                    f"{path}: row {line} has {len(row)} fields, the header has {len(names)}"
                )
            for name, cell in zip(names, row, strict=True):
                columns[name].append(cell.strip())
    return Table(path, columns, first_row=2)


def _read_json_lines(path: str) -> Table:
    records: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise CommandError(f"{path}: row {line}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise CommandError(f"{path}: row {line}: expected a JSON object per line")
            records.append(record)
    names = list(dict.fromkeys(key for record in records for key in record))
    columns = {name: [record.get(name) for record in records] for name in names}
    return Table(path, columns, first_row=1)


def _read_parquet(path: str) -> Table:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise CommandError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow), "
            "or convert the file to CSV"
        ) from None
    data = parquet.read_table(path).to_pydict()
    return Table(path, {str(name): list(cells) for name, cells in data.items()}, first_row=1)


def format_seconds(value: float) -> str:
    """Format a duration with three significant digits in s, ms or us."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-6:.3g} us"


def write_allocation(
    prompt_ids: Iterable[Any], counts: NDArray[np.int64], output: str | None
) -> None:
    """Write ``prompt_id,rollouts`` rows to ``output`` (atomically) or to stdout."""
    if output is None:
        _write_rows(sys.stdout, prompt_ids, counts)
        return
    folder = os.path.dirname(os.path.abspath(output))
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".knapsack-alloc-", suffix=".csv")
    try:
        with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
            _write_rows(handle, prompt_ids, counts)
        os.replace(temporary, output)
    except BaseException:
        os.unlink(temporary)
        raise


def _write_rows(handle: TextIO, prompt_ids: Iterable[Any], counts: NDArray[np.int64]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["prompt_id", "rollouts"])
    writer.writerows(zip(prompt_ids, counts.tolist(), strict=True))

"""Read columns of CSV and Parquet files in blocks, with exact errors for bad cells."""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import InputFileError, MissingDependencyError

#: Rows converted at a time.
BLOCK_ROWS = 1 << 18
_BOOLEANS = {"true": 1.0, "false": 0.0}


@dataclass(frozen=True)
class TableBlock:
    """Cells of some columns for consecutive rows of a file.

    Attributes
    ----------
    path : str
    columns : dict of str to list or numpy.ndarray
        Column name to its cells (strings for CSV, values for Parquet).
    first_row : int
        Row number of the block's first row, as the error messages count
        rows: from 2 in a CSV file (the header is row 1), from 1 in Parquet.
    text : bool
        Whether the cells are strings to parse (CSV).
    """

    path: str
    columns: dict[str, Any]
    first_row: int
    text: bool

    @property
    def size(self) -> int:
        """Number of rows."""
        return len(next(iter(self.columns.values()), []))

    def fail(self, name: str, index: int, problem: str) -> InputFileError:
        """Build the error for the cell of column ``name`` in the block's row ``index``."""
        return InputFileError(
            self.path, f"row {self.first_row + index}, column {name!r}: {problem}"
        )

    def integers(self, name: str) -> NDArray[np.int64]:
        """Column ``name`` as int64, or the error for its first bad cell."""
        cells = self.columns[name]
        if isinstance(cells, np.ndarray):
            if cells.dtype.kind in "iu":
                return cells.astype(np.int64)
            cells = cells.tolist()
        if self.text or all(type(cell) is int for cell in cells):
            try:
                return np.asarray(cells, dtype=np.int64)
            except (TypeError, ValueError, OverflowError):
                pass
        for index, cell in enumerate(cells):
            try:
                parsable = isinstance(cell, int) or (self.text and isinstance(cell, str))
                if not parsable or isinstance(cell, bool):
                    raise ValueError(cell)
                np.int64(int(cell))
            except (TypeError, ValueError, OverflowError):
                raise self.fail(name, index, f"{_show(cell)} is not an integer") from None
        raise AssertionError("numpy rejected integers that int() accepts")  # pragma: no cover

    def numbers(self, name: str) -> NDArray[np.float64]:
        """Column ``name`` as finite float64 (booleans as 1 and 0), or the error for a bad cell."""
        cells = self.columns[name]
        if isinstance(cells, np.ndarray):
            values = cells.astype(np.float64)
        else:
            try:
                values = np.asarray(cells, dtype=np.float64)
                if not self.text and not all(isinstance(c, (int, float)) for c in cells):
                    raise TypeError("cells of another type")
            except (TypeError, ValueError):
                values = np.array(
                    [_number(self, name, i, c) for i, c in enumerate(cells)], dtype=np.float64
                )
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            index = int(bad[0])
            raise self.fail(name, index, f"{_show(cells[index])} is not a finite number")
        return values

    def identifiers(self, name: str) -> list[Any]:
        """Column ``name`` as a list of ints or non-empty strings."""
        cells = self.columns[name]
        values = cells.tolist() if isinstance(cells, np.ndarray) else list(cells)
        for index, cell in enumerate(values):
            if cell is None or cell == "" or isinstance(cell, (bool, float)):
                raise self.fail(
                    name, index, f"{_show(cell)} is not a prompt id (an int or a string)"
                )
        return values


def _number(block: TableBlock, name: str, index: int, cell: Any) -> float:
    if block.text and isinstance(cell, str):
        if cell.strip().lower() in _BOOLEANS:
            return _BOOLEANS[cell.strip().lower()]
        try:
            return float(cell)
        except ValueError:
            pass
    elif isinstance(cell, (int, float)):
        try:
            return float(cell)
        except OverflowError:
            return math.inf
    raise block.fail(name, index, f"{_show(cell)} is not a number")


def _show(cell: Any) -> str:
    text = repr(cell.item() if isinstance(cell, np.generic) else cell)
    return text if len(text) <= 40 else text[:37] + "..."


def csv_blocks(
    path: str, names: tuple[str, ...], block_rows: int | None = None
) -> Iterator[TableBlock]:
    """Yield the columns ``names`` of a CSV file with a header row, in blocks.

    The first two names are an integer and an identifier column, the last a
    number column. pyarrow's CSV reader parses the file when it is
    installed; the standard library's :mod:`csv` takes over from the first
    block pyarrow cannot parse or that holds a bad cell, and gives the exact
    error. Rows are counted from the header (row 1); blank lines are skipped
    and not counted.

    Raises
    ------
    InputFileError
        If a column is missing, the file is empty, or a row is bad.
    """
    block_rows = block_rows or BLOCK_ROWS
    done = 0
    for block in _arrow_csv_blocks(path, names, block_rows):
        if block is None:
            break
        yield block
        done += block.size
    else:
        return
    yield from _stdlib_csv_blocks(path, names, block_rows, skip=done)


def _arrow_csv_blocks(
    path: str, names: tuple[str, ...], block_rows: int
) -> Iterator[TableBlock | None]:
    """Blocks parsed by pyarrow; None when the rest must be read by the standard library."""
    try:
        import pyarrow as pa
        import pyarrow.csv as arrow_csv
    except ImportError:
        yield None
        return
    integer, identifier, number = names
    options = arrow_csv.ConvertOptions(
        include_columns=list(names),
        column_types={integer: pa.int64(), identifier: pa.string(), number: pa.float64()},
        null_values=[],
        strings_can_be_null=False,
    )
    try:
        reader = arrow_csv.open_csv(
            path, read_options=arrow_csv.ReadOptions(block_size=32 * block_rows),
            convert_options=options,
        )  # fmt: skip
        first = 2
        for batch in reader:
            block = TableBlock(
                path, {name: _arrow_values(batch.column(name)) for name in names}, first, text=False
            )
            cells = block.columns[identifier]
            if not np.isfinite(block.columns[number]).all() or "" in cells or None in cells:
                yield None  # the standard library names the bad cell
                return
            yield block
            first += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowException, KeyError, ValueError):
        yield None


def _stdlib_csv_blocks(
    path: str, names: tuple[str, ...], block_rows: int, skip: int
) -> Iterator[TableBlock]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        first = 2
        try:
            header = next(reader, None)
            if header is None:
                raise InputFileError(path, "the file is empty (expected a header row)")
            header = [name.strip() for name in header]
            where = [_column_index(path, header, name) for name in names]
            while skip > 0:
                skipped = sum(1 for row in itertools.islice(reader, skip) if row)
                first += skipped
                skip -= skipped
            while rows := list(itertools.islice(reader, block_rows)):
                if not all(rows):
                    rows = [row for row in rows if row]
                widths = set(map(len, rows))
                if widths != {len(header)}:
                    bad = next(i for i, row in enumerate(rows) if len(row) != len(header))
                    raise InputFileError(
                        path,
                        f"row {first + bad} has {len(rows[bad])} fields, the header has "
                        f"{len(header)}",
                    )
                columns = list(zip(*rows, strict=True)) if rows else []
                yield TableBlock(
                    path,
                    {
                        name: list(map(str.strip, columns[i]))
                        for name, i in zip(names, where, strict=True)
                    },
                    first,
                    text=True,
                )
                first += len(rows)
        except (csv.Error, UnicodeDecodeError) as error:
            raise InputFileError(path, f"not readable as CSV ({error})") from None


def _column_index(path: str, header: list[str], name: str) -> int:
    if name not in header:
        present = ", ".join(repr(c) for c in header[:12]) or "none"
        raise InputFileError(path, f"missing column {name!r} (columns: {present})")
    return header.index(name)


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise MissingDependencyError(
            "reading Parquet needs pyarrow: pip install 'knapsack-alloc[parquet]'"
        ) from None
    return parquet


def parquet_schema_names(path: str) -> list[str]:
    """Column names of a Parquet file."""
    parquet = _pyarrow_parquet()
    try:
        return list(parquet.ParquetFile(path).schema_arrow.names)
    except Exception as error:  # pyarrow raises its own types for corrupt files
        raise InputFileError(path, f"not a readable Parquet file ({error})") from None


def parquet_blocks(
    path: str, names: tuple[str, ...], block_rows: int = BLOCK_ROWS
) -> Iterator[TableBlock]:
    """Yield the columns ``names`` of a Parquet file in blocks (values, not strings)."""
    parquet = _pyarrow_parquet()
    try:
        handle = parquet.ParquetFile(path)
    except Exception as error:
        raise InputFileError(path, f"not a readable Parquet file ({error})") from None
    present = list(handle.schema_arrow.names)
    for name in names:
        if name not in present:
            shown = ", ".join(repr(c) for c in present[:12]) or "none"
            raise InputFileError(path, f"missing column {name!r} (columns: {shown})")
    first = 1
    for batch in handle.iter_batches(batch_size=block_rows, columns=list(names)):
        columns = {name: _arrow_values(batch.column(name)) for name in names}
        yield TableBlock(path, columns, first, text=False)
        first += batch.num_rows


def _arrow_values(column: Any) -> Any:
    """Numbers as a numpy array when they have no nulls, anything else as a list."""
    import pyarrow as pa

    kind = column.type
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    if numeric and column.null_count == 0:
        return column.to_numpy(zero_copy_only=False)
    return column.to_pylist()

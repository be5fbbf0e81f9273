"""Read selected fields of a JSON-lines file in blocks, in bounded memory.

Each block is decoded in one call by msgspec when it is installed (the
``diagnose`` extra): it skips the fields nobody asked for without building
Python objects for them. The standard library's :mod:`json`, one line at a
time, is the fallback and the reference: it is what locates the exact line
and problem when a block fails to decode, and the tests check that both
paths agree.
"""

from __future__ import annotations

import json
import math
import mmap
import operator
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from knapsack_alloc.exceptions import InputFileError

#: Bytes read at a time; a block ends at the last newline inside it.
BLOCK_BYTES = 8 << 20
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)

Kind = Literal["text", "number", "integer", "identifier"]
_KIND_NAMES = {
    "text": "a string",
    "number": "a finite number",
    "integer": "an integer",
    "identifier": "an integer or a string",
}


@dataclass(frozen=True)
class Field:
    """One field to read from every line.

    Attributes
    ----------
    name : str
        The key in each JSON object.
    kind : {'text', 'number', 'integer', 'identifier'}
        ``number`` accepts ints, floats and booleans (as 1.0 and 0.0) and
        returns floats; ``identifier`` accepts ints and strings.
    required : bool
        Whether a line without the field is an error (else it reads as None).
    """

    name: str
    kind: Kind
    required: bool = True


@dataclass(frozen=True)
class Block:
    """Columns of the lines of one block.

    Attributes
    ----------
    columns : dict of str to list
        Field name to its values, one per non-blank line.
    data : bytes or memoryview
        The block's bytes, to locate a record's line for an error message.
    count_lines_before : callable
        Returns the number of lines in the file before the block (counted
        only when an error needs a line number).
    """

    columns: dict[str, list[Any]]
    data: bytes | memoryview
    count_lines_before: Callable[[], int]

    @property
    def size(self) -> int:
        """Number of records."""
        return len(next(iter(self.columns.values()), []))

    def line_of(self, index: int) -> int:
        """Line number (from 1) of record ``index`` (blank lines hold no record)."""
        seen = -1
        lines = bytes(self.data).split(b"\n")
        for number, raw in enumerate(lines, start=self.count_lines_before() + 1):
            if raw.strip():
                seen += 1
                if seen == index:
                    return number
        raise IndexError(index)


def msgspec_available() -> bool:
    """Whether the fast decoder (msgspec) can be imported."""
    try:
        import msgspec  # noqa: F401
    except ImportError:
        return False
    return True


class JsonLinesReader:
    """Decode the ``fields`` of JSON-lines files.

    Parameters
    ----------
    fields : sequence of Field
        What to read; other keys of each object are skipped.
    fast : bool, default True
        Use msgspec when installed; False forces the standard library.
    """

    def __init__(self, fields: tuple[Field, ...], *, fast: bool = True) -> None:
        self.fields = fields
        self._decoder = _msgspec_decoder(fields) if fast and msgspec_available() else None

    @property
    def fast(self) -> bool:
        """Whether blocks are decoded by msgspec."""
        return self._decoder is not None

    def blocks(self, path: str, block_bytes: int = BLOCK_BYTES) -> Iterator[Block]:
        """Yield the file's records in blocks of about ``block_bytes`` bytes of whole lines.

        The file is memory-mapped: blocks are views of the page cache, not copies.

        Raises
        ------
        InputFileError
            On the first line that is not a JSON object with the fields.
        """
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                return
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                start = released = 0
                while start < size:
                    stop = size
                    if start + block_bytes < size:
                        cut = mapped.rfind(b"\n", start, start + block_bytes)
                        if cut < 0:
                            cut = mapped.find(b"\n", start + block_bytes)
                        stop = size if cut < 0 else cut + 1
                    with memoryview(mapped)[start:stop] as view:
                        yield self.decode(path, view, _lines_before(mapped, start))
                    start = stop
                    # Drop the pages read from this process's memory: it stays bounded
                    # however large the file (they remain in the page cache).
                    done = start // mmap.PAGESIZE * mmap.PAGESIZE
                    if _DONTNEED is not None and done > released:
                        mapped.madvise(_DONTNEED, released, done - released)
                        released = done

    def decode(
        self, path: str, data: bytes | memoryview, count_lines_before: Callable[[], int]
    ) -> Block:
        """Decode one block of whole lines; ``count_lines_before()`` gives its line offset."""
        if self._decoder is not None:
            try:
                rows = self._decoder.decode_lines(data)
            except Exception:  # msgspec's errors do not name lines; the reference path does
                pass
            else:
                columns = {
                    field.name: list(map(operator.attrgetter(_attribute(i)), rows))
                    for i, field in enumerate(self.fields)
                }
                return Block(columns, data, count_lines_before)
        return self.decode_reference(path, data, count_lines_before)

    def decode_reference(
        self, path: str, data: bytes | memoryview, count_lines_before: Callable[[], int]
    ) -> Block:
        """Decode line by line with :mod:`json`; raise the exact error for a bad line."""
        columns: dict[str, list[Any]] = {field.name: [] for field in self.fields}
        first = count_lines_before() + 1
        for number, raw in enumerate(bytes(data).split(b"\n"), start=first):
            if not raw.strip():
                continue
            record = _parse_line(path, number, raw)
            for field in self.fields:
                columns[field.name].append(_check_value(path, number, record, field))
        return Block(columns, data, count_lines_before)


def _lines_before(mapped: mmap.mmap, offset: int) -> Callable[[], int]:
    return lambda: mapped[:offset].count(b"\n")


def _parse_line(path: str, number: int, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputFileError(
            path, f"line {number}: not valid UTF-8 (byte {error.start + 1} of the line)"
        ) from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputFileError(
            path, f"line {number}: not valid JSON ({error.msg} at column {error.colno})"
        ) from None
    except RecursionError:
        raise InputFileError(path, f"line {number}: JSON nested too deeply") from None
    if not isinstance(record, dict):
        raise InputFileError(
            path, f"line {number}: expected a JSON object, got {_json_type(record)}"
        )
    return record


def _check_value(path: str, number: int, record: dict[str, Any], field: Field) -> Any:
    if field.name not in record:
        if not field.required:
            return None
        present = ", ".join(repr(key) for key in list(record)[:12]) or "none"
        raise InputFileError(path, f"line {number}: no {field.name!r} field (fields: {present})")
    value = record[field.name]
    if value is None and not field.required:
        return None
    kind = field.kind
    ok: bool
    if kind == "text":
        ok = isinstance(value, str)
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "identifier":
        ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    else:
        ok = isinstance(value, (int, float))
        if ok:
            try:
                value = float(value)
            except OverflowError:
                ok = False
            else:
                ok = math.isfinite(value)
    if not ok:
        shown = json.dumps(value, ensure_ascii=False)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise InputFileError(
            path, f"line {number}, field {field.name!r}: {shown} is not {_KIND_NAMES[kind]}"
        )
    return value


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _attribute(index: int) -> str:
    return f"f{index}"


def _msgspec_decoder(fields: tuple[Field, ...]) -> Any:
    import msgspec

    types: dict[str, Any] = {
        "text": str,
        "number": float | bool,
        "integer": int,
        "identifier": int | str,
    }
    spec: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for i, field in enumerate(fields):
        kind = types[field.kind]
        if field.required:
            spec.append((_attribute(i), kind))
        else:
            spec.append((_attribute(i), kind | None, None))
    # Required fields first, as Python requires of defaults.
    spec.sort(key=len)
    rename = {_attribute(i): field.name for i, field in enumerate(fields)}
    record = msgspec.defstruct("Record", spec, rename=rename)
    return msgspec.json.Decoder(record)

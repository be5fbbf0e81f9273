"""Atomic, versioned checkpoint files that never execute code on load.

File layout (all integers little-endian)::

    8 bytes    magic: "KSALLOC" and a zero byte
    8 bytes    length H of the header
    H bytes    UTF-8 JSON header: format name, format version, object kind,
               JSON metadata, and name, dtype, shape, offset and size of
               every array in the payload
    P bytes    payload: the arrays' raw bytes, one after another
    32 bytes   SHA-256 of everything above

Only plain numeric dtypes are accepted, so loading is ``numpy.frombuffer``
on checked slices: nothing is unpickled. A file is written to a temporary
file in the same directory, flushed and fsynced, then moved over the target
with :func:`os.replace` and the directory fsynced, so a process killed at
any moment leaves either the previous file or the new one. The temporary
file is locked while it is written; the next save of the same path removes
temporaries that no live process holds (strays of killed saves; POSIX only).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import CheckpointError, InvalidArgumentTypeError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: stray temporaries are not cleaned
    fcntl = None  # type: ignore[assignment]

FORMAT_NAME = "knapsack-alloc"
FORMAT_VERSION = 1
MAGIC = b"KSALLOC\x00"
_DIGEST_SIZE = 32
_PREFIX_SIZE = len(MAGIC) + 8
_DTYPES = frozenset({"|b1", "|i1", "|u1", "<i4", "<i8", "<f8"})


def write_checkpoint(
    path: str | os.PathLike[str],
    kind: str,
    meta: dict[str, Any],
    arrays: dict[str, NDArray[Any]],
) -> None:
    """Write ``meta`` and ``arrays`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its directory must exist.
    kind : str
        Name of the saved object's class, checked on load.
    meta : dict
        JSON-serialisable metadata (no NaN or inf).
    arrays : dict of str to numpy.ndarray
        Arrays of dtype bool, int8, uint8, int32, int64 or float64.

    Raises
    ------
    TypeError
        If ``meta`` is not JSON-serialisable or an array has another dtype.
    """
    entries = []
    blobs = []
    offset = 0
    for name, array in arrays.items():
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        dtype = data.dtype.str
        if dtype not in _DTYPES:
            raise InvalidArgumentTypeError(
                f"Array {name!r} has dtype {array.dtype}, which checkpoints do not store."
            )
        entries.append(
            {
                "name": name,
                "dtype": dtype,
                "shape": list(data.shape),
                "offset": offset,
                "nbytes": data.nbytes,
            }
        )
        blobs.append(data)
        offset += data.nbytes
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "kind": kind,
        "meta": meta,
        "arrays": entries,
        "payload_nbytes": offset,
    }
    try:
        header_bytes = json.dumps(header, allow_nan=False, sort_keys=True).encode("utf-8")
    except ValueError as error:
        raise InvalidArgumentTypeError(
            f"Checkpoint metadata must be finite JSON values: {error}"
        ) from None
    target = Path(os.fspath(path))
    directory = target.parent
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    _remove_stray_temporaries(target)
    fd, temp_name = _locked_temporary(target)
    try:
        with os.fdopen(fd, "wb") as file:  # closed (and unlocked) only once it is in place
            digest = hashlib.sha256()
            prefix = MAGIC + len(header_bytes).to_bytes(8, "little") + header_bytes
            digest.update(prefix)
            file.write(prefix)
            for blob in blobs:
                view = blob.reshape(-1).view(np.uint8).data
                digest.update(view)
                file.write(view)
            file.write(digest.digest())
            file.flush()
            os.fsync(file.fileno())
            os.chmod(temp_name, mode)
            os.replace(temp_name, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(directory)


def _temporary_pattern(target: Path) -> re.Pattern[str]:
    """Names :func:`tempfile.mkstemp` gives the temporary files of ``target``."""
    return re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp")


def _locked_temporary(target: Path) -> tuple[int, str]:
    """Create a temporary file next to ``target``, locked while this process writes it.

    The lock (``flock``) ends with the process, so a temporary file nobody
    holds is a stray from a killed save. A cleaner may remove a file between
    its creation and its locking; then another is made.
    """
    while True:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        if fcntl is None:
            return fd, name
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_nlink > 0:
                return fd, name
        except BlockingIOError:
            pass
        os.close(fd)


def _remove_stray_temporaries(target: Path) -> None:
    """Delete temporary files of ``target`` left by killed saves (no process holds them)."""
    if fcntl is None:  # no flock: a stray cannot be told from a save in progress
        return
    pattern = _temporary_pattern(target)
    for name in os.listdir(target.parent):
        if not pattern.fullmatch(name):
            continue
        stray = target.parent / name
        try:
            fd = os.open(stray, os.O_RDONLY)
        except OSError:
            continue  # gone already, or not ours to open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(stray)
        except OSError:  # BlockingIOError: a save in progress holds it
            pass
        finally:
            os.close(fd)


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":  # directory handles cannot be fsynced elsewhere
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoint(
    path: str | os.PathLike[str], kind: str
) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """Read and verify a file written by :func:`write_checkpoint`.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.
    kind : str
        Expected object kind.

    Returns
    -------
    meta : dict
        The metadata.
    arrays : dict of str to numpy.ndarray
        Fresh, writable arrays.

    Raises
    ------
    CheckpointError
        If the file is missing, empty, truncated, corrupted, not a
        knapsack-alloc checkpoint, of a newer format version, or holds
        another kind of object. Nothing is returned unless every check passes.
    """
    where = os.fspath(path)
    try:
        data = Path(where).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"No checkpoint at {where!r}: the file does not exist.") from None
    except IsADirectoryError:
        raise CheckpointError(f"{where!r} is a directory, not a checkpoint file.") from None
    if not data:
        raise CheckpointError(f"{where!r} is empty (0 bytes), not a {FORMAT_NAME} checkpoint.")
    if not data.startswith(MAGIC[: len(data)]):
        raise CheckpointError(
            f"{where!r} is not a {FORMAT_NAME} checkpoint (it does not start with {MAGIC!r})."
        )
    intact = (
        len(data) >= _PREFIX_SIZE + _DIGEST_SIZE
        and hashlib.sha256(data[:-_DIGEST_SIZE]).digest() == data[-_DIGEST_SIZE:]
    )
    if not intact:
        if len(data) < _PREFIX_SIZE:
            raise CheckpointError(f"{where!r} is truncated: only {len(data)} bytes.")
        size = _announced_size(where, data)
        if len(data) < size:
            raise CheckpointError(
                f"{where!r} is truncated: the header announces {size} bytes, the file has "
                f"{len(data)}."
            )
        raise CheckpointError(f"{where!r} is corrupted: its SHA-256 checksum does not match.")
    header = _parse_header(where, data)
    if _announced_size(where, data) != len(data):
        raise CheckpointError(f"{where!r} is corrupted: its size disagrees with its header.")
    if header["version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{where!r} has format version {header['version']}, but this version of "
            f"{FORMAT_NAME} reads versions up to {FORMAT_VERSION}; upgrade {FORMAT_NAME}."
        )
    if header["kind"] != kind:
        raise CheckpointError(f"{where!r} holds a {header['kind']!r}, not a {kind!r}.")
    header_end = len(data) - _DIGEST_SIZE - header["payload_nbytes"]
    payload = data[header_end : len(data) - _DIGEST_SIZE]
    arrays = {entry["name"]: _array(where, payload, entry) for entry in header["arrays"]}
    return header["meta"], arrays


def _announced_size(where: str, data: bytes) -> int:
    header = _parse_header(where, data)
    return _PREFIX_SIZE + _header_size(data) + int(header["payload_nbytes"]) + _DIGEST_SIZE


def _header_size(data: bytes) -> int:
    return int.from_bytes(data[len(MAGIC) : _PREFIX_SIZE], "little")


def _parse_header(where: str, data: bytes) -> dict[str, Any]:
    header_end = _PREFIX_SIZE + _header_size(data)
    if header_end > len(data):
        raise CheckpointError(
            f"{where!r} is truncated: the header alone needs {header_end} bytes, the file has "
            f"{len(data)}."
        )
    try:
        header = json.loads(data[_PREFIX_SIZE:header_end].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{where!r} is corrupted: its header is not valid JSON.") from None
    valid = (
        isinstance(header, dict)
        and header.get("format") == FORMAT_NAME
        and isinstance(header.get("version"), int)
        and isinstance(header.get("kind"), str)
        and isinstance(header.get("meta"), dict)
        and isinstance(header.get("arrays"), list)
        and isinstance(header.get("payload_nbytes"), int)
        and header["payload_nbytes"] >= 0
    )
    if not valid:
        raise CheckpointError(f"{where!r} is corrupted: its header lacks required fields.")
    parsed: dict[str, Any] = header
    return parsed


def _array(where: str, payload: bytes, entry: Any) -> NDArray[Any]:
    try:
        dtype, shape = entry["dtype"], tuple(entry["shape"])
        offset, nbytes = int(entry["offset"]), int(entry["nbytes"])
        valid = (
            dtype in _DTYPES
            and all(isinstance(d, int) and d >= 0 for d in shape)
            and nbytes == int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            and 0 <= offset <= offset + nbytes <= len(payload)
        )
    except (KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        raise CheckpointError(f"{where!r} is corrupted: an array entry is invalid: {entry!r}.")
    flat = np.frombuffer(
        payload, dtype=np.dtype(dtype), count=nbytes // np.dtype(dtype).itemsize, offset=offset
    )
    return flat.reshape(shape).astype(np.dtype(dtype).newbyteorder("="), copy=True)

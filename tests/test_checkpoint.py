import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from knapsack_alloc.allocator import KnapsackAllocator
from knapsack_alloc.allocator.checkpoint import (
    FORMAT_VERSION,
    MAGIC,
    CheckpointError,
    read_checkpoint,
    write_checkpoint,
)

ARRAYS = {
    "a": np.arange(6, dtype=np.int64).reshape(2, 3),
    "b": np.array([True, False]),
    "c": np.linspace(0, 1, 5),
    "d": np.zeros((0, 4), dtype=np.int8),
    "e": np.array([7], dtype=np.int32),
    "f": np.frombuffer(b"xyz", dtype=np.uint8),
}


def _write(path, meta=None, arrays=ARRAYS):
    write_checkpoint(path, "Thing", {"x": 1} if meta is None else meta, arrays)
    return path.read_bytes()


def test_round_trip(tmp_path):
    path = tmp_path / "state.ka"
    _write(path, {"name": "é", "values": [1, 2.5, None]})
    meta, arrays = read_checkpoint(path, "Thing")
    assert meta == {"name": "é", "values": [1, 2.5, None]}
    assert arrays.keys() == ARRAYS.keys()
    for name, array in ARRAYS.items():
        assert arrays[name].dtype == array.dtype
        assert np.array_equal(arrays[name], array)
        assert arrays[name].flags.writeable
    assert os.listdir(tmp_path) == ["state.ka"]  # no temporary file left behind


def test_overwrite_keeps_permissions(tmp_path):
    path = tmp_path / "state.ka"
    _write(path)
    os.chmod(path, 0o600)
    _write(path, {"x": 2})
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_checkpoint(path, "Thing")[0] == {"x": 2}


def test_every_truncation_is_rejected(tmp_path):
    data = _write(tmp_path / "full.ka")
    path = tmp_path / "cut.ka"
    for size in range(len(data)):
        path.write_bytes(data[:size])
        with pytest.raises(CheckpointError) as raised:
            read_checkpoint(path, "Thing")
        if size == 0:
            assert (
                str(raised.value)
                == f"{str(path)!r} is empty (0 bytes), not a knapsack-alloc checkpoint."
            )
        else:
            assert "truncated" in str(raised.value), (size, str(raised.value))


def test_every_flipped_byte_is_rejected(tmp_path):
    data = _write(tmp_path / "full.ka")
    path = tmp_path / "bad.ka"
    for position in range(len(MAGIC), len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x10
        path.write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError):
            read_checkpoint(path, "Thing")


def test_checksum_message(tmp_path):
    data = bytearray(_write(tmp_path / "full.ka"))
    data[-40] ^= 1  # inside the payload
    path = tmp_path / "bad.ka"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as raised:
        read_checkpoint(path, "Thing")
    assert str(raised.value) == f"{str(path)!r} is corrupted: its SHA-256 checksum does not match."


def test_foreign_files(tmp_path):
    path = tmp_path / "model.npz"
    np.savez(path, a=np.arange(3))
    with pytest.raises(CheckpointError) as raised:
        read_checkpoint(path, "Thing")
    assert str(raised.value) == (
        f"{str(path)!r} is not a knapsack-alloc checkpoint (it does not start with "
        "b'KSALLOC\\x00')."
    )
    with pytest.raises(CheckpointError) as raised:
        read_checkpoint(tmp_path / "nothing", "Thing")
    assert "does not exist" in str(raised.value)
    with pytest.raises(CheckpointError) as raised:
        read_checkpoint(tmp_path, "Thing")
    assert "is a directory" in str(raised.value)


def _rewrite_header(data, change):
    size = int.from_bytes(data[8:16], "little")
    header = json.loads(data[16 : 16 + size])
    change(header)
    body = json.dumps(header).encode()
    out = MAGIC + len(body).to_bytes(8, "little") + body + data[16 + size : -32]
    return out + hashlib.sha256(out).digest()


def test_newer_version_and_other_kind(tmp_path):
    data = _write(tmp_path / "full.ka")
    path = tmp_path / "v.ka"
    path.write_bytes(_rewrite_header(data, lambda h: h.update(version=FORMAT_VERSION + 1)))
    with pytest.raises(CheckpointError) as raised:
        read_checkpoint(path, "Thing")
    assert str(raised.value) == (
        f"{str(path)!r} has format version {FORMAT_VERSION + 1}, but this version of "
        f"knapsack-alloc reads versions up to {FORMAT_VERSION}; upgrade knapsack-alloc."
    )
    with pytest.raises(CheckpointError) as raised:
        read_checkpoint(tmp_path / "full.ka", "Other")
    assert str(raised.value) == f"{str(tmp_path / 'full.ka')!r} holds a 'Thing', not a 'Other'."


def test_object_dtypes_are_neither_written_nor_read(tmp_path):
    with pytest.raises(TypeError):
        write_checkpoint(tmp_path / "x.ka", "Thing", {}, {"o": np.array([object()])})
    assert not (tmp_path / "x.ka").exists()
    assert os.listdir(tmp_path) == []
    data = _write(tmp_path / "full.ka")
    path = tmp_path / "o.ka"
    path.write_bytes(_rewrite_header(data, lambda h: h["arrays"][0].update(dtype="|O")))
    with pytest.raises(CheckpointError, match="an array entry is invalid"):
        read_checkpoint(path, "Thing")


def test_allocator_load_errors_are_checkpoint_errors(tmp_path):
    allocator = KnapsackAllocator()
    allocator.update([1, 2, 2], [1, 0, 1])
    path = tmp_path / "alloc.ka"
    allocator.save(path)
    data = path.read_bytes()
    path.write_bytes(_rewrite_header(data, lambda h: h["meta"]["params"].update(window=-3)))
    with pytest.raises(CheckpointError) as raised:
        KnapsackAllocator.load(path)
    assert str(raised.value) == (
        f"{str(path)!r} holds an invalid allocator: window == -3, must be >= 1."
    )
    path.write_bytes(data[:-1])
    with pytest.raises(CheckpointError, match="truncated"):
        KnapsackAllocator.load(path)


SAVER = """
import sys
import numpy as np
from knapsack_alloc.allocator import KnapsackAllocator

path = sys.argv[1]
allocator = KnapsackAllocator("bayes")
rng = np.random.default_rng(0)
step = 0
while True:
    ids = rng.integers(0, 2_000_000, 20_000)
    allocator.update(ids, rng.random(ids.size) < 0.5)
    allocator.save(path)
    step += 1
    print(step, allocator.n_rollouts_, flush=True)
"""


@pytest.mark.slow
def test_killed_saves_leave_a_loadable_file(tmp_path):
    path = tmp_path / "alloc.ka"
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    rng = np.random.default_rng(5)
    for _ in range(6):
        with subprocess.Popen(
            [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True
        ) as process:
            try:
                process.stdout.readline()  # at least one complete save
                time.sleep(float(rng.uniform(0.0, 0.4)))
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait()
        loaded = KnapsackAllocator.load(path)
        assert loaded.n_rollouts_ % 20_000 == 0 and loaded.n_rollouts_ > 0
        assert loaded.n_updates_ == loaded.n_rollouts_ // 20_000
        counts = loaded.history_.counts(np.arange(len(loaded.history_)))
        assert int(counts.total.sum()) == loaded.n_rollouts_
        path.unlink()


# Starts a save and stops inside it, before the file is moved into place.
HANGING_SAVE = """
import os, sys, time
import numpy as np
from knapsack_alloc.allocator.checkpoint import write_checkpoint

def hang(fd):
    print("writing", flush=True)
    time.sleep(600)

os.fsync = hang
write_checkpoint(sys.argv[1], "Thing", {"x": 1}, {"a": np.arange(1000)})
"""


def _temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


@contextlib.contextmanager
def hanging_save(path):
    """A process stopped in the middle of saving ``path``; killed on exit."""
    with subprocess.Popen([sys.executable, "-c", HANGING_SAVE, str(path)],
                          stdout=subprocess.PIPE, text=True) as process:  # fmt: skip
        try:
            assert process.stdout.readline().strip() == "writing"
            yield process
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()


def test_the_next_save_removes_what_a_killed_save_left(tmp_path):
    path = tmp_path / "state.ka"
    other = tmp_path / "state.ka.old"
    _write(other)
    with hanging_save(path):
        pass
    stray = _temporaries(tmp_path)
    assert len(stray) == 1 and stray[0].startswith(".state.ka.")
    _write(path)
    assert _temporaries(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["state.ka", "state.ka.old"]
    assert read_checkpoint(path, "Thing")[0] == {"x": 1}


def test_a_save_in_progress_keeps_its_temporary_file(tmp_path):
    """Only strays are removed: another process's save, still running, is left alone."""
    path = tmp_path / "state.ka"
    with hanging_save(path):
        in_progress = _temporaries(tmp_path)
        _write(path, {"x": 2})
        assert len(in_progress) == 1
        assert _temporaries(tmp_path) == in_progress  # still there, still being written
    _write(path, {"x": 3})
    assert _temporaries(tmp_path) == []
    assert read_checkpoint(path, "Thing")[0] == {"x": 3}


def test_strays_of_other_paths_are_left_alone(tmp_path):
    for name in [".other.ka.abcdefgh.tmp", ".state.ka.tmp", "state.ka.abcdefgh.tmp"]:
        (tmp_path / name).write_bytes(b"not ours")
    _write(tmp_path / "state.ka")
    assert len(_temporaries(tmp_path)) == 3

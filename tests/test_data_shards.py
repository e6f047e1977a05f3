"""Shard format (R9): round trip, every malformed-shard error (API and CLI), fingerprints."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.cli import main
from pgolf.data import ShardError, data_fingerprint, read_shard, val_shards, write_shard
from pgolf.data.shards import HEADER_BYTES, SHARD_MAGIC
from pgolf.errors import InputError


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 65535), max_size=3000))
def test_write_read_round_trip(tokens: list[int]) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "fineweb_train_000000.bin"
        write_shard(p, tokens)
        back = read_shard(p)
        assert back.dtype == np.uint16
        assert back.tolist() == tokens
        assert p.stat().st_size == HEADER_BYTES + 2 * len(tokens)
        header = np.fromfile(p, dtype="<i4", count=256)
        assert header[:3].tolist() == [SHARD_MAGIC, 1, len(tokens)]
        assert not header[3:].any()


def test_write_rejects_ids_outside_uint16(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint16"):
        write_shard(tmp_path / "x.bin", [1, 70000])


def _good(path: Path, n: int = 10) -> Path:
    write_shard(path, [1, *range(5, 5 + n - 1)])
    return path


def _header(magic: int = SHARD_MAGIC, version: int = 1, count: int = 4) -> bytes:
    h = np.zeros(256, dtype="<i4")
    h[:3] = [magic, version, count]
    return h.tobytes()


# Each malformed shard and the words its one-line error must contain.
MALFORMED = {
    "empty": (b"", "empty file"),
    "truncated_header": (_header()[:100], "truncated header"),
    "wrong_magic": (_header(magic=20240519) + b"\x01\x00" * 4, "wrong magic 20240519"),
    "wrong_version": (_header(version=2) + b"\x01\x00" * 4, "unsupported shard version 2"),
    "truncated_tokens": (_header(count=4) + b"\x01\x00" * 3, "truncated"),
    "trailing_bytes": (_header(count=4) + b"\x01\x00" * 5, "token count mismatch"),
    "odd_size": (_header(count=4) + b"\x01\x00" * 4 + b"\x00", "token count mismatch"),
    "negative_count": (_header(count=-3), "negative token count"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_read_shard_malformed_raises_shard_error(tmp_path: Path, kind: str) -> None:
    data, words = MALFORMED[kind]
    p = tmp_path / "fineweb_val_000000.bin"
    p.write_bytes(data)
    with pytest.raises(ShardError) as info:
        read_shard(p)
    msg = info.value.message
    assert str(p) in msg and words in msg and "\n" not in msg
    assert isinstance(info.value, InputError) and info.value.exit_code == 2


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_check_cli_names_the_bad_shard(tmp_path: Path, runner, kind: str) -> None:
    data, words = MALFORMED[kind]
    _good(tmp_path / "fineweb_train_000000.bin")
    (tmp_path / "fineweb_val_000000.bin").write_bytes(data)
    result = runner.invoke(main, ["data", "--check", str(tmp_path), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, ShardError)  # handled by click, no traceback
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert "fineweb_val_000000.bin" in lines[0] and words in lines[0]


def test_missing_shard_and_missing_dir(tmp_path: Path, runner) -> None:
    with pytest.raises(ShardError, match="not found"):
        read_shard(tmp_path / "nope.bin")
    result = runner.invoke(main, ["data", "--check", str(tmp_path / "nodir"), "--no-progress"])
    assert result.exit_code == 2
    assert "nodir: no such directory" in result.stderr
    result = runner.invoke(main, ["data", "--check", str(tmp_path), "--no-progress"])
    assert result.exit_code == 2
    assert "no fineweb_train_*.bin or fineweb_val_*.bin shards" in result.stderr


def test_val_glob_excludes_byte_sidecars(tmp_path: Path) -> None:
    _good(tmp_path / "fineweb_train_000000.bin")
    _good(tmp_path / "fineweb_val_000000.bin")
    (tmp_path / "fineweb_val_bytes_000000.bin").write_bytes(b"not a shard at all")
    assert [p.name for p in val_shards(tmp_path)] == ["fineweb_val_000000.bin"]
    fp = data_fingerprint(tmp_path)
    (tmp_path / "fineweb_val_bytes_000000.bin").unlink()
    assert data_fingerprint(tmp_path) == fp


def test_fingerprint_is_sha256_over_train_then_val_tokens(tmp_path: Path) -> None:
    import hashlib

    write_shard(tmp_path / "fineweb_val_000000.bin", [1, 7])
    write_shard(tmp_path / "fineweb_train_000001.bin", [1, 9])
    write_shard(tmp_path / "fineweb_train_000000.bin", [1, 8])
    want = hashlib.sha256(np.array([1, 8, 1, 9, 1, 7], dtype="<u2").tobytes()).hexdigest()
    assert data_fingerprint(tmp_path) == want
    write_shard(tmp_path / "fineweb_val_000000.bin", [1, 6])
    assert data_fingerprint(tmp_path) != want


def test_a_fifo_named_like_a_shard_is_rejected_without_blocking(tmp_path: Path, runner) -> None:
    write_shard(tmp_path / "fineweb_train_000000.bin", [1, 2, 3])
    fifo = tmp_path / "fineweb_val_000000.bin"
    os.mkfifo(fifo)
    with pytest.raises(ShardError, match=r"fineweb_val_000000\.bin: not a regular file"):
        read_shard(fifo)
    result = runner.invoke(main, ["data", "--check", str(tmp_path), "--no-progress"])
    assert result.exit_code == 2
    assert "fineweb_val_000000.bin: not a regular file" in result.output
    assert "Traceback" not in result.output

"""Shard file format (RULES.md R9): read, write, list and fingerprint token shards.

A shard is a header of 256 little-endian int32 (magic 20240520, version 1, token
count, the rest zero) followed by the tokens as little-endian uint16.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pgolf.errors import InputError

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TRAIN_GLOB = "fineweb_train_*.bin"
VAL_GLOB = "fineweb_val_*.bin"
# Byte sidecars (per-token byte counts some records ship) share the val prefix but are not shards.
SIDECAR_PREFIX = "fineweb_val_bytes_"


class ShardError(InputError):
    """A shard file that cannot be used (missing, truncated, bad header): one line naming it."""


def write_shard(path: str | os.PathLike[str], tokens: Iterable[int] | np.ndarray) -> None:
    """Write `tokens` (values in [0, 65535]) to `path` in the official shard format."""
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 0xFFFF):
        raise ValueError(f"{path}: token ids must fit in uint16 (0..65535)")
    if arr.size >= 2**31:
        raise ValueError(f"{path}: too many tokens for one shard ({arr.size})")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0] = SHARD_MAGIC
    header[1] = SHARD_VERSION
    header[2] = arr.size
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(arr.astype("<u2", copy=False).tobytes())


def read_header(path: str | os.PathLike[str]) -> int:
    """Validate the header and file size of a shard and return its token count."""
    p = Path(path)
    try:
        info = p.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            # Opening a FIFO or a device would block or stream forever.
            raise ShardError(f"{p}: not a regular file (a FIFO, socket or device); not a shard")
        size = info.st_size
        with open(p, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except FileNotFoundError:
        raise ShardError(f"{p}: shard file not found") from None
    except IsADirectoryError:
        raise ShardError(f"{p}: is a directory, not a shard file") from None
    except OSError as e:
        raise ShardError(f"{p}: cannot read shard ({e.strerror or e})") from None
    if size == 0:
        raise ShardError(f"{p}: empty file (expected a {HEADER_BYTES}-byte shard header)")
    if len(raw) < HEADER_BYTES:
        raise ShardError(
            f"{p}: truncated header ({len(raw)} of {HEADER_BYTES} bytes); not a complete shard"
        )
    header = np.frombuffer(raw, dtype="<i4")
    magic, version, count = int(header[0]), int(header[1]), int(header[2])
    if magic != SHARD_MAGIC:
        raise ShardError(f"{p}: wrong magic {magic} (expected {SHARD_MAGIC}); not a token shard")
    if version != SHARD_VERSION:
        raise ShardError(f"{p}: unsupported shard version {version} (expected {SHARD_VERSION})")
    if count < 0:
        raise ShardError(f"{p}: negative token count {count} in header")
    expected = HEADER_BYTES + 2 * count
    if size != expected:
        have = (size - HEADER_BYTES) / 2
        kind = "truncated" if size < expected else "trailing bytes"
        raise ShardError(
            f"{p}: token count mismatch ({kind}): header says {count} tokens "
            f"({expected} bytes) but file has {size} bytes ({have:g} tokens)"
        )
    return count


def read_shard(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a shard and return its tokens as a numpy uint16 array; raise ShardError if malformed."""
    count = read_header(path)
    try:
        tokens = np.fromfile(path, dtype="<u2", count=count, offset=HEADER_BYTES)
    except OSError as e:
        raise ShardError(f"{path}: cannot read shard ({e.strerror or e})") from None
    if tokens.size != count:
        raise ShardError(f"{path}: short read ({tokens.size} of {count} tokens)")
    return tokens.astype(np.uint16, copy=False)


def train_shards(shard_dir: str | os.PathLike[str]) -> list[Path]:
    """Train shards of a directory, in sorted name order."""
    return sorted(Path(shard_dir).glob(TRAIN_GLOB))


def val_shards(shard_dir: str | os.PathLike[str]) -> list[Path]:
    """Val shards of a directory, in sorted name order, without byte sidecars."""
    return sorted(
        p for p in Path(shard_dir).glob(VAL_GLOB) if not p.name.startswith(SIDECAR_PREFIX)
    )


def data_fingerprint(shard_dir: str | os.PathLike[str]) -> str:
    """sha256 hex over the tokens (little-endian uint16) of all train then all val shards."""
    d = Path(shard_dir)
    if not d.is_dir():
        raise InputError(f"{d}: not a directory of shards")
    files = train_shards(d) + val_shards(d)
    if not files:
        raise InputError(f"{d}: no fineweb_train_*.bin or fineweb_val_*.bin shards found")
    h = hashlib.sha256()
    for f in files:
        h.update(read_shard(f).astype("<u2", copy=False).tobytes())
    return h.hexdigest()

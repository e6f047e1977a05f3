"""The token slice the probes perturb: real validation tokens when available, else a stand-in.

Order of preference: the val shards of `--data DIR`; the embedded default dataset of the
scorer's vocabulary size (built by `pgolf data`); a deterministic pseudo-random sequence over
the vocabulary. Byte-level scorers get UTF-8 bytes: the val tokens decoded with the dataset's
tokenizer, else English text that ships with CPython. The report always says which was used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pgolf.errors import InputError

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
SEED = 20240520


@dataclass(frozen=True)
class TokenSlice:
    tokens: np.ndarray  # int64, shape (T,)
    source: str  # human-readable origin, shown in the report
    real: bool  # True for real validation data (or real text for byte-level scorers)


def _read_shard(path: Path) -> np.ndarray:
    try:
        from pgolf.data import read_shard  # type: ignore[attr-defined]
    except ImportError:
        read_shard = None
    if read_shard is not None:
        return np.asarray(read_shard(path))
    # The data module is not importable: read the format of RULES.md R9 directly.
    raw = path.read_bytes()
    if len(raw) < HEADER_INTS * 4:
        raise InputError(f"{path}: shard shorter than its 1024-byte header")
    header = np.frombuffer(raw[: HEADER_INTS * 4], dtype="<i4")
    if int(header[0]) != SHARD_MAGIC or int(header[1]) != SHARD_VERSION:
        raise InputError(f"{path}: not a shard (magic {header[0]}, version {header[1]})")
    count = int(header[2])
    if len(raw) != HEADER_INTS * 4 + 2 * count:
        raise InputError(f"{path}: header says {count} tokens, file size disagrees")
    return np.frombuffer(raw[HEADER_INTS * 4 :], dtype="<u2")


def val_shards(data_dir: Path) -> list[Path]:
    """Validation shards of a shard directory, byte sidecars excluded, in name order."""
    return sorted(
        p for p in data_dir.glob("fineweb_val_*.bin") if not p.name.startswith("fineweb_val_bytes_")
    )


def default_dataset_dir(vocab_size: int) -> Path:
    try:
        from pgolf.data import default_cache_dir  # type: ignore[attr-defined]

        cache = Path(default_cache_dir())
    except ImportError:
        cache = Path(os.environ.get("PGOLF_CACHE_DIR") or Path.home() / ".cache" / "pgolf")
    return cache / f"default_sp{vocab_size}"


def _val_tokens(data_dir: Path, limit: int) -> np.ndarray:
    shards = val_shards(data_dir)
    if not shards:
        raise InputError(f"{data_dir}: no fineweb_val_*.bin shard to take a probe slice from")
    out: list[np.ndarray] = []
    have = 0
    for shard in shards:
        tokens = _read_shard(shard)
        out.append(tokens[: limit - have])
        have += len(out[-1])
        if have >= limit:
            break
    return np.concatenate(out).astype(np.int64)


def _stdlib_text_bytes(length: int) -> np.ndarray:
    import pydoc_data.topics

    text = "\n\n".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return data[:length].astype(np.int64)


def _decoded_bytes(data_dir: Path, length: int) -> np.ndarray | None:
    model = data_dir / "tokenizer.model"
    if not model.is_file():
        return None
    try:
        import sentencepiece as spm
    except ImportError:
        return None
    sp = spm.SentencePieceProcessor(model_file=str(model))
    tokens = _val_tokens(data_dir, 4 * length)
    text = sp.decode([int(t) for t in tokens])
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return data[:length].astype(np.int64) if len(data) >= length else None


def resolve_slice(
    vocab_size: int, level: str, *, length: int, data_dir: Path | None = None
) -> TokenSlice:
    """Pick the slice the probes will use (see the module docstring for the order)."""
    if data_dir is not None and not data_dir.is_dir():
        raise InputError(f"{data_dir}: not a directory")
    candidates = [data_dir] if data_dir is not None else [default_dataset_dir(vocab_size)]
    if level == "byte":
        for directory in candidates:
            if directory is not None and directory.is_dir():
                data = _decoded_bytes(directory, length)
                if data is not None:
                    return TokenSlice(data, f"{directory} (val tokens decoded to bytes)", True)
        return TokenSlice(_stdlib_text_bytes(length), "CPython documentation text (bytes)", True)
    for directory in candidates:
        if directory is None or not directory.is_dir() or not val_shards(directory):
            if data_dir is not None:
                raise InputError(
                    f"{data_dir}: no fineweb_val_*.bin shard to take a probe slice from"
                )
            continue
        tokens = _val_tokens(directory, length)
        if data_dir is not None and int(tokens.max()) >= vocab_size:
            raise InputError(
                f"{data_dir}: token id {int(tokens.max())} does not fit the scorer's "
                f"vocabulary of {vocab_size}"
            )
        if len(tokens) >= min(length, 16) and int(tokens.max()) < vocab_size:
            return TokenSlice(
                tokens, f"{val_shards(directory)[0]} (first {len(tokens)} tokens)", True
            )
    rng = np.random.default_rng(SEED)
    tokens = rng.integers(0, vocab_size, size=length, dtype=np.int64)
    return TokenSlice(tokens, f"pseudo-random tokens over the vocabulary (seed {SEED})", False)

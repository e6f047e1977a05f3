"""`pgolf data --check`: validate a shard directory (pgolf-built or upstream FineWeb layout).

Checks every shard header and size, token ids against the tokenizer's vocabulary, the BOS
layout (each split starts with BOS; no empty documents), and that no validation document
appears in training (documents are the token runs between BOS tokens, compared by hash).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pgolf.data.build import META_FILE, TOKENIZER_FILE
from pgolf.data.shards import SIDECAR_PREFIX, VAL_GLOB, read_shard, train_shards, val_shards
from pgolf.data.tokenizer import build_byte_lut, count_bytes, load_tokenizer
from pgolf.errors import InputError

DEFAULT_BOS = 1


@dataclass
class SplitStats:
    shards: int = 0
    tokens: int = 0
    documents: int = 0
    empty_documents: int = 0


@dataclass
class CheckReport:
    """What `--check` found: counts, fingerprint, problems (exit 1) and notes (informative)."""

    path: Path
    tokenizer_path: Path | None
    vocab_size: int | None
    bos_id: int
    train: SplitStats
    val: SplitStats
    fingerprint: str
    val_bytes: int | None
    overlap_documents: int
    train_shards_checked: int
    sidecars_ignored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def find_tokenizer(shard_dir: Path) -> Path | None:
    """tokenizer.model next to the shards, or the upstream layout
    data/datasets/fineweb10B_sp<V>/ -> data/tokenizers/fineweb_<V>_bpe.model."""
    own = shard_dir / TOKENIZER_FILE
    if own.is_file():
        return own
    m = re.search(r"sp(\d+)$", shard_dir.resolve().name)
    if m:
        upstream = shard_dir.resolve().parent.parent / "tokenizers" / f"fineweb_{m[1]}_bpe.model"
        if upstream.is_file():
            return upstream
    models = sorted(shard_dir.glob("*.model"))
    return models[0] if len(models) == 1 else None


def _documents(
    loaded: Iterable[tuple[Path, np.ndarray]],
    bos: int,
    stats: SplitStats,
    problems: list[str],
    split: str,
) -> Iterator[tuple[Path, bytes]]:
    """Yield (shard, token bytes) of every document (BOS up to the next BOS) of a split, in
    order; a document may continue into the next shard, as upstream shards cut mid-document."""
    carry = np.empty(0, dtype=np.uint16)
    carry_shard: Path | None = None
    first = True
    for shard, tokens in loaded:
        stats.shards += 1
        stats.tokens += int(tokens.size)
        if tokens.size == 0:
            continue
        if first:
            first = False
            if int(tokens[0]) != bos:
                problems.append(
                    f"{shard.name}: first {split} token is {int(tokens[0])}, not BOS ({bos}); "
                    f"every document must start with BOS"
                )
        starts = np.flatnonzero(tokens == bos).tolist()
        if not starts:
            carry = np.concatenate([carry, tokens])
            carry_shard = carry_shard or shard
            continue
        if starts[0] > 0:
            carry = np.concatenate([carry, tokens[: starts[0]]])
            carry_shard = carry_shard or shard
        if carry.size:
            yield from _emit(carry, carry_shard or shard, stats)
        for a, b in itertools.pairwise(starts):
            yield from _emit(tokens[a:b], shard, stats)
        carry = tokens[starts[-1] :].copy()
        carry_shard = shard
    if carry.size:
        yield from _emit(carry, carry_shard or Path("?"), stats)


def _emit(doc: np.ndarray, shard: Path, stats: SplitStats) -> Iterator[tuple[Path, bytes]]:
    stats.documents += 1
    if doc.size == 1:
        stats.empty_documents += 1
    yield shard, doc.astype("<u2", copy=False).tobytes()


def check_dir(
    path: str | os.PathLike[str],
    *,
    tokenizer: str | os.PathLike[str] | None = None,
    max_train_shards: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CheckReport:
    """Validate a shard directory. Raises InputError (ShardError) if it cannot be read at all
    or a shard is malformed; content problems go to `CheckReport.problems`."""
    d = Path(path)
    if not d.exists():
        raise InputError(f"{d}: no such directory")
    if not d.is_dir():
        raise InputError(f"{d}: not a directory")
    train = train_shards(d)
    val = val_shards(d)
    if not train and not val:
        raise InputError(f"{d}: no fineweb_train_*.bin or fineweb_val_*.bin shards found")
    report = progress or (lambda stage, done, total: None)
    problems: list[str] = []
    notes: list[str] = []
    sidecars = sorted(p.name for p in d.glob(VAL_GLOB) if p.name.startswith(SIDECAR_PREFIX))
    tok_path = Path(tokenizer) if tokenizer is not None else find_tokenizer(d)
    vocab: int | None = None
    bos = DEFAULT_BOS
    lut = None
    if tok_path is not None:
        sp = load_tokenizer(tok_path)
        vocab = sp.vocab_size()
        bos = sp.bos_id() if sp.bos_id() >= 0 else DEFAULT_BOS
        lut = build_byte_lut(tok_path)
    else:
        notes.append(
            "no tokenizer found (tokenizer.model, the upstream data/tokenizers/ layout, or "
            "--tokenizer): token ids not checked against a vocabulary, BOS assumed to be 1"
        )
    if not train:
        problems.append(f"{d}: no train shards (fineweb_train_*.bin)")
    if not val:
        problems.append(f"{d}: no val shards (fineweb_val_*.bin)")
    checked_train = train if max_train_shards is None else train[:max_train_shards]
    if len(checked_train) < len(train):
        notes.append(
            f"train/val overlap and token ids checked on the first {len(checked_train)} of "
            f"{len(train)} train shards (--max-train-shards); the fingerprint covers all"
        )

    fp = hashlib.sha256()
    # Fingerprint order: all train then all val shards, sorted by name (INTERFACES.md).
    total = len(train) + len(val)
    done = 0

    def scan(shard: Path, tokens: np.ndarray) -> None:
        nonlocal done
        if vocab is not None and tokens.size and int(tokens.max()) >= vocab:
            bad = np.flatnonzero(tokens >= vocab)
            problems.append(
                f"{shard.name}: {bad.size} token ids >= vocab size {vocab} "
                f"(first at position {int(bad[0])}: {int(tokens[bad[0]])})"
            )
        done += 1
        report("Checking shards", done, total)

    val_stats = SplitStats()
    val_hashes: dict[bytes, Path] = {}
    val_tokens_all: list[np.ndarray] = []

    def load(
        shards: list[Path], keep: list[np.ndarray] | None
    ) -> Iterator[tuple[Path, np.ndarray]]:
        for shard in shards:
            tokens = read_shard(shard)
            scan(shard, tokens)
            if keep is not None:
                keep.append(tokens)
            else:
                fp.update(tokens.astype("<u2", copy=False).tobytes())
            yield shard, tokens

    for shard, doc in _documents(load(val, val_tokens_all), bos, val_stats, problems, "val"):
        if len(doc) <= 2:
            continue
        val_hashes.setdefault(hashlib.blake2b(doc, digest_size=16).digest(), shard)

    train_stats = SplitStats()
    overlap = 0
    overlap_examples: list[str] = []
    docs = _documents(load(checked_train, None), bos, train_stats, problems, "train")
    for shard, doc in docs:
        if len(doc) <= 2:  # an empty document (BOS alone) carries no validation text
            continue
        vshard = val_hashes.get(hashlib.blake2b(doc, digest_size=16).digest())
        if vshard is not None:
            overlap += 1
            if len(overlap_examples) < 3:
                overlap_examples.append(f"{shard.name} ~ {vshard.name}")
    for shard in train[len(checked_train) :]:
        tokens = read_shard(shard)
        fp.update(tokens.astype("<u2", copy=False).tobytes())
        train_stats.shards += 1
        train_stats.tokens += int(tokens.size)
        done += 1
        report("Checking shards", done, total)
    for tokens in val_tokens_all:
        fp.update(tokens.astype("<u2", copy=False).tobytes())
    if overlap:
        problems.append(
            f"{overlap} train documents also appear in val (e.g. {', '.join(overlap_examples)}); "
            f"validation documents must never be trained on (R4)"
        )
    for split, st in (("train", train_stats), ("val", val_stats)):
        if st.empty_documents:
            notes.append(f"{st.empty_documents} empty {split} documents (BOS followed by BOS)")
    val_bytes: int | None = None
    if lut is not None and val_tokens_all:
        try:
            val_bytes = count_bytes(np.concatenate(val_tokens_all), lut)
        except ValueError:
            val_bytes = None  # ids beyond the vocabulary: already reported as a problem
    fingerprint = fp.hexdigest()
    meta_path = d / META_FILE
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            recorded = meta.get("fingerprint") if isinstance(meta, dict) else None
        except (OSError, ValueError):
            recorded = None
            notes.append(f"{META_FILE}: unreadable, not compared")
        if recorded and recorded != fingerprint:
            problems.append(
                f"{META_FILE}: recorded fingerprint {recorded[:12]}… differs from the shards "
                f"({fingerprint[:12]}…); the shards changed after the build"
            )
    return CheckReport(
        path=d,
        tokenizer_path=tok_path,
        vocab_size=vocab,
        bos_id=bos,
        train=train_stats,
        val=val_stats,
        fingerprint=fingerprint,
        val_bytes=val_bytes,
        overlap_documents=overlap,
        train_shards_checked=len(checked_train),
        sidecars_ignored=sidecars,
        problems=problems,
        notes=notes,
    )

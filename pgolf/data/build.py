"""Build a dataset directory: documents -> split -> tokenizer (train docs only) -> shards.

The build happens in a temporary directory next to the target and is renamed into place at
the end, so an interrupted build never leaves a half dataset; a finished one is never redone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pgolf import __version__
from pgolf.data.corpus import Document, default_corpus_description, default_documents
from pgolf.data.shards import HEADER_BYTES, data_fingerprint, write_shard
from pgolf.data.tokenizer import (
    SP_TRAINER_SETTINGS,
    build_byte_lut,
    count_bytes,
    load_tokenizer,
    train_tokenizer,
)
from pgolf.errors import InputError


def spm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sentencepiece")
    except PackageNotFoundError:
        return "unknown"


DATASET_FORMAT = "pgolf.dataset/1"
DEFAULT_VOCAB = 1024
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_SHARD_TOKENS = 1_000_000
TOKENIZER_FILE = "tokenizer.model"
META_FILE = "dataset.json"

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class Dataset:
    """A shard directory ready for the trainer (DATA_PATH=path, TOKENIZER_PATH=tokenizer_path)."""

    path: Path
    tokenizer_path: Path
    vocab_size: int
    fingerprint: str
    n_train_tokens: int
    n_val_tokens: int
    meta: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Dataset:
        """Read a directory built by pgolf (its dataset.json); InputError if it is not one."""
        d = Path(path)
        meta = _read_meta(d)
        if meta is None:
            raise InputError(f"{d}: no readable {META_FILE}; not a dataset built by `pgolf data`")
        return cls._from_meta(d, meta)

    @classmethod
    def _from_meta(cls, d: Path, meta: dict[str, Any]) -> Dataset:
        return cls(
            path=d,
            tokenizer_path=d / TOKENIZER_FILE,
            vocab_size=int(meta["tokenizer"]["vocab_size"]),
            fingerprint=str(meta["fingerprint"]),
            n_train_tokens=int(meta["tokens"]["train"]),
            n_val_tokens=int(meta["tokens"]["val"]),
            meta=meta,
        )


def default_cache_dir() -> Path:
    """`$PGOLF_CACHE_DIR` if set, else `~/.cache/pgolf`."""
    env = os.environ.get("PGOLF_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pgolf"


def default_dataset_dir(vocab_size: int = DEFAULT_VOCAB) -> Path:
    return default_cache_dir() / f"default_sp{vocab_size}"


def _read_meta(d: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == DATASET_FORMAT else None


def _complete(d: Path) -> dict[str, Any] | None:
    """dataset.json of `d` if every file it lists is present with the right size, else None."""
    meta = _read_meta(d)
    if meta is None or not (d / TOKENIZER_FILE).is_file():
        return None
    try:
        for split in ("train", "val"):
            for shard in meta["shards"][split]:
                f = d / shard["file"]
                if not f.is_file() or f.stat().st_size != HEADER_BYTES + 2 * int(shard["tokens"]):
                    return None
        Dataset._from_meta(d, meta)
    except (KeyError, TypeError, ValueError, OSError):
        return None
    return meta


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_val_document(text_sha256: str, val_fraction: float) -> bool:
    """The split rule: a document goes to val iff its text hash falls in the val fraction.

    It depends on the document alone, so adding or removing other documents never moves it.
    """
    return int(text_sha256[:15], 16) / 16**15 < val_fraction


def split_documents(
    docs: Sequence[Document], val_fraction: float
) -> tuple[list[Document], list[Document], int]:
    """(train, val, duplicates removed): exact duplicates are dropped first, then each document
    is placed by `is_val_document`; both splits are ordered by text hash (a fixed shuffle)."""
    seen: dict[str, Document] = {}
    for doc in docs:
        seen.setdefault(_sha(doc.text), doc)
    dups = len(docs) - len(seen)
    if len(seen) < 2:
        raise InputError("need at least 2 distinct documents to split into train and val")
    ordered = sorted(seen.items())
    train = [d for h, d in ordered if not is_val_document(h, val_fraction)]
    val = [d for h, d in ordered if is_val_document(h, val_fraction)]
    # Tiny corpora: guarantee both splits are non-empty, still by hash order.
    if not val:
        val = [train.pop(0)]
    elif not train:
        train = [val.pop()]
    return train, val, dups


def _training_sentences(docs: Sequence[Document]) -> Iterator[str]:
    for doc in docs:
        for line in doc.text.split("\n"):
            if line.strip():
                yield line


def _stream(encoded: Sequence[Sequence[int]], bos: int) -> np.ndarray:
    total = sum(len(e) + 1 for e in encoded)
    out = np.empty(total, dtype=np.uint16)
    pos = 0
    for e in encoded:
        out[pos] = bos
        out[pos + 1 : pos + 1 + len(e)] = e
        pos += len(e) + 1
    return out


def _write_split(
    tmp: Path, split: str, stream: np.ndarray, shard_tokens: int
) -> list[dict[str, Any]]:
    shards = []
    for i, start in enumerate(range(0, max(len(stream), 1), shard_tokens)):
        chunk = stream[start : start + shard_tokens]
        name = f"fineweb_{split}_{i:06d}.bin"
        write_shard(tmp / name, chunk)
        shards.append(
            {
                "file": name,
                "tokens": len(chunk),
                "sha256": hashlib.sha256(chunk.astype("<u2").tobytes()).hexdigest(),
            }
        )
    return shards


def _noop_progress(stage: str, done: int, total: int) -> None:
    pass


def _build_into(
    tmp: Path,
    docs: Sequence[Document],
    *,
    name: str,
    source: str,
    input_sha256: str,
    vocab_size: int,
    val_fraction: float,
    shard_tokens: int,
    report: Progress,
) -> dict[str, Any]:
    report("Splitting documents", 0, 1)
    train, val, dups = split_documents(docs, val_fraction)
    report("Splitting documents", 1, 1)
    report("Training tokenizer (train documents only)", 0, 1)
    tok_path = tmp / TOKENIZER_FILE
    train_tokenizer(_training_sentences(train), vocab_size, tok_path)
    sp = load_tokenizer(tok_path)
    report("Training tokenizer (train documents only)", 1, 1)
    bos = sp.bos_id()
    vocab = sp.vocab_size()
    if vocab > 65536:
        raise InputError(f"vocabulary of {vocab} does not fit uint16 shards")
    everything = [*train, *val]
    encoded: list[list[int]] = []
    step = 64
    for i in range(0, len(everything), step):
        encoded.extend(sp.encode([d.text for d in everything[i : i + step]]))
        report("Tokenizing documents", len(encoded), len(everything))
    enc_train, enc_val = encoded[: len(train)], encoded[len(train) :]
    # Validation documents never appear in training: drop val docs that tokenize exactly like
    # a train doc (different text, same tokens after normalization) and empty documents.
    train_hashes = {hashlib.sha256(np.asarray(e, "<u2").tobytes()).digest() for e in enc_train}
    kept_val = [
        e
        for e in enc_val
        if e and hashlib.sha256(np.asarray(e, "<u2").tobytes()).digest() not in train_hashes
    ]
    dropped_val = len(enc_val) - len(kept_val)
    kept_train = [e for e in enc_train if e]
    if not kept_val or not kept_train:
        raise InputError("no non-empty validation or training documents remain after dedupe")
    report("Writing shards", 0, 2)
    train_stream = _stream(kept_train, bos)
    val_stream = _stream(kept_val, bos)
    shards = {
        "train": _write_split(tmp, "train", train_stream, shard_tokens),
        "val": _write_split(tmp, "val", val_stream, shard_tokens),
    }
    report("Writing shards", 1, 2)
    lut = build_byte_lut(tok_path)
    val_bytes = count_bytes(val_stream, lut)
    meta: dict[str, Any] = {
        "format": DATASET_FORMAT,
        "name": name,
        "source": source,
        "input_sha256": input_sha256,
        "python": {
            "implementation": platform.python_implementation(),
            "version": platform.python_version(),
            "minor": f"{sys.version_info.major}.{sys.version_info.minor}",
        },
        "pgolf_version": __version__,
        "split": {
            "rule": "val iff sha256(document text) / 2^256 < val_fraction; exact duplicates removed first",
            "val_fraction": val_fraction,
        },
        "documents": {
            "input": len(docs),
            "duplicates_removed": dups,
            "train": len(kept_train),
            "val": len(kept_val),
            "empty_dropped": (len(enc_train) - len(kept_train)) + sum(1 for e in enc_val if not e),
            "val_dropped_same_tokens_as_train": dropped_val - sum(1 for e in enc_val if not e),
        },
        "tokenizer": {
            "file": TOKENIZER_FILE,
            "sha256": hashlib.sha256(tok_path.read_bytes()).hexdigest(),
            "kind": "sentencepiece_bpe",
            "requested_vocab_size": vocab_size,
            "vocab_size": vocab,
            "bos_id": bos,
            "trained_on": "train documents only",
            "sentencepiece_version": spm_version(),
            "settings": SP_TRAINER_SETTINGS,
        },
        "shard_tokens": shard_tokens,
        "shards": shards,
        "tokens": {"train": int(train_stream.size), "val": int(val_stream.size)},
        "val_bytes": val_bytes,
        "fingerprint": data_fingerprint(tmp),
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    report("Writing shards", 2, 2)
    return meta


def _build_atomic(out: Path, force: bool, build: Callable[[Path], dict[str, Any]]) -> Dataset:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the dataset is an ordinary folder
    try:
        meta = build(tmp)
        old: Path | None = None
        if out.exists():
            if _complete(out) is not None and not force:
                # Another process finished the same build first: keep theirs.
                return Dataset._from_meta(out, _complete(out) or meta)
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            if old is not None:
                old.rename(out)
            theirs = _complete(out)  # lost a race to another finished build: use it
            if theirs is None:
                raise
            return Dataset._from_meta(out, theirs)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return Dataset._from_meta(out, meta)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _check_out(out: Path, input_sha256: str, force: bool) -> Dataset | None:
    """The existing dataset at `out` if it is complete and built from the same input."""
    if out.is_symlink() and not out.exists():
        raise InputError(f"{out}: is a broken symbolic link; choose another --out")
    if not out.exists():
        return None
    if not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    meta = _complete(out)
    if meta is None:
        if _read_meta(out) is None and any(out.iterdir()):
            raise InputError(f"{out}: not empty and not a pgolf dataset; choose another --out")
        return None
    if meta.get("input_sha256") == input_sha256 and not force:
        return Dataset._from_meta(out, meta)
    if not force:
        raise InputError(
            f"{out}: holds a dataset built from other input or settings; pass --force to replace it"
        )
    return None


def input_fingerprint(docs: Sequence[Document], **params: Any) -> str:
    """sha256 over the build settings and every document text: equal means same build."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for d in docs:
        h.update(_sha(d.text).encode())
    return h.hexdigest()


def build_dataset(
    docs: Sequence[Document],
    out: Path,
    *,
    name: str,
    source: str,
    vocab_size: int = DEFAULT_VOCAB,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    force: bool = False,
    progress: Progress | None = None,
) -> tuple[Dataset, bool]:
    """Build `docs` into `out` unless the same build is already there: (dataset, built_now)."""
    if not 0 < val_fraction < 1:
        raise InputError(f"--val-fraction {val_fraction}: must be between 0 and 1")
    if shard_tokens < 1:
        raise InputError(f"--shard-tokens {shard_tokens}: must be positive")
    input_sha = input_fingerprint(
        docs, vocab_size=vocab_size, val_fraction=val_fraction, shard_tokens=shard_tokens
    )
    existing = _check_out(out, input_sha, force)
    if existing is not None:
        return existing, False
    report = progress or _noop_progress
    ds = _build_atomic(
        out,
        force,
        lambda tmp: _build_into(
            tmp,
            docs,
            name=name,
            source=source,
            input_sha256=input_sha,
            vocab_size=vocab_size,
            val_fraction=val_fraction,
            shard_tokens=shard_tokens,
            report=report,
        ),
    )
    return ds, True


def build_default_dataset(
    vocab_size: int = DEFAULT_VOCAB,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> tuple[Dataset, bool]:
    """The embedded default dataset in the cache: (dataset, built_now). A complete existing
    build is kept as is (no-op) unless `force`."""
    out = default_dataset_dir(vocab_size)
    if not force:
        meta = _complete(out)
        if meta is not None:
            return Dataset._from_meta(out, meta), False
    report = progress or _noop_progress
    docs = list(
        default_documents(lambda done, total: report("Reading CPython documentation", done, total))
    )
    input_sha = input_fingerprint(docs, vocab_size=vocab_size, val_fraction=DEFAULT_VAL_FRACTION)
    ds = _build_atomic(
        out,
        force,
        lambda tmp: _build_into(
            tmp,
            docs,
            name=out.name,
            source=default_corpus_description(),
            input_sha256=input_sha,
            vocab_size=vocab_size,
            val_fraction=DEFAULT_VAL_FRACTION,
            shard_tokens=DEFAULT_SHARD_TOKENS,
            report=report,
        ),
    )
    return ds, True


@contextlib.contextmanager
def rich_progress(enabled: bool = True) -> Iterator[Progress | None]:
    """A progress callback drawing one rich bar per stage on stderr (None when disabled)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as prog:

        def report(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = prog.add_task(stage, total=total or None)
            prog.update(bars[stage], completed=done, total=total or None)

        yield report


def ensure_default_dataset(vocab_size: int = DEFAULT_VOCAB, *, progress: bool = True) -> Dataset:
    """Build the embedded default dataset once (a second call is a no-op) and return it."""
    out = default_dataset_dir(vocab_size)
    meta = _complete(out)
    if meta is not None:
        return Dataset._from_meta(out, meta)
    with rich_progress(progress) as report:
        ds, _ = build_default_dataset(vocab_size, progress=report)
    return ds

"""The sentencepiece tokenizer: training it (settings of upstream's fineweb_1024_bpe) and the
byte lookup table that turns tokens into UTF-8 byte counts for val_bpb (RULES.md, "The task").
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import sentencepiece as spm

from pgolf.errors import InputError

# Upstream data/download_hf_docs_and_tokenize.py settings, so shards built here tokenize like
# the challenge's sp1024 data.
SP_TRAINER_SETTINGS: dict[str, object] = {
    "model_type": "bpe",
    "character_coverage": 0.999,
    "byte_fallback": True,
    "split_digits": True,
    "normalization_rule_name": "nmt_nfkc",
    "add_dummy_prefix": False,
    "pad_id": 0,
    "bos_id": 1,
    "eos_id": 2,
    "unk_id": 3,
    "hard_vocab_limit": False,
}
MIN_VOCAB = 260  # 4 special ids + 256 byte-fallback pieces


def train_tokenizer(sentences: Iterable[str], vocab_size: int, out_path: Path) -> None:
    """Train a BPE sentencepiece model on `sentences` and write it to `out_path`.

    Deterministic for the same sentences in the same order: no sampling, no shuffling.
    """
    if vocab_size < MIN_VOCAB or vocab_size > 65536:
        raise InputError(f"--vocab-size {vocab_size}: must be between {MIN_VOCAB} and 65536")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=vocab_size,
            num_threads=1,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            max_sentence_length=1 << 16,
            minloglevel=2,
            **SP_TRAINER_SETTINGS,
        )
    except RuntimeError as e:
        raise InputError(
            f"sentencepiece could not train a {vocab_size}-token vocabulary: {e}"
        ) from None
    out_path.write_bytes(model.getvalue())


def load_tokenizer(path: str | os.PathLike[str]) -> spm.SentencePieceProcessor:
    """Load a sentencepiece model; InputError naming the file if it is not one."""
    p = Path(path)
    if p.exists() and not p.is_file() and not p.is_dir():
        # A FIFO or a device would block or never end.
        raise InputError(f"{p}: cannot read tokenizer (not a regular file)")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"{p}: cannot read tokenizer ({e.strerror or e})") from None
    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(data)
    except (RuntimeError, OSError):
        raise InputError(f"{p}: not a sentencepiece model") from None
    if sp.vocab_size() == 0:
        raise InputError(f"{p}: not a sentencepiece model (empty vocabulary)")
    return sp


def build_byte_lut(
    tokenizer_path: str | os.PathLike[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base_bytes int16, has_leading_space bool, is_boundary bool), one entry per token id.

    The rule (RULES.md): a token counts the UTF-8 bytes of its piece; a leading `▁` counts one
    space byte, added only when the previous token is not a boundary token; a byte-fallback
    piece is one byte; control, unknown and unused ids count 0 and are boundaries.
    """
    sp = load_tokenizer(tokenizer_path)
    n = sp.vocab_size()
    base = np.zeros(n, dtype=np.int16)
    lead = np.zeros(n, dtype=np.bool_)
    boundary = np.ones(n, dtype=np.bool_)
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith("▁"):
            lead[i] = True
            piece = piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return base, lead, boundary


def count_bytes(
    tokens: np.ndarray | Iterable[int], lut: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> int:
    """UTF-8 bytes that `tokens` stand for under the byte rule.

    The token before the first one is taken to be a boundary (as after BOS), so a stream that
    starts with BOS counts exactly as the evaluator counts its targets.
    """
    base, lead, boundary = lut
    t = np.asarray(tokens).reshape(-1)
    if t.size == 0:
        return 0
    if t.dtype.kind not in "iu":
        t = t.astype(np.int64)
    # Index with the array as is (uint16 shards stay uint16: no 4x copy of a big val split).
    if (t.dtype.kind == "i" and int(t.min()) < 0) or int(t.max()) >= base.size:
        raise ValueError(f"token id out of range for a {base.size}-token byte table")
    total = int(base[t].sum(dtype=np.int64))
    total += int(np.count_nonzero(lead[t[1:]] & ~boundary[t[:-1]]))
    return total

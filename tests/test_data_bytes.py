"""The byte rule (RULES.md): build_byte_lut/count_bytes must count exactly the UTF-8 bytes of
the text sentencepiece decodes, with the leading-space and boundary rules."""

from __future__ import annotations

import numpy as np
import pytest
import sentencepiece as spm
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.data import build_byte_lut, count_bytes
from pgolf.data.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> tuple[spm.SentencePieceProcessor, tuple]:
    from pydoc_data.topics import topics

    path = tmp_path_factory.mktemp("tok") / "tokenizer.model"
    lines = [ln for name in sorted(topics)[:20] for ln in topics[name].split("\n") if ln.strip()]
    train_tokenizer(lines, 512, path)
    return spm.SentencePieceProcessor(model_file=str(path)), build_byte_lut(path)


def test_lut_shapes_and_special_ids(tok) -> None:
    sp, (base, lead, boundary) = tok
    assert base.shape == lead.shape == boundary.shape == (sp.vocab_size(),)
    assert base.dtype == np.int16 and lead.dtype == boundary.dtype == np.bool_
    for special in (sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id()):
        assert base[special] == 0 and boundary[special] and not lead[special]
    byte_ids = [i for i in range(sp.vocab_size()) if sp.is_byte(i)]
    assert len(byte_ids) == 256 and all(base[i] == 1 and not boundary[i] for i in byte_ids)


def test_leading_space_counts_once_and_never_after_boundary(tok) -> None:
    sp, lut = tok
    base, lead, _ = lut
    the = sp.piece_to_id("▁the")
    assert lead[the] and base[the] == 3
    bos, unk = sp.bos_id(), sp.unk_id()
    word = sp.encode("word")
    assert count_bytes([bos, the], lut) == 3  # after BOS: no space byte
    assert count_bytes([the], lut) == 3  # start of stream acts as a boundary
    assert count_bytes([*word, the], lut) == len("word the")
    assert count_bytes([*word, unk, the], lut) == len("wordthe")  # unk: 0 bytes, a boundary
    assert count_bytes([], lut) == 0
    with pytest.raises(ValueError, match="out of range"):
        count_bytes([sp.vocab_size()], lut)


text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=200
)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(text, min_size=1, max_size=4))
def test_count_equals_utf8_bytes_of_decoded_text(tok, texts: list[str]) -> None:
    sp, lut = tok
    stream: list[int] = []
    want = 0
    for t in texts:
        ids = sp.encode(t)
        stream += [sp.bos_id(), *ids]
        want += len(sp.decode(ids).encode("utf-8"))
    assert count_bytes(np.array(stream, dtype=np.uint16), lut) == want


def test_count_on_real_documents(tok) -> None:
    from pydoc_data.topics import topics

    sp, lut = tok
    for name in sorted(topics)[-5:]:  # documents the tokenizer was not trained on
        ids = sp.encode(topics[name])
        assert count_bytes([sp.bos_id(), *ids], lut) == len(sp.decode(ids).encode("utf-8"))

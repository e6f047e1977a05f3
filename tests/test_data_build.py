"""Building datasets from text: split by document, tokenizer on train only, determinism,
no-op second call, atomic builds, and the `pgolf data --from-text` CLI."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from pgolf.cli import main
from pgolf.data import Dataset, build_dataset, read_shard, train_shards, val_shards
from pgolf.data.build import is_val_document, split_documents
from pgolf.data.check import check_dir
from pgolf.data.corpus import Document, text_documents
from pgolf.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "data"
VOCAB = 512


def _topic_docs(n: int = 40) -> list[Document]:
    from pydoc_data.topics import topics

    names = sorted(topics)[:n]
    return [Document(name, topics[name].strip()) for name in names]


def _write_corpus(d: Path, docs: list[Document]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i, doc in enumerate(docs):
        (d / f"doc{i:03d}.txt").write_text(doc.text, encoding="utf-8")
    return d


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _doc_landing_in(split: str, stem: str, fraction: float = 0.1) -> str:
    """A document text containing `stem` that the split rule puts in `split`."""
    for i in range(10_000):
        text = f"{stem} number {i}."
        if is_val_document(_sha(text), fraction) == (split == "val"):
            return text
    raise AssertionError("unreachable")


def _docs_of(shards: list[Path]) -> list[list[int]]:
    stream = np.concatenate([read_shard(s) for s in shards]).tolist()
    docs: list[list[int]] = []
    for t in stream:
        if t == 1:
            docs.append([])
        else:
            docs[-1].append(t)
    return docs


def test_split_is_by_document_hash_and_deduplicated() -> None:
    docs = list({d.text: d for d in _topic_docs(60)}.values())
    docs_with_dup = [*docs, Document("copy", docs[3].text)]
    train, val, dups = split_documents(docs_with_dup, 0.2)
    assert dups == 1
    assert len(train) + len(val) == len(docs)
    assert {d.text for d in train}.isdisjoint({d.text for d in val})
    assert all(is_val_document(_sha(d.text), 0.2) for d in val)
    # A document's split does not depend on the others.
    _train2, val2, _ = split_documents(docs[10:], 0.2)
    assert {d.text for d in val2} == {d.text for d in val} - {d.text for d in docs[:10]}


def test_tiny_corpus_gets_both_splits() -> None:
    train, val, _ = split_documents([Document("a", "one doc"), Document("b", "another doc")], 0.1)
    assert len(train) == 1 and len(val) == 1
    with pytest.raises(InputError, match="at least 2 distinct documents"):
        split_documents([Document("a", "x"), Document("b", "x")], 0.1)


def test_tokenizer_is_trained_on_train_documents_only(tmp_path: Path) -> None:
    base = _topic_docs(30)
    # A val-only word and a val-only letter, repeated so BPE would surely learn them from val.
    val_doc = _doc_landing_in("val", " ".join(["zqxjvk жук"] * 300))
    train_doc = _doc_landing_in("train", " ".join(["wpfmbg"] * 300))
    ds, built = build_dataset(
        [*base, Document("v", val_doc), Document("t", train_doc)],
        tmp_path / "ds",
        name="t",
        source="test",
        vocab_size=VOCAB,
    )
    assert built
    sp = spm.SentencePieceProcessor(model_file=str(ds.tokenizer_path))
    pieces = [sp.id_to_piece(i) for i in range(sp.vocab_size())]
    assert not any("zqx" in p or "qxj" in p or "ж" in p for p in pieces)
    # The same kind of word in a training document is learned: the check above can fail.
    assert any("wpfm" in p for p in pieces)
    # The val-only document is in the val shards, and only there.
    val_ids = sp.encode(val_doc)
    assert val_ids in _docs_of(val_shards(ds.path))
    assert val_ids not in _docs_of(train_shards(ds.path))


def test_no_val_document_in_train_and_all_documents_kept(tmp_path: Path) -> None:
    docs = list({d.text: d for d in _topic_docs(50)}.values())
    ds, _ = build_dataset(docs, tmp_path / "ds", name="t", source="test", vocab_size=VOCAB)
    sp = spm.SentencePieceProcessor(model_file=str(ds.tokenizer_path))
    train_texts = {sp.decode(d) for d in _docs_of(train_shards(ds.path))}
    val_texts = {sp.decode(d) for d in _docs_of(val_shards(ds.path))}
    assert val_texts and train_texts
    assert train_texts.isdisjoint(val_texts)
    assert len(train_texts) + len(val_texts) == len(docs)
    assert ds.meta["documents"]["train"] + ds.meta["documents"]["val"] == len(docs)
    report = check_dir(ds.path)
    assert report.ok and report.overlap_documents == 0
    assert report.fingerprint == ds.fingerprint
    assert (report.train.tokens, report.val.tokens) == (ds.n_train_tokens, ds.n_val_tokens)


def test_build_is_deterministic_and_second_call_is_noop(tmp_path: Path) -> None:
    docs = _topic_docs(30)
    kw = {"name": "t", "source": "test", "vocab_size": VOCAB, "shard_tokens": 20_000}
    a, built_a = build_dataset(docs, tmp_path / "a", **kw)
    b, built_b = build_dataset(list(reversed(docs)), tmp_path / "b", **kw)
    assert built_a and built_b
    assert a.fingerprint == b.fingerprint
    assert a.tokenizer_path.read_bytes() == b.tokenizer_path.read_bytes()
    assert len(train_shards(a.path)) > 1  # shard_tokens respected
    mtimes = {p.name: p.stat().st_mtime_ns for p in a.path.iterdir()}
    again, built_again = build_dataset(docs, tmp_path / "a", **kw)
    assert not built_again and again.fingerprint == a.fingerprint
    assert {p.name: p.stat().st_mtime_ns for p in a.path.iterdir()} == mtimes
    assert Dataset.load(a.path).fingerprint == a.fingerprint


def test_other_input_into_existing_dataset_needs_force(tmp_path: Path) -> None:
    docs = _topic_docs(20)
    kw = {"name": "t", "source": "test", "vocab_size": VOCAB}
    build_dataset(docs, tmp_path / "ds", **kw)
    with pytest.raises(InputError, match="--force"):
        build_dataset(docs[:15], tmp_path / "ds", **kw)
    ds, built = build_dataset(docs[:15], tmp_path / "ds", force=True, **kw)
    assert built and ds.meta["documents"]["input"] == 15
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("user files")
    with pytest.raises(InputError, match="not a pgolf dataset"):
        build_dataset(docs, tmp_path / "mine", force=True, **kw)
    assert (tmp_path / "mine" / "notes.txt").exists()


def test_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pgolf.data.build as build_mod

    calls = []

    def failing_write(path: Path, tokens: object) -> None:
        calls.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(build_mod, "write_shard", failing_write)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(_topic_docs(10), tmp_path / "ds", name="t", source="t", vocab_size=VOCAB)
    assert calls
    assert list(tmp_path.iterdir()) == []


def test_text_documents_paragraphs_or_files(tmp_path: Path) -> None:
    docs, how = text_documents([FIXTURES / "paragraphs.txt"])
    assert len(docs) == 10 and "paragraphs" in how
    assert docs[0].text.startswith("The lighthouse keeper") and "\n\n" not in docs[0].text
    d = _write_corpus(tmp_path / "c", _topic_docs(3))
    (d / "sub").mkdir()
    (d / "sub" / "more.md").write_text("# heading\n\nbody\n")
    (d / "image.png").write_bytes(b"\x89PNG")
    docs, how = text_documents([d])
    assert len(docs) == 4 and "one document each" in how
    with pytest.raises(InputError, match="not UTF-8"):
        (d / "bad.txt").write_bytes(b"caf\xe9")
        text_documents([d])
    with pytest.raises(InputError, match="no such file"):
        text_documents([tmp_path / "missing.txt"])


def test_cli_from_text_builds_then_noop(tmp_path: Path, runner) -> None:
    corpus = _write_corpus(tmp_path / "corpus", _topic_docs(25))
    out = tmp_path / "out"
    args = ["data", "--from-text", str(corpus), "--out", str(out), "--vocab-size", str(VOCAB)]
    first = runner.invoke(main, [*args, "--no-progress"])
    assert first.exit_code == 0, first.output
    assert f"Built dataset in {out}" in first.output
    assert f"DATA_PATH={out} TOKENIZER_PATH={out / 'tokenizer.model'}" in first.output
    ds = Dataset.load(out)
    assert f"fingerprint: {ds.fingerprint}" in first.output
    assert ds.vocab_size == VOCAB and ds.meta["tokenizer"]["requested_vocab_size"] == VOCAB
    second = runner.invoke(main, [*args, "--no-progress"])
    assert second.exit_code == 0
    assert "already built" in second.output and "nothing to do" in second.output


def test_cli_from_text_several_files_and_default_out(
    tmp_path: Path, runner, isolated_cache
) -> None:
    corpus = _write_corpus(tmp_path / "corpus", _topic_docs(12))
    files = sorted(str(p) for p in corpus.iterdir())
    result = runner.invoke(
        main, ["data", "--no-progress", "--vocab-size", str(VOCAB), "--from-text", *files]
    )
    assert result.exit_code == 0, result.output
    built = [p for p in Path(isolated_cache).iterdir() if p.name.startswith("text_")]
    assert len(built) == 1 and built[0].name.endswith(f"_sp{VOCAB}")
    assert Dataset.load(built[0]).meta["documents"]["input"] == 12


def test_cli_bad_text_input(tmp_path: Path, runner) -> None:
    result = runner.invoke(main, ["data", "--no-progress", "--from-text", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "nope: no such file or directory" in result.stderr
    result = runner.invoke(main, ["data", str(tmp_path)])
    assert result.exit_code == 2 and "--from-text" in result.output
    result = runner.invoke(main, ["data", "--tokenizer", str(tmp_path / "t.model")])
    assert result.exit_code == 2 and "go with --check" in result.output
    result = runner.invoke(main, ["data", "--shard-tokens", "100"])
    assert result.exit_code == 2 and "go with --from-text or --out" in result.output
    result = runner.invoke(main, ["data", "--check", str(tmp_path), "--from-text", "x.txt"])
    assert result.exit_code == 2 and "cannot be combined" in result.output


def test_damaged_dataset_is_rebuilt(tmp_path: Path) -> None:
    docs = _topic_docs(20)
    kw = {"name": "t", "source": "test", "vocab_size": VOCAB}
    ds, _ = build_dataset(docs, tmp_path / "ds", **kw)
    (ds.path / "fineweb_val_000000.bin").unlink()
    again, built = build_dataset(docs, tmp_path / "ds", **kw)
    assert built and again.fingerprint == ds.fingerprint
    assert (ds.path / "fineweb_val_000000.bin").is_file()


def test_concurrent_build_keeps_the_first_finished(tmp_path: Path) -> None:
    import pgolf.data.build as build_mod

    docs = _topic_docs(20)
    ds, _ = build_dataset(docs, tmp_path / "ds", name="t", source="t", vocab_size=VOCAB)
    before = ds.tokenizer_path.stat().st_mtime_ns

    def slower_twin(tmp: Path) -> dict:
        (tmp / "partial").write_text("x")
        return dict(ds.meta)

    kept = build_mod._build_atomic(tmp_path / "ds", False, slower_twin)
    assert kept.fingerprint == ds.fingerprint
    assert ds.tokenizer_path.stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_cli_hostile_text_input_gives_one_line(tmp_path: Path, runner) -> None:
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    sparse = tmp_path / "sparse.txt"
    with sparse.open("wb") as f:
        f.truncate(3 << 30)  # 3 GB of NUL bytes without using disk
    link = tmp_path / "out_link"
    link.symlink_to(tmp_path / "missing")
    text = tmp_path / "a.txt"
    text.write_text("one paragraph\n\nanother one\n")
    cases = [
        (["--from-text", str(fifo)], "fifo.txt: not a regular file"),
        (["--from-text", str(sparse)], "sparse.txt: binary data (NUL byte at offset 0)"),
        (["--from-text", str(text), "--out", str(link)], "out_link: is a broken symbolic link"),
    ]
    for args, message in cases:
        result = runner.invoke(main, ["data", "--no-progress", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output

"""`pgolf data --check`: counts, fingerprint, and every content problem it must catch
(train/val overlap, ids >= vocab, BOS layout), on pgolf and upstream FineWeb layouts."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.cli import main
from pgolf.data import data_fingerprint, write_shard
from pgolf.data.check import check_dir
from pgolf.data.tokenizer import train_tokenizer

BOS = 1


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pydoc_data.topics import topics

    path = tmp_path_factory.mktemp("tok") / "tokenizer.model"
    lines = [ln for name in sorted(topics)[:20] for ln in topics[name].split("\n") if ln.strip()]
    train_tokenizer(lines, 512, path)
    return path


def _write_split(d: Path, split: str, docs: list[list[int]], per_shard: int) -> None:
    stream = [t for doc in docs for t in (BOS, *doc)]
    for i, start in enumerate(range(0, max(len(stream), 1), per_shard)):
        write_shard(d / f"fineweb_{split}_{i:06d}.bin", stream[start : start + per_shard])


def _dataset(d: Path, tokenizer: Path, train: list[list[int]], val: list[list[int]]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    _write_split(d, "train", train, 50)
    _write_split(d, "val", val, 50)
    shutil.copy(tokenizer, d / "tokenizer.model")
    return d


def _docs(n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(4, 500, size=int(rng.integers(1, 40))).tolist() for _ in range(n)]


doc_strategy = st.lists(st.integers(2, 600), min_size=1, max_size=30)


@settings(max_examples=40, deadline=None)
@given(
    train=st.lists(doc_strategy, min_size=1, max_size=12),
    val=st.lists(doc_strategy, min_size=1, max_size=6),
    per_shard=st.integers(1, 40),
    leak=st.booleans(),
)
def test_documents_counted_across_shard_boundaries(train, val, per_shard, leak) -> None:
    if leak:
        train = [*train, val[0]]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _write_split(d, "train", train, per_shard)
        _write_split(d, "val", val, per_shard)
        r = check_dir(d)
        assert r.train.documents == len(train) and r.val.documents == len(val)
        assert r.train.tokens == sum(len(x) + 1 for x in train)
        assert r.fingerprint == data_fingerprint(d)
        expected_overlap = sum(1 for x in train if x in val)
        assert r.overlap_documents == expected_overlap
        assert r.ok == (expected_overlap == 0)


def test_clean_dataset_passes_with_counts(tmp_path: Path, tokenizer: Path, runner) -> None:
    d = _dataset(tmp_path / "ds", tokenizer, _docs(30, 1), _docs(5, 2))
    result = runner.invoke(main, ["data", "--check", str(d), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "train/val overlapping documents: 0" in result.output
    assert f"fingerprint: {data_fingerprint(d)}" in result.output
    assert "vocab size: 512 (BOS id 1)" in result.output
    assert result.output.rstrip().endswith("OK")
    as_json = runner.invoke(main, ["data", "--check", str(d), "--json", "--no-progress"])
    report = json.loads(as_json.output)
    assert report["ok"] and report["train"]["documents"] == 30 and report["val"]["documents"] == 5


def test_overlap_is_a_problem(tmp_path: Path, tokenizer: Path, runner) -> None:
    val = _docs(5, 2)
    d = _dataset(tmp_path / "ds", tokenizer, [*_docs(30, 1), val[3]], val)
    result = runner.invoke(main, ["data", "--check", str(d), "--no-progress"])
    assert result.exit_code == 1
    assert "1 train documents also appear in val" in result.output
    assert "problem(s) found" in result.stderr


def test_token_id_beyond_vocab_is_a_problem(tmp_path: Path, tokenizer: Path, runner) -> None:
    d = _dataset(tmp_path / "ds", tokenizer, [*_docs(3, 1), [5, 900, 6]], _docs(2, 2))
    result = runner.invoke(main, ["data", "--check", str(d), "--no-progress"])
    assert result.exit_code == 1
    assert "token ids >= vocab size 512" in result.output and "fineweb_train_" in result.output
    # In val too: reported, and the byte count is skipped rather than crashing.
    d2 = _dataset(tmp_path / "ds2", tokenizer, _docs(3, 1), [[5, 4000, 6]])
    result = runner.invoke(main, ["data", "--check", str(d2), "--no-progress"])
    assert result.exit_code == 1 and "fineweb_val_000000.bin: 1 token ids >= vocab" in result.output
    # Without a tokenizer the vocabulary is unknown: said so, not failed.
    (d / "tokenizer.model").unlink()
    result = runner.invoke(main, ["data", "--check", str(d), "--no-progress"])
    assert result.exit_code == 0 and "no tokenizer found" in result.output
    # An explicit --tokenizer is used.
    result = runner.invoke(
        main, ["data", "--check", str(d), "--tokenizer", str(tokenizer), "--no-progress"]
    )
    assert result.exit_code == 1


def test_unusable_tokenizer_is_exit_2(tmp_path: Path, tokenizer: Path, runner) -> None:
    d = _dataset(tmp_path / "ds", tokenizer, _docs(3, 1), _docs(2, 2))
    (d / "tokenizer.model").write_bytes(b"garbage")
    result = runner.invoke(main, ["data", "--check", str(d), "--no-progress"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {d / 'tokenizer.model'}: not a sentencepiece model"


def test_empty_documents_are_noted_not_overlap(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    write_shard(d / "fineweb_train_000000.bin", [1, 5, 6, 1, 1, 7])
    write_shard(d / "fineweb_val_000000.bin", [1, 8, 1])
    r = check_dir(d)
    assert r.ok and r.overlap_documents == 0
    assert r.train.empty_documents == 1 and r.val.empty_documents == 1
    assert any("1 empty train documents" in n for n in r.notes)


def test_split_not_starting_with_bos_is_a_problem(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    write_shard(d / "fineweb_train_000000.bin", [1, 5, 6, 1, 7])
    write_shard(d / "fineweb_val_000000.bin", [9, 5, 1, 8])
    r = check_dir(d)
    assert not r.ok
    assert any("fineweb_val_000000.bin: first val token is 9, not BOS" in p for p in r.problems)


def test_upstream_fineweb_layout_with_sidecars(tmp_path: Path, tokenizer: Path, runner) -> None:
    shards = tmp_path / "data" / "datasets" / "fineweb10B_sp1024"
    shards.mkdir(parents=True)
    _write_split(shards, "train", _docs(20, 3), 60)
    _write_split(shards, "val", _docs(4, 4), 60)
    (tmp_path / "data" / "tokenizers").mkdir()
    shutil.copy(tokenizer, tmp_path / "data" / "tokenizers" / "fineweb_1024_bpe.model")
    (shards / "fineweb_val_bytes_000000.bin").write_bytes(b"\x00" * 10)  # not a shard: ignored
    result = runner.invoke(main, ["data", "--check", str(shards), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "fineweb_1024_bpe.model" in result.output
    assert "byte sidecars ignored: fineweb_val_bytes_000000.bin" in result.output
    assert f"fingerprint: {data_fingerprint(shards)}" in result.output


def test_max_train_shards_limits_overlap_scan_not_fingerprint(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    val = _docs(3, 5)
    _write_split(d, "train", [*_docs(10, 6), val[0]], 20)
    _write_split(d, "val", val, 100)
    assert not check_dir(d).ok
    r = check_dir(d, max_train_shards=1)
    assert r.ok and r.train_shards_checked == 1
    assert r.fingerprint == data_fingerprint(d)
    assert r.train.tokens == sum(len(x) + 1 for x in _docs(10, 6)) + len(val[0]) + 1
    assert any("first 1 of" in n for n in r.notes)


def test_shards_changed_after_build_are_reported(tmp_path: Path, tokenizer: Path) -> None:
    d = _dataset(tmp_path / "ds", tokenizer, _docs(10, 1), _docs(3, 2))
    (d / "dataset.json").write_text(json.dumps({"fingerprint": "0" * 64}))
    r = check_dir(d)
    assert any("differs from the shards" in p for p in r.problems)


def test_a_fifo_tokenizer_is_exit_2_without_blocking(tmp_path: Path, runner) -> None:
    write_shard(tmp_path / "fineweb_train_000000.bin", [1, 5, 6])
    write_shard(tmp_path / "fineweb_val_000000.bin", [1, 7, 8])
    fifo = tmp_path / "tok.model"
    os.mkfifo(fifo)
    args = ["data", "--check", str(tmp_path), "--tokenizer", str(fifo), "--no-progress"]
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert "tok.model: cannot read tokenizer (not a regular file)" in result.output

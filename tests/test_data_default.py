"""The embedded default dataset, built once per test session in the isolated cache."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from pgolf.cli import main
from pgolf.data import (
    Dataset,
    build_byte_lut,
    count_bytes,
    data_fingerprint,
    default_cache_dir,
    ensure_default_dataset,
    read_shard,
    val_shards,
)
from pgolf.data.check import check_dir


@pytest.fixture(scope="session")
def default_ds(isolated_cache: Path) -> Dataset:
    return ensure_default_dataset(progress=False)


def test_layout_and_sizes(default_ds: Dataset) -> None:
    assert default_ds.path == default_cache_dir() / "default_sp1024"
    names = sorted(p.name for p in default_ds.path.iterdir())
    assert "tokenizer.model" in names and "dataset.json" in names
    assert "fineweb_train_000000.bin" in names and "fineweb_val_000000.bin" in names
    assert default_ds.vocab_size == 1024
    assert 1_000_000 <= default_ds.n_train_tokens <= 3_000_000
    assert 100_000 <= default_ds.n_val_tokens <= 250_000


def test_dataset_json_records_source_and_fingerprint(default_ds: Dataset) -> None:
    meta = json.loads((default_ds.path / "dataset.json").read_text())
    assert meta["fingerprint"] == default_ds.fingerprint == data_fingerprint(default_ds.path)
    assert meta["python"]["minor"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert meta["python"]["version"] in meta["source"]
    assert meta["tokenizer"]["trained_on"] == "train documents only"
    assert meta["tokens"] == {"train": default_ds.n_train_tokens, "val": default_ds.n_val_tokens}


def test_check_passes_no_val_document_in_train(default_ds: Dataset) -> None:
    report = check_dir(default_ds.path)
    assert report.ok, report.problems
    assert report.overlap_documents == 0
    assert report.val.documents == default_ds.meta["documents"]["val"]


def test_val_byte_count_equals_decoded_text(default_ds: Dataset) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(default_ds.tokenizer_path))
    lut = build_byte_lut(default_ds.tokenizer_path)
    tokens = np.concatenate([read_shard(p) for p in val_shards(default_ds.path)])
    starts = [*np.flatnonzero(tokens == sp.bos_id()).tolist(), tokens.size]
    decoded = sum(
        len(sp.decode(tokens[a + 1 : b].tolist()).encode("utf-8"))
        for a, b in itertools.pairwise(starts)
    )
    assert count_bytes(tokens, lut) == decoded == default_ds.meta["val_bytes"]


def test_second_call_is_a_noop(default_ds: Dataset, runner) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in default_ds.path.iterdir()}
    again = ensure_default_dataset(progress=False)
    assert again == default_ds
    result = runner.invoke(main, ["data", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"Dataset already built in {default_ds.path}; nothing to do" in result.output
    assert f"fingerprint: {default_ds.fingerprint}" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in default_ds.path.iterdir()} == before
    siblings = [p.name for p in default_ds.path.parent.iterdir() if ".tmp-" in p.name]
    assert siblings == []


def test_corpus_is_the_same_in_a_fresh_process(default_ds: Dataset) -> None:
    """Same documents regardless of hash seed or process: the build input is deterministic."""
    code = (
        "from pgolf.data.build import input_fingerprint\n"
        "from pgolf.data.corpus import default_documents\n"
        "print(input_fingerprint(list(default_documents()), vocab_size=1024, val_fraction=0.1))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == default_ds.meta["input_sha256"]


def test_bundled_trainer_counts_the_same_val_bytes(default_ds: Dataset) -> None:
    """The trainer's own byte tables (it cannot import pgolf) agree with build_byte_lut."""
    trainer = pytest.importorskip("pgolf.train_gpt")
    if not hasattr(trainer, "build_byte_luts") or not hasattr(trainer, "target_bytes"):
        pytest.skip("bundled trainer has no build_byte_luts/target_bytes")
    sp = spm.SentencePieceProcessor(model_file=str(default_ds.tokenizer_path))
    tokens = np.concatenate([read_shard(p) for p in val_shards(default_ds.path)]).astype(np.int64)
    theirs = int(trainer.target_bytes(tokens, trainer.build_byte_luts(sp, 1024)).sum())
    assert theirs == count_bytes(tokens, build_byte_lut(default_ds.tokenizer_path))

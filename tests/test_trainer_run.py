"""End-to-end runs of the bundled trainer on a tiny dataset written here.

Each run is a real subprocess (`python train_gpt.py`, or torchrun with 2 gloo ranks) with a
tiny model, so the whole file stays well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import pydoc_data.topics
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from pgolf import train_gpt as tg

SCRIPT = Path(tg.__file__)
GUARD = Path(__file__).parent / "fixtures" / "trainer" / "guard_open.py"
VOCAB = 400
TINY = {
    "VOCAB_SIZE": str(VOCAB),
    "NUM_LAYERS": "1",
    "MODEL_DIM": "32",
    "NUM_HEADS": "2",
    "NUM_KV_HEADS": "1",
    "TRAIN_SEQ_LEN": "32",
    "TRAIN_BATCH_TOKENS": "512",
    "ITERATIONS": "6",
    "TRAIN_LOG_EVERY": "1",
    "MAX_WALLCLOCK_SECONDS": "0",
    "VAL_BATCH_SIZE": "2048",
    "ZSTD_LEVEL": "3",
    "DEVICE": "cpu",
    "SEED": "7",
}
FINAL = re.compile(
    r"^final_int8_zstd_roundtrip_exact val_loss:(\d+\.\d{8}) val_bpb:(\d+\.\d{8})$", re.M
)


def write_shard(path: Path, tokens: list[int]) -> None:
    header = np.zeros(256, dtype="<i4")
    header[:3] = (tg.SHARD_MAGIC, tg.SHARD_VERSION, len(tokens))
    path.write_bytes(header.tobytes() + np.asarray(tokens, dtype="<u2").tobytes())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pydoc topics: 24 train documents, 3 val documents, a 400-piece BPE tokenizer."""
    out = tmp_path_factory.mktemp("tinydata")
    topics = [text for _key, text in sorted(pydoc_data.topics.topics.items())]
    train, val = topics[:24], topics[30:33]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([line for doc in train for line in doc.splitlines() if line]),
        model_prefix=str(out / "tokenizer"),
        vocab_size=VOCAB,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=0.995,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        bos_id=1,
        eos_id=-1,
        unk_id=0,
        pad_id=-1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    for name, docs in (("train", train), ("val", val)):
        tokens = [t for doc in docs for t in [1, *sp.encode(doc)]]
        write_shard(out / f"fineweb_{name}_000000.bin", tokens)
    # A byte sidecar matches the val glob but must never be read as tokens.
    (out / "fineweb_val_bytes_000000.bin").write_bytes(b"not a shard")
    return out


def run_trainer(
    cwd: Path, dataset: Path, extra: dict[str, str] | None = None, launcher: list[str] | None = None
) -> str:
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **TINY, "DATA_PATH": str(dataset), **(extra or {})}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [*(launcher or [sys.executable]), str(SCRIPT)]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (cwd / "train.log").write_text(proc.stdout)
    return proc.stdout


def step_losses(log: str) -> list[float]:
    return [float(m) for m in re.findall(r"^step:\d+/\d+ train_loss:([\d.]+) ", log, re.M)]


def val_tokens(dataset: Path) -> np.ndarray:
    return tg.load_shard(str(dataset / "fineweb_val_000000.bin")).astype(np.int64)


@pytest.fixture(scope="module")
def guarded_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list]:
    cwd = tmp_path_factory.mktemp("guarded")
    events = cwd / "events.json"
    env = {**os.environ, **TINY, "DATA_PATH": str(dataset), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(GUARD), str(SCRIPT), str(events)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return cwd, proc.stdout, json.loads(events.read_text())


def test_training_opens_no_val_file_before_the_artifact_is_written(guarded_run) -> None:
    _cwd, _log, events = guarded_run
    paths = [p for p, _mode in events]

    def first(pred) -> int:
        return next(i for i, (p, mode) in enumerate(events) if pred(p, mode))

    written = first(lambda p, m: p.endswith(tg.ARTIFACT_NAME) and "w" in m)
    first_train = first(lambda p, m: "fineweb_train_" in p)
    first_val = first(lambda p, m: "fineweb_val_" in p)
    assert first_train < written < first_val  # R4: val is only opened for evaluation
    # Evaluation reads the artifact back from disk before it looks at val (R3).
    assert written < first(lambda p, m: p.endswith(tg.ARTIFACT_NAME) and "r" in m) < first_val
    assert not any("fineweb_val_bytes_" in p for p in paths)


def test_log_has_the_r8_structure(guarded_run) -> None:
    cwd, log, _events = guarded_run
    source = SCRIPT.read_text(encoding="utf-8")
    assert log.startswith(source)
    lines = log[len(source) :].splitlines()
    assert lines[1] == "=" * 100 and lines[0] == ""  # source, newline, 100 '='
    for key in ("seed:7", "ppm_enabled:0", "eval_stride:0", "iterations:6", "model_dim:32"):
        assert key in lines
    steps = [ln for ln in lines if ln.startswith("step:")]
    assert len(steps) == 6
    assert all(
        re.fullmatch(r"step:\d+/6 train_loss:\d+\.\d{4} train_time:\d+ms step_avg:[\d.]+ms", s)
        for s in steps
    )
    artifact = (cwd / tg.ARTIFACT_NAME).stat().st_size
    code = SCRIPT.stat().st_size
    assert f"Serialized model int8+zstd: {artifact} bytes" in lines
    assert f"Code size: {code} bytes" in lines
    assert f"Total submission size int8+zstd: {artifact + code} bytes" in lines
    assert any(re.fullmatch(r"train_time_total:\d+ms", ln) for ln in lines)
    assert re.fullmatch(r"eval_time_total:\d+ms", lines[-1])
    assert any(re.fullmatch(r"unigram_val_bpb:\d+\.\d{8}", ln) for ln in lines)
    metric_lines = [ln for ln in lines if re.search(r"(^| )val_bpb:", ln)]
    assert FINAL.fullmatch(metric_lines[-1])  # the reported score is the last val_bpb line
    assert re.fullmatch(
        r"final_int8_zstd_roundtrip val_loss:\d+\.\d{8} val_bpb:\d+\.\d{8} eval_time:\d+ms",
        metric_lines[-2],
    )
    # Phases in order: training steps, then sizes, then evaluation.
    order = [next(i for i, ln in enumerate(lines) if ln.startswith(p)) for p in
             ("step:1/", "Serialized model", "train_time_total", "val_loader", "final_int8")]  # fmt: skip
    assert order == sorted(order)


def test_pgolf_log_parser_reads_the_log(guarded_run) -> None:
    logs = pytest.importorskip("pgolf.logs")
    cwd, log, _events = guarded_run
    parsed = logs.parse_log_text(log)
    bpb = float(FINAL.search(log).group(2))
    assert parsed.seed == 7 and parsed.val_bpb == pytest.approx(bpb, abs=1e-9)
    assert parsed.bytes_total == (cwd / tg.ARTIFACT_NAME).stat().st_size + SCRIPT.stat().st_size
    assert parsed.embedded_source.rstrip("\n") == SCRIPT.read_text(encoding="utf-8").rstrip("\n")
    assert parsed.train_time_s and parsed.eval_time_s


def test_artifact_roundtrip_score_equals_the_logged_score(guarded_run, dataset: Path) -> None:
    cwd, log, _events = guarded_run
    loss, bpb = (float(x) for x in FINAL.search(log).groups())
    scorer = tg.pgolf_scorer(str(cwd / tg.ARTIFACT_NAME), **TINY)
    tokens = val_tokens(dataset)
    nll = scorer.score(tokens)
    sp = spm.SentencePieceProcessor(model_file=str(dataset / "tokenizer.model"))
    n_bytes = tg.target_bytes(tokens, tg.build_byte_luts(sp, VOCAB))
    again_loss, again_bpb = tg.bpb_of(nll, n_bytes)
    assert again_loss == pytest.approx(loss, abs=2e-8)
    assert again_bpb == pytest.approx(bpb, abs=2e-8)
    # ...and the network learned something in 6 steps: below the uniform ln(V).
    assert loss < np.log(VOCAB)


def test_same_seed_gives_the_same_losses(guarded_run, dataset: Path, tmp_path: Path) -> None:
    _cwd, log, _events = guarded_run
    again = run_trainer(tmp_path / "again", dataset)
    assert step_losses(again) == step_losses(log) and len(step_losses(log)) == 6
    assert FINAL.search(again).groups() == FINAL.search(log).groups()
    other = run_trainer(tmp_path / "other", dataset, {"SEED": "8", "ITERATIONS": "2"})
    assert step_losses(other)[0] != step_losses(log)[0]


def test_two_process_gloo_ddp_matches_one_process(
    guarded_run, dataset: Path, tmp_path: Path
) -> None:
    _cwd, log, _events = guarded_run
    cwd = tmp_path / "ddp"
    extra = {"PPM_ENABLED": "1", "EVAL_STRIDE": "16", "MASTER_ADDR": "127.0.0.1"}
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    ddp_log = run_trainer(cwd, dataset, extra, launcher=torchrun)
    assert "world_size:2 grad_accum_steps:1" in ddp_log
    np.testing.assert_allclose(step_losses(ddp_log), step_losses(log), atol=2e-3)
    # The distributed sliding-window + PPM evaluation equals the scorer's recomputation.
    _loss, bpb = (float(x) for x in FINAL.search(ddp_log).groups())
    scorer = tg.pgolf_scorer(str(cwd / tg.ARTIFACT_NAME), **TINY, PPM_ENABLED=1, EVAL_STRIDE=16)
    tokens = val_tokens(dataset)
    sp = spm.SentencePieceProcessor(model_file=str(dataset / "tokenizer.model"))
    again = tg.bpb_of(scorer.score(tokens), tg.target_bytes(tokens, tg.build_byte_luts(sp, VOCAB)))
    assert again[1] == pytest.approx(bpb, abs=2e-8)
    gain = re.search(r"^ppm_diagnostic network_only_bpb:([\d.]+) mixed_bpb:([\d.]+)", ddp_log, re.M)
    assert gain and float(gain.group(2)) == pytest.approx(bpb, abs=1e-8)


def test_byte_accounting_counts_each_utf8_byte_once(dataset: Path) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(dataset / "tokenizer.model"))
    docs = ["Hello  world\n  indented — naïve", "Second doc:\ttabs, digits 12345", " leading space"]
    tokens = np.array([t for d in docs for t in [1, *sp.encode(d)]], dtype=np.int64)
    counted = int(tg.target_bytes(tokens, tg.build_byte_luts(sp, VOCAB)).sum())
    assert counted == sum(len(d.encode("utf-8")) for d in docs)

"""`pgolf run` with the real bundled trainer on the embedded default dataset (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgolf.cli import main
from pgolf.logs import parse_log
from pgolf.runner import bundled_script
from pgolf.submission import validate

TINY = {
    "ITERATIONS": "2",
    "MODEL_DIM": "32",
    "NUM_LAYERS": "1",
    "NUM_HEADS": "2",
    "NUM_KV_HEADS": "1",
    "ZSTD_LEVEL": "1",
    "TRAIN_BATCH_TOKENS": "1024",
    "TRAIN_SEQ_LEN": "64",
}


@pytest.mark.slow
def test_bundled_trainer_end_to_end(runner: CliRunner, tmp_path: Path) -> None:
    if not bundled_script().is_file():
        pytest.skip("the bundled trainer is not in this checkout")
    out = tmp_path / "run"
    env = [arg for key, value in TINY.items() for arg in ("--env", f"{key}={value}")]
    result = runner.invoke(main, ["run", "--seeds", "7", "--out", str(out), "--no-audit", *env])
    assert result.exit_code == 0, result.output
    log = parse_log(out / "train_seed7.log")
    assert log.seed == 7
    assert log.val_bpb is not None and log.train_time_s and log.eval_time_s
    shipped = (out / "train_gpt.py").read_text()
    assert log.embedded_source is not None
    assert log.embedded_source.rstrip("\n") == shipped.rstrip("\n")
    artifact = out / "seed7" / "final_model.int8.ptz"
    measured = (out / "train_gpt.py").stat().st_size + artifact.stat().st_size
    # The trainer's own claim and pgolf's recount from the files agree.
    assert log.bytes_total == measured
    submission = json.loads((out / "submission.json").read_text())
    assert validate(submission) == []
    assert submission["val_bpb"] == pytest.approx(log.val_bpb, abs=1e-8)
    assert submission["seed_results"]["7"]["bytes_total"] == measured
    state = json.loads((out / "run.json").read_text())
    assert state["data"]["fingerprint"] and state["env"]["ITERATIONS"] == "2"

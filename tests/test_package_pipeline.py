"""`pgolf run` -> `pgolf package` -> `pgolf verify` with the real runner and a fake trainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pgolf.cli import main

FAKE = Path(__file__).parent / "fixtures" / "package" / "fake_trainer.py"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    from pgolf.data import write_shard

    data = tmp_path / "data"
    data.mkdir()
    write_shard(data / "fineweb_train_000000.bin", np.arange(300) % 60)
    write_shard(data / "fineweb_val_000000.bin", np.arange(80) % 60)
    (data / "tokenizer.model").write_bytes(b"stand-in tokenizer")
    return data


def run(runner: CliRunner, data: Path, out: Path, *extra: str):
    args = ["run", "--seeds", "42", "314", "999", "--script", str(FAKE), "--data", str(data)]
    args += ["--out", str(out), "--author", "Ada", "--github-id", "ada", "--no-audit", *extra]
    return runner.invoke(main, args)


def test_run_package_verify_end_to_end(runner: CliRunner, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    ran = run(runner, data_dir, out, "--env", "ITERATIONS=20")
    assert ran.exit_code == 0, ran.output
    dest = tmp_path / "records"
    args = ["package", str(out), "--name", "Fake Pipeline", "--dest", str(dest)]
    packaged = runner.invoke(main, [*args, "--date", "2026-11-25"])
    assert packaged.exit_code == 0, packaged.output
    folder = dest / "track_10min_16mb" / "2026-11-25_Fake_Pipeline"
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    run_json = json.loads((out / "run.json").read_text())
    assert manifest["data_fingerprint"] == run_json["data"]["fingerprint"]
    assert manifest["run"]["script_sha256"] == run_json["script_sha256"]
    # Data paths of a custom dataset are part of the reproduction command.
    readme = (folder / "README.md").read_text()
    assert f"--data {data_dir.resolve()}" in readme and "--env ITERATIONS=20" in readme
    verified = runner.invoke(main, ["verify", str(folder)])
    assert verified.exit_code == 0, verified.output
    log = folder / "train_seed999.log"
    log.write_bytes(log.read_bytes().replace(b"val_bpb:2.0029", b"val_bpb:2.0028", 1))
    tampered = runner.invoke(main, ["verify", str(folder), "--no-audit"])
    assert tampered.exit_code == 1
    assert "train_seed999.log" in tampered.output


def test_a_failed_seed_from_the_runner_is_refused(
    runner: CliRunner, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PKG_FAIL_SEED", "314")
    out = tmp_path / "run"
    run(runner, data_dir, out)
    monkeypatch.delenv("PKG_FAIL_SEED")
    result = runner.invoke(
        main, ["package", str(out), "--name", "X", "--dest", str(tmp_path / "r")]
    )
    assert result.exit_code == 1
    assert "seeds did not finish: 314 (failed" in result.output
    assert not (tmp_path / "r" / "track_10min_16mb").exists() or not any(
        (tmp_path / "r" / "track_10min_16mb").iterdir()
    )

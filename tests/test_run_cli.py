"""`pgolf run` end to end with a fake trainer: outputs, failures, timeouts, usage errors, resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pgolf.cli import main
from pgolf.logs import parse_log
from pgolf.stats import mean_std
from pgolf.submission import validate

FAKE = Path(__file__).parent / "fixtures" / "run" / "fake_trainer.py"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    from pgolf.data import write_shard

    data = tmp_path / "data"
    data.mkdir()
    write_shard(data / "fineweb_train_000000.bin", np.arange(200) % 50)
    write_shard(data / "fineweb_val_000000.bin", np.arange(60) % 50)
    (data / "tokenizer.model").write_bytes(b"not a real tokenizer")
    return data


def invoke(runner: CliRunner, data: Path, out: Path, *args: str):
    return runner.invoke(
        main,
        ["run", "--script", str(FAKE), "--data", str(data), "--out", str(out), "--no-audit", *args],
    )


def state(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def test_three_seeds_produce_every_output(
    runner: CliRunner, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["run", "--seeds", "42", "314", "999", "--script", str(FAKE), "--data", str(data_dir)]
    args += ["--out", str(out), "--author", "Ada", "--github-id", "ada", "--name", "Fake"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    run_state = state(out)
    assert {key: seed["status"] for key, seed in run_state["seeds"].items()} == {
        "42": "ok",
        "314": "ok",
        "999": "ok",
    }
    assert run_state["script_sha256"] and run_state["data"]["fingerprint"]
    assert run_state["command"][:5] == ["pgolf", "run", "--seeds", "42", "314"]
    assert run_state["env"]["DATA_PATH"] == str(data_dir.resolve())
    assert (out / "train_gpt.py").read_bytes() == FAKE.read_bytes()
    for seed in (42, 314, 999):
        assert (out / f"seed{seed}" / "final_model.int8.ptz").is_file()
        assert parse_log(out / f"train_seed{seed}.log").seed == seed
    submission = json.loads((out / "submission.json").read_text())
    assert validate(submission) == []
    logged = [parse_log(out / f"train_seed{s}.log").val_bpb for s in (42, 314, 999)]
    mean, std = mean_std([v for v in logged if v is not None])
    assert submission["val_bpb"] == pytest.approx(mean, abs=1e-8)
    assert submission["val_bpb_std"] == pytest.approx(std, abs=1e-8)
    assert submission["seeds"] == [42, 314, 999]
    assert submission["seed_results"]["314"]["val_bpb"] == pytest.approx(1.000314)
    # R1 recomputed from the files: the shipped script plus the artifact.
    expected_bytes = FAKE.stat().st_size + (out / "seed42" / "final_model.int8.ptz").stat().st_size
    assert submission["seed_results"]["42"]["bytes_total"] == expected_bytes
    assert submission["track"] == "track_10min_16mb"
    assert submission["author"] == "Ada" and submission["name"] == "Fake"
    assert (out / "LEGALITY_AUDIT.md").read_text().strip()
    assert "mean val_bpb=1.00045167" in result.output


def test_crashed_seed_is_recorded_and_the_others_go_on(
    runner: CliRunner, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = invoke(runner, data_dir, out, "--seeds", "1", "2", "3", "--env", "FAKE_MODE_2=crash")
    assert result.exit_code == 1
    assert "1 of 3 seeds did not finish" in result.output
    seeds = state(out)["seeds"]
    assert seeds["2"]["status"] == "failed"
    assert "exit code 3" in seeds["2"]["reason"] and "out of memory" in seeds["2"]["reason"]
    assert seeds["1"]["status"] == seeds["3"]["status"] == "ok"
    submission = json.loads((out / "submission.json").read_text())
    assert submission["seeds"] == [1, 3]
    assert submission["pgolf"]["failed_seeds"]["2"]["status"] == "failed"


def test_hanging_seed_hits_the_hard_timeout(
    runner: CliRunner, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = invoke(
        runner, data_dir, out, "--seeds", "1", "2", "--env", "FAKE_MODE_1=hang", "--timeout", "4"
    )
    assert result.exit_code == 1
    seeds = state(out)["seeds"]
    assert seeds["1"]["status"] == "timeout"
    assert "hard timeout" in seeds["1"]["reason"]
    assert seeds["2"]["status"] == "ok"
    # The partial log of the killed seed is kept.
    assert "step:20/20" in (out / "train_seed1.log").read_text()


def test_script_without_final_metric_fails_clearly(
    runner: CliRunner, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = invoke(runner, data_dir, out, "--seeds", "5", "--env", "FAKE_MODE=nometric")
    assert result.exit_code == 1
    record = state(out)["seeds"]["5"]
    assert record["status"] == "failed"
    assert "no final val_bpb metric line" in record["reason"]
    assert not (out / "submission.json").exists()
    assert "submission.json not written" in result.output


def test_garbage_output_does_not_break_parsing(
    runner: CliRunner, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = invoke(runner, data_dir, out, "--seeds", "7", "--env", "FAKE_MODE=garbage")
    assert result.exit_code == 0, result.output
    record = state(out)["seeds"]["7"]
    assert record["status"] == "ok"
    assert record["val_bpb"] == pytest.approx(1.000007)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", ""], "no seeds given"),
        (["--seeds", "1", "2", "1"], "duplicate seeds: 1"),
        (["--seeds", "1,x"], "is not an integer"),
        (["--seeds", "1", "--env", "NOEQUALS"], "expected KEY=VALUE"),
        (["--seeds", "1", "--nproc", "0"], "--nproc must be at least 1"),
        (["--seeds", "1", "--track", "weird"], "unknown track"),
        (["--seeds", "1", "--env", "SEED=3"], "set by pgolf run per seed"),
    ],
)
def test_usage_errors_exit_2(
    runner: CliRunner, data_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = invoke(runner, data_dir, tmp_path / "run", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_unknown_script_exits_2(runner: CliRunner, data_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        main,
        ["run", "--seeds", "1", "--script", str(tmp_path / "nope.py"), "--data", str(data_dir)],
    )
    assert result.exit_code == 2
    assert "script not found" in result.output


def test_dry_run_prints_exact_commands_and_runs_nothing(
    runner: CliRunner, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = invoke(
        runner, data_dir, out, "--seeds", "42", "314", "--env", "ITERATIONS=200", "--dry-run"
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("cd ")]
    assert len(lines) == 2
    assert "SEED=42" in lines[0] and "SEED=314" in lines[1]
    assert "ITERATIONS=200" in lines[0] and f"DATA_PATH={data_dir.resolve()}" in lines[0]
    assert "train_seed42.log" in lines[0]
    assert not out.exists()


def test_dry_run_with_torchrun(runner: CliRunner, data_dir: Path, tmp_path: Path) -> None:
    result = invoke(
        runner,
        data_dir,
        tmp_path / "run",
        "--seeds",
        "1",
        "--nproc",
        "8",
        "--nnodes",
        "2",
        "--rdzv-endpoint",
        "host:29500",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("cd "))
    assert (
        "-m torch.distributed.run --nnodes=2 --rdzv-endpoint=host:29500 --nproc_per_node=8" in line
    )
    assert "--standalone" not in line


def test_rerun_skips_finished_seeds_and_retries_failed_ones(
    runner: CliRunner, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    flags = tmp_path / "flags"
    flags.mkdir()
    env = ["--env", "FAKE_MODE_2=crash_once", "--env", f"FAKE_STATE_DIR={flags}"]
    first = invoke(runner, data_dir, out, "--seeds", "1", "2", *env)
    assert first.exit_code == 1
    log1 = (out / "train_seed1.log").stat().st_mtime_ns
    second = invoke(runner, data_dir, out, "--seeds", "1", "2", "3", *env)
    assert second.exit_code == 0, second.output
    seeds = state(out)["seeds"]
    assert seeds["1"]["attempts"] == 1
    assert seeds["2"]["attempts"] == 2 and seeds["2"]["status"] == "ok"
    assert seeds["3"]["status"] == "ok"
    assert (out / "train_seed1.log").stat().st_mtime_ns == log1
    assert "skipped" in second.output


def test_resume_refuses_a_different_script_or_config(
    runner: CliRunner, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert invoke(runner, data_dir, out, "--seeds", "1").exit_code == 0
    other = tmp_path / "other.py"
    other.write_text(FAKE.read_text() + "\n# changed\n")
    result = runner.invoke(
        main,
        ["run", "--seeds", "2", "--script", str(other), "--data", str(data_dir), "--out", str(out)],
    )
    assert result.exit_code == 2
    assert "different script" in result.output
    result = invoke(runner, data_dir, out, "--seeds", "2", "--env", "ITERATIONS=5")
    assert result.exit_code == 2
    assert "different environment" in result.output


def test_full_disk_stops_the_run_and_keeps_finished_seeds(
    runner: CliRunner, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    out = tmp_path / "run"
    assert invoke(runner, data_dir, out, "--seeds", "1").exit_code == 0
    real_open = Path.open

    def open_full(self: Path, mode: str = "r", *args, **kwargs):  # seed 2's log: a full disk
        target = Path("/dev/full") if self.name == "train_seed2.log" and "w" in mode else self
        return real_open(target, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_full)
    result = invoke(runner, data_dir, out, "--seeds", "1", "2", "3")
    assert result.exit_code == 1
    assert "No space left on device" in result.output
    seeds = state(out)["seeds"]
    assert seeds["1"]["status"] == "ok"
    assert seeds["2"]["status"] == "failed" and "No space left" in seeds["2"]["reason"]
    assert seeds["3"]["status"] == "pending"


def test_caps_and_significance_verdicts(runner: CliRunner, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke(
        runner,
        data_dir,
        out,
        "--seeds",
        "1",
        "2",
        "3",
        "--bytes-cap",
        "100",
        "--baseline-bpb",
        "1.1,1.1005,1.0995",
    )
    assert result.exit_code == 0, result.output
    assert "caps (R1 bytes, R2 train, R3 eval): fail" in result.output
    assert "significant" in result.output
    submission = json.loads((out / "submission.json").read_text())
    assert submission["track"] == "track_non_record_16mb"
    significance = submission["pgolf"]["significance"]
    assert significance["passed"] is True
    assert significance["n_ref"] == 3
    assert significance["tokens_per_byte"] == pytest.approx(0.5 * np.log(2), rel=1e-6)
    assert submission["pgolf"]["caps"]["1"]["bytes"]["status"] == "fail"


def test_compare_to_a_record_folder(runner: CliRunner, data_dir: Path, tmp_path: Path) -> None:
    reference = tmp_path / "ref"
    reference.mkdir()
    for seed, bpb in ((42, 1.0001), (314, 1.0003), (999, 1.0002)):
        (reference / f"train_seed{seed}.log").write_text(
            f"seed:{seed}\nfinal_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:{bpb:.8f}\n"
        )
    result = invoke(
        runner, data_dir, tmp_path / "run", "--seeds", "1", "2", "--compare-to", str(reference)
    )
    assert result.exit_code == 0, result.output
    assert "not significant" in result.output
    assert "vs reference (n=3" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = invoke(runner, data_dir, tmp_path / "run2", "--seeds", "1", "--compare-to", str(empty))
    assert bad.exit_code == 2
    assert "no per-seed val_bpb" in bad.output


def test_missing_audit_gives_a_placeholder(
    runner: CliRunner, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "audit.engine", None)
    out = tmp_path / "run"
    result = runner.invoke(
        main,
        ["run", "--seeds", "1", "--script", str(FAKE), "--data", str(data_dir), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    text = (out / "LEGALITY_AUDIT.md").read_text()
    assert "not available" in text
    assert os.fspath(out) in text


@pytest.mark.slow
def test_nproc_runs_under_torchrun(runner: CliRunner, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke(runner, data_dir, out, "--seeds", "5", "--nproc", "2")
    assert result.exit_code == 0, result.output
    log = (out / "train_seed5.log").read_text()
    # Both ranks of the fake trainer print; torchrun's launcher banner is not source.
    finals = [
        line for line in log.splitlines() if line.startswith("final_int8_zstd_roundtrip_exact")
    ]
    assert len(finals) == 2
    assert state(out)["trainer_command"][1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert parse_log(out / "train_seed5.log").embedded_source is not None


def test_never_overwrites_a_foreign_train_gpt(
    runner: CliRunner, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "record"
    out.mkdir()
    (out / "train_gpt.py").write_text("# someone else's script\n")
    result = invoke(runner, data_dir, out, "--seeds", "1")
    assert result.exit_code == 2
    assert "never overwrites" in result.output
    assert (out / "train_gpt.py").read_text() == "# someone else's script\n"


@pytest.mark.parametrize("kind", ["file", "broken-link"])
def test_a_seed_dir_that_is_not_a_directory_is_a_usage_error(
    runner: CliRunner, data_dir: Path, tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    if kind == "file":
        (out / "seed2").write_text("notes\n")
    else:
        (out / "seed2").symlink_to(tmp_path / "missing")
    result = invoke(runner, data_dir, out, "--seeds", "1", "2")
    assert result.exit_code == 2, result.output
    assert "seed2: exists and is not a directory" in result.output
    assert "Traceback" not in result.output
    assert not (out / "train_seed1.log").exists()  # refused before any seed ran


@pytest.mark.parametrize(
    "kind", ["dir", "dangling-link", "fifo-run-json", "fifo-script", "log-link"]
)
def test_hostile_run_folder_entries_are_usage_errors(
    runner: CliRunner, data_dir: Path, tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    outside = tmp_path / "outside.py"
    script = FAKE
    if kind == "dir":
        (out / "train_gpt.py").mkdir()
        message = "train_gpt.py: exists and is not a regular file"
    elif kind == "dangling-link":
        (out / "train_gpt.py").symlink_to(outside)
        message = "train_gpt.py: exists and is not a regular file"
    elif kind == "fifo-run-json":
        os.mkfifo(out / "run.json")
        message = "run.json: cannot resume from it (not a regular file)"
    elif kind == "fifo-script":
        script = tmp_path / "fifo.py"
        os.mkfifo(script)
        message = "fifo.py: not a regular file"
    else:
        (out / "train_seed1.log").symlink_to(outside)
        message = "train_seed1.log: exists and is not a regular file"
    args = ["run", "--script", str(script), "--data", str(data_dir), "--out", str(out)]
    result = runner.invoke(main, [*args, "--no-audit", "--seeds", "1"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not outside.exists()  # nothing was written through the link

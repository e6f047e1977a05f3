"""`pgolf package`: record folders assembled from a synthetic run folder (no training)."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from pgolf.cli import main
from pgolf.errors import InputError
from pgolf.manifest import sha256_file
from pgolf.package import AuditOutcome, sanitize_name
from pgolf.record_readme import AuditSummary

_spec = importlib.util.spec_from_file_location(
    "package_build_run", Path(__file__).parent / "fixtures" / "package" / "build_run.py"
)
assert _spec and _spec.loader
build_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_run)

DATE = "2026-11-25"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return build_run.make_run(tmp_path / "run")


def package(runner: CliRunner, run: Path, dest: Path, *extra: str, name: str = "My Idea"):
    args = ["package", str(run), "--name", name, "--dest", str(dest), "--date", DATE, *extra]
    return runner.invoke(main, args)


def record(dest: Path, name: str = "My_Idea", track: str = "track_10min_16mb") -> Path:
    return dest / track / f"{DATE}_{name}"


def leftovers(dest: Path) -> list[str]:
    return [p.name for p in dest.rglob(".*tmp-*")]


def test_package_writes_every_file_and_a_consistent_manifest(
    runner: CliRunner, run_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "records"
    result = package(runner, run_dir, dest, "--author", "Ada", "--github-id", "ada")
    assert result.exit_code == 0, result.output
    folder = record(dest)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "LEGALITY_AUDIT.md",
        "MANIFEST.json",
        "README.md",
        "requirements.txt",
        "submission.json",
        "train_gpt.py",
        "train_seed314.log",
        "train_seed42.log",
        "train_seed999.log",
    ]
    # The exact bytes that ran.
    assert (folder / "train_gpt.py").read_bytes() == (run_dir / "train_gpt.py").read_bytes()
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == set(names) - {"MANIFEST.json"}
    for rel, entry in manifest["files"].items():
        assert entry == {"sha256": sha256_file(folder / rel), "size": (folder / rel).stat().st_size}
    assert manifest["data_fingerprint"] == build_run.FINGERPRINT
    assert manifest["allow_fail"] is None
    # Artifacts are recorded, not shipped.
    art = manifest["artifacts"]["42"]
    assert art["included"] is False
    assert art["size"] == len(build_run.artifact_bytes(42))
    assert art["sha256"] == sha256_file(run_dir / "seed42" / "final_model.int8.ptz")
    sub = json.loads((folder / "submission.json").read_text())
    assert (sub["author"], sub["github_id"], sub["name"]) == ("Ada", "ada", "My Idea")
    assert sub["date"] == DATE and sub["track"] == "track_10min_16mb"
    assert "torch==2.13.0" not in (folder / "requirements.txt").read_text()  # script has no torch
    assert "numpy" in (folder / "requirements.txt").read_text()
    assert not leftovers(dest)


def test_readme_has_results_stats_caps_reproduction_and_audit(
    runner: CliRunner, run_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "records"
    assert package(runner, run_dir, dest).exit_code == 0
    readme = (record(dest) / "README.md").read_text()
    assert "| 314 | ok | 2.43350000 | 4.12577000 |" in readme
    # mean and sample std (ddof=1) of 2.4321, 2.4335, 2.4312
    assert "`2.43226667`" in readme and "`0.00115902`" in readme
    assert "| R1 | code + compressed model bytes | 16,000,000 |" in readme
    assert "pgolf data\n" in readme
    assert "pgolf run --seeds 42 314 999 --env ITERATIONS=20" in readme
    assert "ITERATIONS=20 SEED=42 python train_gpt.py" in readme
    assert "verdict **pass**" in readme
    assert (
        "- seed 999 (`train_seed999.log`): `final_int8_zstd_roundtrip_exact val_loss:4.12187000 val_bpb:2.43120000`"
        in readme
    )
    assert build_run.FINGERPRINT in readme


def test_include_artifact_ships_and_hashes_the_artifacts(
    runner: CliRunner, run_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "records"
    assert package(runner, run_dir, dest, "--include-artifact").exit_code == 0
    folder = record(dest)
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert manifest["artifacts"]["999"]["included"] is True
    assert "seed999/final_model.int8.ptz" in manifest["files"]
    assert (folder / "seed999" / "final_model.int8.ptz").read_bytes() == build_run.artifact_bytes(
        999
    )


def test_existing_folder_needs_force(runner: CliRunner, run_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "records"
    assert package(runner, run_dir, dest).exit_code == 0
    marker = record(dest) / "README.md"
    marker.write_text("hand edit")
    again = package(runner, run_dir, dest)
    assert again.exit_code == 2
    assert "already exists" in again.output and "--force" in again.output
    assert marker.read_text() == "hand edit"
    forced = package(runner, run_dir, dest, "--force")
    assert forced.exit_code == 0, forced.output
    assert marker.read_text().startswith("# My Idea")
    assert not leftovers(dest)


@pytest.mark.parametrize("name", ["a/b", "..", "x/../../y", "evil\\name", "up..dir"])
def test_names_with_path_separators_or_dotdot_are_refused(
    runner: CliRunner, run_dir: Path, tmp_path: Path, name: str
) -> None:
    dest = tmp_path / "records"
    result = package(runner, run_dir, dest, name=name)
    assert result.exit_code == 2
    assert "--name" in result.output
    assert "Traceback" not in result.output
    assert not (dest / "track_10min_16mb").exists() or not any(
        (dest / "track_10min_16mb").iterdir()
    )


def test_unsafe_characters_are_replaced_and_reported(
    runner: CliRunner, run_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "records"
    result = package(runner, run_dir, dest, name="Mix: PPM + TTT (v2)")
    assert result.exit_code == 0, result.output
    assert "became folder name 'Mix_PPM_TTT_v2'" in result.output
    assert record(dest, "Mix_PPM_TTT_v2").is_dir()
    sub = json.loads((record(dest, "Mix_PPM_TTT_v2") / "submission.json").read_text())
    assert sub["name"] == "Mix: PPM + TTT (v2)"


@given(st.text(min_size=1, max_size=120))
def test_sanitized_names_are_always_safe(name: str) -> None:
    try:
        safe, notes = sanitize_name(name)
    except InputError:
        return
    assert safe and len(safe) <= 80
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in safe)
    assert ".." not in safe and not safe.startswith(".")
    assert bool(notes) == (safe != name.strip())


def test_failed_seeds_are_listed_and_refused(runner: CliRunner, tmp_path: Path) -> None:
    run = build_run.make_run(tmp_path / "run", failed={7: "timeout after 660 s"})
    dest = tmp_path / "records"
    result = package(runner, run, dest)
    assert result.exit_code == 1
    assert "7 (failed: timeout after 660 s)" in result.output
    assert not record(dest).exists() and not leftovers(dest)


def test_allow_fail_needs_a_reason_and_records_it(runner: CliRunner, tmp_path: Path) -> None:
    run = build_run.make_run(tmp_path / "run", failed={7: "out of memory"})
    dest = tmp_path / "records"
    no_reason = package(runner, run, dest, "--allow-fail")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    ok = package(runner, run, dest, "--allow-fail", "--reason", "seed 7 hit a host OOM")
    assert ok.exit_code == 0, ok.output
    folder = record(dest)
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert manifest["allow_fail"]["reason"] == "seed 7 hit a host OOM"
    assert manifest["allow_fail"]["failed_seeds"] == [7]
    readme = (folder / "README.md").read_text()
    assert "## Packaged with --allow-fail" in readme and "seed 7 hit a host OOM" in readme
    assert "| 7 | failed (out of memory) |" in readme
    # The failed seed's log ships too (no silent selection of runs), but not in the stats.
    assert (folder / "train_seed7.log").is_file()
    assert set(manifest["statistics"]["seeds"]) == {"42", "314", "999"}


def _failing_audit(folder: Path) -> AuditOutcome:
    summary = AuditSummary(
        "fail", {"error": 1}, ["PG501 (C2, error) train_gpt.py:3 gate on target"]
    )
    entry = {"rule": "PG501", "severity": "error", "file": "train_gpt.py", "line": 3}
    return AuditOutcome("fail", "# Legality audit\n\n**Verdict: FAIL**\n", [entry], summary)


def test_failing_audit_is_refused_unless_allowed_with_reason(
    runner: CliRunner, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pgolf.package.audit", _failing_audit)
    dest = tmp_path / "records"
    refused = package(runner, run_dir, dest)
    assert refused.exit_code == 1
    assert "audit of the assembled folder fails" in refused.output and "PG501" in refused.output
    assert not record(dest).exists() and not leftovers(dest)
    allowed = package(
        runner, run_dir, dest, "--allow-fail", "--reason", "C2 finding is a false positive"
    )
    assert allowed.exit_code == 0, allowed.output
    manifest = json.loads((record(dest) / "MANIFEST.json").read_text())
    assert manifest["audit"]["verdict"] == "fail"
    assert manifest["allow_fail"] == {
        "reason": "C2 finding is a false positive",
        "audit_verdict": "fail",
        "failed_seeds": [],
    }
    assert "the legality audit fails" in (record(dest) / "README.md").read_text()


@pytest.mark.parametrize(
    ("remove", "expected"),
    [
        ("run.json", "run.json: missing"),
        ("train_gpt.py", "train_gpt.py: missing"),
        ("submission.json", "submission.json: missing"),
        ("train_seed314.log", "train_seed314.log: missing (seed 314"),
        ("seed42/final_model.int8.ptz", "final_model.int8.ptz: missing (seed 42"),
    ],
)
def test_missing_run_files_give_a_clear_error(
    runner: CliRunner, run_dir: Path, tmp_path: Path, remove: str, expected: str
) -> None:
    (run_dir / remove).unlink()
    result = package(runner, run_dir, tmp_path / "records")
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_corrupt_run_json_and_missing_run_dir(
    runner: CliRunner, run_dir: Path, tmp_path: Path
) -> None:
    (run_dir / "run.json").write_text("{not json")
    result = package(runner, run_dir, tmp_path / "records")
    assert result.exit_code == 2 and "run.json: not readable JSON" in result.output
    gone = package(runner, tmp_path / "nope", tmp_path / "records")
    assert gone.exit_code == 2 and "not a directory" in gone.output


def test_script_that_differs_from_the_one_that_ran_is_refused(
    runner: CliRunner, run_dir: Path, tmp_path: Path
) -> None:
    with open(run_dir / "train_gpt.py", "a") as fh:
        fh.write("# edited after the run\n")
    result = package(runner, run_dir, tmp_path / "records")
    assert result.exit_code == 1
    assert "not the script that ran" in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_destination(runner: CliRunner, run_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "records"
    (dest / "track_10min_16mb").mkdir(parents=True)
    (dest / "track_10min_16mb").chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = package(runner, run_dir, dest)
    finally:
        (dest / "track_10min_16mb").chmod(stat.S_IRWXU)
    assert result.exit_code == 2
    assert "not writable" in result.output
    assert not record(dest).exists()


def test_unwritable_destination_reported_by_the_os(
    runner: CliRunner, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("pgolf.package.tempfile.mkdtemp", denied)
    dest = tmp_path / "records"
    result = package(runner, run_dir, dest)
    assert result.exit_code == 2
    assert "destination is not writable (Permission denied)" in result.output
    assert not record(dest).exists()


def test_destination_that_is_a_file(runner: CliRunner, run_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "records"
    dest.write_text("a file, not a directory")
    result = package(runner, run_dir, dest)
    assert result.exit_code == 2
    assert "cannot create the destination" in result.output


def test_unknown_track_and_bad_date(runner: CliRunner, run_dir: Path, tmp_path: Path) -> None:
    bad_track = package(runner, run_dir, tmp_path / "r", "--track", "track_1h_1gb")
    assert bad_track.exit_code == 2 and "not a known track" in bad_track.output
    args = [
        "package",
        str(run_dir),
        "--name",
        "X",
        "--dest",
        str(tmp_path / "r"),
        "--date",
        "25/11/2026",
    ]
    bad_date = CliRunner().invoke(main, args)
    assert bad_date.exit_code == 2 and "YYYY-MM-DD" in bad_date.output


def test_failure_mid_assembly_leaves_nothing(
    runner: CliRunner, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(folder: Path) -> AuditOutcome:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pgolf.package.audit", boom)
    dest = tmp_path / "records"
    result = package(runner, run_dir, dest)
    assert result.exit_code == 1
    assert "No space left on device" in result.output and "nothing was written" in result.output
    assert "Traceback" not in result.output
    assert not record(dest).exists()
    assert not leftovers(dest)


def test_huge_log_is_refused_not_copied(runner: CliRunner, run_dir: Path, tmp_path: Path) -> None:
    log = run_dir / "train_seed42.log"
    with open(log, "r+b") as fh:  # sparse: costs no disk
        fh.truncate(3 * 1024**3)
    result = package(runner, run_dir, tmp_path / "records", "--allow-fail", "--reason", "q")
    assert result.exit_code == 2
    assert "train_seed42.log" in result.output and "trim it" in result.output
    assert not (tmp_path / "records").exists() or not list((tmp_path / "records").rglob("*.log"))


def test_log_symlink_leaving_the_run_is_refused(
    runner: CliRunner, run_dir: Path, tmp_path: Path
) -> None:
    log = run_dir / "train_seed42.log"
    outside = tmp_path / "elsewhere.log"
    outside.write_bytes(log.read_bytes())
    log.unlink()
    log.symlink_to(outside)
    result = package(runner, run_dir, tmp_path / "records")
    assert result.exit_code == 2
    assert "is a symlink" in result.output

"""`pgolf verify`: clean record folders pass; every kind of tampering is reported (exit 1)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.cli import main
from pgolf.errors import InputError
from pgolf.manifest import diff_files, hash_folder
from pgolf.package import PackageOptions, package_run
from pgolf.verify import verify_folder

_spec = importlib.util.spec_from_file_location(
    "package_build_run", Path(__file__).parent / "fixtures" / "package" / "build_run.py"
)
assert _spec and _spec.loader
build_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_run)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify")
    run = build_run.make_run(root / "run")
    opts = PackageOptions(run_dir=run, name="Clean", dest=root / "records", date="2026-11-25")
    return package_run(opts).folder


@pytest.fixture
def folder(packaged: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "2026-11-25_Clean"
    shutil.copytree(packaged, copy)
    return copy


def verify(runner: CliRunner, folder: Path, *extra: str):
    return runner.invoke(main, ["verify", str(folder), *extra])


def flip_byte(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_clean_folder_passes(runner: CliRunner, folder: Path) -> None:
    result = verify(runner, folder)
    assert result.exit_code == 0, result.output
    assert "CLEAN" in result.output
    # Artifacts are recorded only: verify says it could not recheck them.
    assert "not checked: artifact of seed 42" in result.output


@pytest.mark.parametrize(
    "name", ["train_seed42.log", "train_gpt.py", "README.md", "submission.json"]
)
def test_one_flipped_byte_fails_and_names_the_file(
    runner: CliRunner, folder: Path, name: str
) -> None:
    flip_byte(folder / name)
    result = verify(runner, folder)
    assert result.exit_code == 1
    assert "FAILED" in result.output
    report = verify_folder(folder, run_audit=False)
    assert any(c.file == name and c.found != c.expected for c in report.differences)


def test_missing_and_extra_files_are_differences(folder: Path) -> None:
    (folder / "requirements.txt").unlink()
    (folder / "notes.txt").write_text("added later")
    report = verify_folder(folder, run_audit=False)
    kinds = {(c.file, c.item) for c in report.differences}
    assert ("requirements.txt", "file listed in the manifest is missing") in kinds
    assert ("notes.txt", "file not listed in the manifest") in kinds


def test_claim_that_disagrees_with_the_logs_is_reported(folder: Path) -> None:
    sub_path = folder / "submission.json"
    sub = json.loads(sub_path.read_text())
    sub["val_bpb"] = 2.40
    sub_path.write_text(json.dumps(sub))
    report = verify_folder(folder, run_audit=False)
    items = {c.item for c in report.differences}
    assert "submission val_bpb = mean of the logs" in items
    assert "sha256 differs from the manifest" in items


def test_log_whose_embedded_source_differs_is_reported(folder: Path) -> None:
    log = folder / "train_seed314.log"
    log.write_text(log.read_text().replace("Tiny stand-in trainer", "Tiny changed trainer", 1))
    report = verify_folder(folder, run_audit=False)
    assert any(
        c.item == "embedded source equals train_gpt.py (R8)" and c.file == "train_seed314.log"
        for c in report.differences
    )


def test_included_artifact_is_rehashed(tmp_path: Path) -> None:
    run = build_run.make_run(tmp_path / "run")
    opts = PackageOptions(
        run_dir=run, name="Art", dest=tmp_path / "records", date="2026-11-25", include_artifact=True
    )
    folder = package_run(opts).folder
    assert verify_folder(folder, run_audit=False).clean
    flip_byte(folder / "seed314" / "final_model.int8.ptz")
    report = verify_folder(folder, run_audit=False)
    assert {c.file for c in report.differences} == {"seed314/final_model.int8.ptz"}


@pytest.mark.parametrize(
    "content", ["{not json", "[1, 2]", '{"schema": "pgolf.manifest/1"}', "\xff\xfe"]
)
def test_corrupt_manifest_exits_2(runner: CliRunner, folder: Path, content: str) -> None:
    (folder / "MANIFEST.json").write_text(content, encoding="latin-1")
    result = verify(runner, folder)
    assert result.exit_code == 2
    assert "MANIFEST.json: corrupt manifest" in result.output
    assert "Traceback" not in result.output


def test_manifest_with_unsafe_path_is_corrupt(runner: CliRunner, folder: Path) -> None:
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["files"]["../../etc/passwd"] = {"sha256": "0" * 64, "size": 1}
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    result = verify(runner, folder)
    assert result.exit_code == 2 and "not a safe relative path" in result.output


def test_unreadable_folder_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    result = verify(runner, tmp_path / "missing")
    assert result.exit_code == 2
    assert "not a directory" in result.output


def test_upstream_folder_without_manifest(runner: CliRunner, tmp_path: Path) -> None:
    """An upstream-shaped folder: code, one log per seed, submission.json, no manifest."""
    run = build_run.make_run(tmp_path / "run")
    up = tmp_path / "upstream"
    up.mkdir()
    for name in ("train_gpt.py", "train_seed42.log", "train_seed314.log", "train_seed999.log"):
        shutil.copyfile(run / name, up / name)
    sub = json.loads((run / "submission.json").read_text())
    sub["val_bpb"] = round(sub["val_bpb"], 5)  # upstream claims are often rounded
    sub["some_legacy_key"] = "x"
    (up / "submission.json").write_text(json.dumps(sub))
    result = verify(runner, up)
    assert result.exit_code == 0, result.output
    assert "no MANIFEST.json" in result.output
    assert "cannot be checked" in result.output
    report = verify_folder(up, run_audit=False)
    assert not report.has_manifest
    # A claim that disagrees with the logs is still a difference without a manifest.
    sub["val_bpb"] = 2.0
    (up / "submission.json").write_text(json.dumps(sub))
    assert verify(runner, up).exit_code == 1


def test_json_output(runner: CliRunner, folder: Path) -> None:
    result = verify(runner, folder, "--format", "json", "--no-audit")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["clean"] is True and data["has_manifest"] is True


def test_data_fingerprint_is_checked_against_given_shards(folder: Path, tmp_path: Path) -> None:
    from pgolf.data import write_shard

    shards = tmp_path / "shards"
    shards.mkdir()
    import numpy as np

    write_shard(shards / "fineweb_train_000000.bin", np.arange(10, dtype=np.uint16))
    write_shard(shards / "fineweb_val_000000.bin", np.arange(5, dtype=np.uint16))
    report = verify_folder(folder, data_dir=shards, run_audit=False)
    assert [c.item for c in report.differences] == ["data fingerprint"]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_is_found_by_the_manifest(tmp_path_factory, data) -> None:
    """Property: flipping any bit of any byte of any file is reported for that file only."""
    folder = tmp_path_factory.mktemp("prop")
    contents = data.draw(
        st.dictionaries(
            st.sampled_from(["a.txt", "b.log", "sub/c.py", "d.json"]),
            st.binary(min_size=1, max_size=64),
            min_size=1,
        )
    )
    for rel, blob in contents.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(blob)
    recorded = hash_folder(folder)
    assert diff_files(folder, recorded) == []
    rel = data.draw(st.sampled_from(sorted(contents)))
    blob = bytearray(contents[rel])
    index = data.draw(st.integers(0, len(blob) - 1))
    blob[index] ^= 1 << data.draw(st.integers(0, 7))
    (folder / rel).write_bytes(bytes(blob))
    diffs = diff_files(folder, recorded)
    assert [(d.file, d.kind) for d in diffs] == [(rel, "sha256")]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(
    key=st.sampled_from(
        [
            "files",
            "artifacts",
            "statistics",
            "audit",
            "run",
            "caps",
            "allow_fail",
            "data_fingerprint",
        ]
    ),
    value=_JSON,
    nested=st.booleans(),
)
def test_a_mangled_manifest_never_crashes_verify(
    packaged: Path, tmp_path_factory: pytest.TempPathFactory, key: str, value: object, nested: bool
) -> None:
    """Property: whatever a manifest holds, verify reports or refuses (InputError), never crashes."""
    folder = tmp_path_factory.mktemp("mangled") / "f"
    shutil.copytree(packaged, folder)
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    if nested and isinstance(manifest.get(key), dict) and manifest[key]:
        first = sorted(manifest[key])[0]
        manifest[key][first] = value
    else:
        manifest[key] = value
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    try:
        report = verify_folder(folder, run_audit=False)
    except InputError as exc:
        assert "MANIFEST.json" in str(exc)
    else:
        assert isinstance(report.clean, bool)


def test_a_seed_key_of_unicode_digits_is_ignored_not_a_crash(
    packaged: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """'¹'.isdigit() is True but int('¹') raises: such a recorded seed is not a seed."""
    folder = tmp_path_factory.mktemp("superscript") / "f"
    shutil.copytree(packaged, folder)
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["statistics"]["seeds"] = {"\u00b9": 1.0}
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    report = verify_folder(folder, run_audit=False)
    assert isinstance(report.clean, bool)


def _set_recorded_verdict(folder: Path, verdict: str) -> None:
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["audit"]["verdict"] = verdict
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))


def test_audit_verdict_better_than_recorded_is_a_warning(folder: Path) -> None:
    _set_recorded_verdict(folder, "review")
    report = verify_folder(folder)
    assert report.clean
    check = next(c for c in report.checks if c.item.startswith("verdict equals"))
    assert (check.status, check.expected, check.found) == ("warn", "review", "pass")


def test_audit_verdict_worse_than_recorded_is_a_difference(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit.engine
    from audit.model import Finding, Severity

    real = audit.engine.audit_folder

    def failing(path: Path, **kwargs: object):
        report = real(path)
        bad = Finding("PG501", "C2", Severity.ERROR, "gate on the target", "train_gpt.py", 3)
        report.findings.append(bad)
        report.verdict = "fail"
        return report

    monkeypatch.setattr(audit.engine, "audit_folder", failing)
    report = verify_folder(folder)
    items = {c.item: c for c in report.differences}
    assert items["verdict equals the one recorded at packaging"].found == "fail"
    assert "PG501 train_gpt.py:3" in items["audit verdict"].found


def test_fifo_in_the_folder_is_a_difference_not_a_hang(runner: CliRunner, folder: Path) -> None:
    (folder / "README.md").unlink()
    os.mkfifo(folder / "README.md")
    report = verify_folder(folder, run_audit=False)
    assert any(c.file == "README.md" and "regular file" in c.item for c in report.differences)
    result = verify(runner, folder)
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def test_fifo_manifest_exits_2(runner: CliRunner, folder: Path) -> None:
    (folder / "MANIFEST.json").unlink()
    os.mkfifo(folder / "MANIFEST.json")
    result = verify(runner, folder)
    assert result.exit_code == 2
    assert "not a regular file" in result.output

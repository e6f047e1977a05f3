"""The repository's own record folder: `pgolf verify` passes, and one flipped byte fails it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgolf.cli import main

RECORDS = Path(__file__).resolve().parent.parent / "records"
FOLDERS = sorted(p.parent for p in RECORDS.glob("*/*/MANIFEST.json"))


def test_the_repository_holds_a_packaged_record() -> None:
    assert FOLDERS, f"no record folder with a MANIFEST.json under {RECORDS}"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_verify_passes_on_the_record(runner: CliRunner, folder: Path, tmp_path: Path) -> None:
    # A copy: verify must not depend on where the folder lives.
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    result = runner.invoke(main, ["verify", str(copy)])
    assert result.exit_code == 0, result.output
    assert "CLEAN" in result.output


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_one_tampered_byte_fails_verify_and_names_the_file(
    runner: CliRunner, folder: Path, tmp_path: Path
) -> None:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "MANIFEST.json").read_text())
    logs = sorted(name for name in manifest["files"] if name.endswith(".log"))
    target = copy / logs[0]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x20
    target.write_bytes(bytes(data))
    result = runner.invoke(main, ["verify", str(copy), "--no-audit"])
    assert result.exit_code == 1
    assert "FAILED" in result.output
    assert logs[0] in result.output

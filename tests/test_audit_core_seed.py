"""The case that started pgolf (upstream PR #2080), read from the mirror when it is available.

Skips cleanly without PGOLF_MIRROR. Upstream files are copied into a temporary folder, never
into the repository.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from audit.engine import audit_folder
from audit.model import Severity
from audit.report import to_json, to_markdown

REF = "refs/pull/2080/head"
FOLDER = "records/track_10min_16mb/2026-05-01_BIJEPAXLite_JEPA_PPM_0.97271"


@pytest.fixture(scope="module")
def seed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mirror = os.environ.get("PGOLF_MIRROR")
    if not mirror or not Path(mirror).exists():
        pytest.skip("PGOLF_MIRROR is not set")
    listing = subprocess.run(
        ["git", "-C", mirror, "ls-tree", "-r", REF, "--", f"{FOLDER}/"],
        capture_output=True,
        text=True,
    )
    if listing.returncode != 0 or not listing.stdout.strip():
        pytest.skip(f"{REF} is not in the mirror")
    dest = tmp_path_factory.mktemp("pr2080")
    for line in listing.stdout.splitlines():
        meta, path = line.split("\t", 1)
        blob = meta.split()[2]
        data = subprocess.run(["git", "-C", mirror, "cat-file", "blob", blob], capture_output=True)
        if data.returncode == 0:  # the mirror omits large files (a video)
            (dest / Path(path).name).write_bytes(data.stdout)
    return dest


@pytest.mark.slow
def test_seed_case(seed_folder: Path) -> None:
    report = audit_folder(seed_folder)
    s = report.summary
    assert s["n_runs"] == 3
    assert s["val_bpb_mean"] == pytest.approx(0.97271454, abs=5e-9)
    assert s["val_bpb_std"] == pytest.approx(0.00089703, abs=5e-9)
    assert s["claimed_val_bpb"] == 0.97271454
    assert s["bytes_max"] == 15_999_539
    assert sorted(r["seed"] for r in report.runs) == [42, 314, 999]
    # Everything that is fine is reported as fine: caps and statistics.
    for cond in ("R1", "R2", "R3", "R6"):
        assert not [
            f for f in report.active if f.condition == cond and f.severity == Severity.ERROR
        ], cond
    c2 = [f for f in report.active if f.condition == "C2" and f.severity == Severity.ERROR]
    if not any(rid.startswith("PG5") for rid in report.rules_run):
        pytest.skip("no C2 rule registered yet")
    assert c2 and all(f.file == "train_gpt.py" and f.line for f in c2)
    assert report.verdict == "fail"
    md = to_markdown(report)
    assert "likely legal/submittable" in md and "**That conclusion does not hold**" in md
    assert to_json(report)["self_audit"][0]["holds"] is False

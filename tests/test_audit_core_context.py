"""Context building: README run commands, self-audits, log detection, track, claim runs."""

from __future__ import annotations

import shutil
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.context import build_context, readme_env

CLEAN = Path(__file__).parent / "fixtures" / "audit" / "clean_record"

KEYS = st.text(alphabet=string.ascii_uppercase + "_", min_size=1, max_size=12).filter(
    lambda k: k[0] != "_"
)
VALUES = st.text(alphabet=string.ascii_letters + string.digits + "._-/", min_size=1, max_size=12)


@pytest.fixture
def record(tmp_path: Path) -> Path:
    dest = tmp_path / "record"
    shutil.copytree(CLEAN, dest)
    return dest


@given(st.dictionaries(KEYS, VALUES, min_size=1, max_size=6))
def test_readme_env_reads_prefix_assignments(env: dict[str, str]) -> None:
    cmd = " ".join(f"{k}={v}" for k, v in env.items())
    text = f"# Idea\n\n```bash\n{cmd} torchrun --standalone --nproc_per_node=8 train_gpt.py\n```\n"
    assert readme_env(text) == env


@given(st.dictionaries(KEYS, VALUES, min_size=1, max_size=6))
def test_readme_env_reads_exports_and_continuations(env: dict[str, str]) -> None:
    exports = "\n".join(f"export {k}={v}" for k, v in env.items())
    assert readme_env(exports) == env
    cont = " \\\n  ".join(f"{k}={v}" for k, v in env.items()) + " \\\n  python train_gpt.py"
    assert readme_env(cont) == env


@given(st.text(max_size=300))
def test_readme_env_never_raises(text: str) -> None:
    assert isinstance(readme_env(text), dict)


def test_readme_env_ignores_prose_and_lowercase() -> None:
    text = (
        "We set lr=0.04 in the paper (a=b).\n"
        "SEED=1 is the default\n"  # no command follows
        "$ env PPM_ENABLED=1 python3 train_gpt.py\n"
        'RUN_ID="my run" VAL_LOSS_EVERY=0 torchrun train_gpt.py\n'
    )
    assert readme_env(text) == {"PPM_ENABLED": "1", "RUN_ID": "my run", "VAL_LOSS_EVERY": "0"}


def test_self_audit_is_detected(record: Path) -> None:
    (record / "LEGALITY_AUDIT.md").write_text(
        "# Audit\n\n## Verdict\n\nCurrent read: **likely legal/submittable**.\n"
    )
    (record / "COMPLIANCE.md").write_text("# Compliance\n\n## Verdict\n\nThis is not legal.\n")
    ctx = build_context(record)
    by_file = {s.file: s for s in ctx.self_audits}
    assert by_file["LEGALITY_AUDIT.md"].claims_legal
    assert by_file["LEGALITY_AUDIT.md"].line == 5
    assert not by_file["COMPLIANCE.md"].claims_legal


def test_own_report_is_not_a_self_audit(record: Path) -> None:
    from audit.engine import audit_folder
    from audit.report import to_markdown

    (record / "LEGALITY_AUDIT.md").write_text(to_markdown(audit_folder(record)))
    assert build_context(record).self_audits == []


def test_logs_are_found_by_content_not_name(record: Path) -> None:
    (record / "notes.txt").write_text("we tried many things\n")
    (record / "requirements.txt").write_text("torch\nnumpy\n")
    shutil.copy(record / "train_seed42.log", record / "run_a.txt")
    ctx = build_context(record)
    names = sorted(ctx.relpath(lg.path) for lg in ctx.logs)
    assert names == ["run_a.txt", "train_seed314.log", "train_seed42.log", "train_seed999.log"]
    # run_a.txt repeats seed 42 with the same score: one run.
    assert len(ctx.runs()) == 3


def test_track_inference(record: Path, tmp_path: Path) -> None:
    assert build_context(record).is_record_track
    sub = (record / "submission.json").read_text().replace("track_10min_16mb", "non-record-16mb")
    (record / "submission.json").write_text(sub)
    assert not build_context(record).is_record_track
    nested = tmp_path / "records" / "track_non_record_16mb" / "x"
    shutil.copytree(CLEAN, nested)
    text = (nested / "submission.json").read_text().replace('"track": "track_10min_16mb",', "")
    (nested / "submission.json").write_text(text)
    assert build_context(nested).track == "track_non_record_16mb"


def test_claim_runs_skip_ablation_logs(record: Path) -> None:
    log = (record / "train_seed42.log").read_text()
    (record / "ablation_seed5.log").write_text(
        log.replace("seed:42", "seed:5").replace("val_bpb:1.03000000", "val_bpb:1.09000000")
    )
    ctx = build_context(record)
    assert len(ctx.runs()) == 4
    assert sorted(lg.seed for lg in ctx.claim_runs()) == [42, 314, 999]


def test_sources_are_unpacked_and_parsed(record: Path) -> None:
    import base64
    import zlib

    inner = "def score(p, target):\n    return p[target]\n"
    payload = base64.b85encode(zlib.compress(inner.encode())).decode()
    (record / "packed.py").write_text(
        f'import zlib, base64\nexec(zlib.decompress(base64.b85decode("{payload}")))\n'
    )
    src = build_context(record).sources["packed.py"]
    assert "def score(p, target):" in src.text
    assert src.tree is not None and src.layers
    assert src.raw_size == (record / "packed.py").stat().st_size


def test_self_audit_without_a_verdict_line(record: Path) -> None:
    (record / "STATIC_AUDIT_NOTES.md").write_text(
        "# Static notes\n\nThe mixer only reads prefix counts. No network access.\n"
    )
    (record / "LEGALITY.md").write_text("# Notes\n\nThe PPM gate violates C2; we keep it off.\n")
    by_file = {s.file: s for s in build_context(record).self_audits}
    assert by_file["STATIC_AUDIT_NOTES.md"].claims_legal
    assert by_file["STATIC_AUDIT_NOTES.md"].conclusion is None
    assert not by_file["LEGALITY.md"].claims_legal


def test_runner_placeholder_is_not_a_self_audit(record: Path) -> None:
    (record / "LEGALITY_AUDIT.md").write_text(
        "# Legality audit\n\nThe pgolf auditor is not available in this installation.\n"
        f"Run `pgolf audit {record}` once it is installed.\n"
    )
    assert build_context(record).self_audits == []

"""Reports: JSON contract and schema, SARIF 2.1.0, LEGALITY_AUDIT.md, self-audit handling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from audit.engine import audit_folder
from audit.explain import index_markdown, rule_doc, write_docs
from audit.model import REGISTRY
from audit.report import to_json, to_markdown, to_sarif
from audit.report.markdown import MARKER

FIXTURES = Path(__file__).parent / "fixtures"
CLEAN = FIXTURES / "audit" / "clean_record"
SCHEMA = json.loads(
    (Path(__file__).parents[1] / "pgolf" / "schemas" / "audit-report.schema.json").read_text()
)
SELF_AUDIT = """# Legality Audit

## Verdict

Current read: **likely legal/submittable**, no rule violations found.

## Details
The evaluator never looks at validation data during training.
"""


@pytest.fixture
def record(tmp_path: Path) -> Path:
    dest = tmp_path / "record"
    shutil.copytree(CLEAN, dest)
    return dest


@pytest.fixture
def failing_with_self_audit(tmp_path: Path) -> Path:
    """A folder that claims legality in its own audit but is over the byte cap."""
    dest = tmp_path / "claim"
    shutil.copytree(
        FIXTURES / "rules" / "PG201_illegal", dest, ignore=shutil.ignore_patterns("expected.json")
    )
    (dest / "LEGALITY_AUDIT.md").write_text(SELF_AUDIT)
    return dest


def test_json_contract_and_schema(record: Path) -> None:
    data = to_json(audit_folder(record))
    jsonschema.validate(data, SCHEMA)
    assert data["schema"] == "pgolf.audit/1"
    assert data["verdict"] == "pass"
    assert set(data["summary"]) == {
        "n_runs",
        "val_bpb_mean",
        "val_bpb_std",
        "claimed_val_bpb",
        "bytes_max",
    }
    assert set(data["runs"][0]) >= {
        "log",
        "seed",
        "val_bpb",
        "val_loss",
        "bytes_total",
        "train_time_s",
        "eval_time_s",
    }


def test_json_findings_shape(failing_with_self_audit: Path) -> None:
    data = to_json(audit_folder(failing_with_self_audit))
    jsonschema.validate(data, SCHEMA)
    assert data["verdict"] == "fail"
    f = next(f for f in data["findings"] if f["rule"] == "PG201")
    assert f["condition"] == "R1" and f["severity"] == "error"
    assert set(f) >= {
        "rule",
        "condition",
        "severity",
        "file",
        "line",
        "function",
        "message",
        "evidence",
    }
    (sa,) = data["self_audit"]
    assert sa["file"] == "LEGALITY_AUDIT.md" and sa["claims_legal"] and sa["holds"] is False


def test_schema_rejects_a_broken_report(record: Path) -> None:
    data = to_json(audit_folder(record))
    data["verdict"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)


def test_markdown_says_the_self_audit_does_not_hold(failing_with_self_audit: Path) -> None:
    md = to_markdown(audit_folder(failing_with_self_audit))
    assert md.startswith(MARKER)
    assert "likely legal/submittable" in md
    assert "**That conclusion does not hold**" in md
    assert "R1" in md.split("does not hold")[1].splitlines()[0]
    assert md.rstrip().splitlines()[-1] == "Verdict: FAIL"
    assert md.splitlines().count("Verdict: FAIL") == 1


def test_markdown_per_condition_sections(record: Path) -> None:
    md = to_markdown(audit_folder(record))
    for title in (
        "C1 causal scoring",
        "C2 normalized distribution",
        "R1 artifact bytes",
        "R6 statistics",
    ):
        assert f"### {title}" in md
    assert md.count("Not checkable statically:") == 13
    assert "Checked: PG201 artifact-over-cap" in md
    assert "mean val_bpb 1.03000000, sample std 0.00100000" in md
    assert md.rstrip().splitlines()[-1] == "Verdict: PASS"


def test_markdown_evidence_has_file_line_and_excerpt(tmp_path: Path) -> None:
    dest = tmp_path / "net"
    shutil.copytree(
        FIXTURES / "rules" / "PG204_illegal", dest, ignore=shutil.ignore_patterns("expected.json")
    )
    md = to_markdown(audit_folder(dest))
    assert "`train_gpt.py:11` in `main`" in md
    assert "11> " in md and "urllib.request.urlopen" in md


def test_markdown_shows_the_diff_of_a_source_mismatch(tmp_path: Path) -> None:
    dest = tmp_path / "diff"
    shutil.copytree(
        FIXTURES / "rules" / "PG111_illegal", dest, ignore=shutil.ignore_patterns("expected.json")
    )
    md = to_markdown(audit_folder(dest))
    assert "```diff" in md
    assert '-MATRIX_LR = float(os.environ.get("MATRIX_LR", "0.04"))' in md
    assert '+MATRIX_LR = float(os.environ.get("MATRIX_LR", "0.05"))' in md


def test_sarif_structure(failing_with_self_audit: Path, record: Path) -> None:
    reports = [audit_folder(failing_with_self_audit), audit_folder(record)]
    sarif = to_sarif(reports)
    assert sarif["version"] == "2.1.0" and len(sarif["runs"]) == 2
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in {"error", "warning", "note"}
    pg201 = rules[ids.index("PG201")]
    assert "16,000,000" in pg201["help"]["markdown"] and pg201["help"]["text"]
    located = [r for r in run["results"] if r["ruleId"] == "PG201" and "locations" in r]
    loc = located[0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uriBaseId"] == "FOLDER"
    assert run["originalUriBaseIds"]["FOLDER"]["uri"].startswith("file://")


def test_docs_generation(tmp_path: Path) -> None:
    written = write_docs(tmp_path)
    assert (tmp_path / "PG201.md") in written and (tmp_path / "index.md").exists()
    page = (tmp_path / "PG201.md").read_text()
    for heading in (
        "## What it does",
        "## Why is this bad?",
        "## Illegal example",
        "## Legal example",
        "## References",
    ):
        assert heading in page
    index = (tmp_path / "index.md").read_text()
    assert "[PG201](PG201.md)" in index


def test_rule_doc_sections_and_examples() -> None:
    from audit.engine import load_rules

    load_rules()
    doc = rule_doc(REGISTRY.get("PG204"))
    assert doc.summary.startswith("The code downloads")
    kinds = [(e.kind, e.auditable) for e in doc.examples()]
    assert kinds == [("illegal", True), ("legal", True)]
    assert "| PG204 |" not in index_markdown([doc]) and "[PG204](PG204.md)" in index_markdown([doc])

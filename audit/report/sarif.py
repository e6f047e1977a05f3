"""SARIF 2.1.0: one run per audited folder, every rule with its help text, results located."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.model import REGISTRY, Finding, Severity
from pgolf import __version__

if TYPE_CHECKING:
    from audit.engine import AuditReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
INFO_URI = "https://github.com/openai/parameter-golf"


def _rule_descriptor(rule_id: str) -> dict[str, Any]:
    from audit.explain import rule_doc, to_markdown

    cls = REGISTRY.get(rule_id)
    if cls is None:
        return {"id": rule_id, "shortDescription": {"text": rule_id}}
    doc = rule_doc(cls)
    help_md = to_markdown(doc)
    return {
        "id": cls.id,
        "name": cls.name,
        "shortDescription": {"text": doc.summary or cls.name},
        "fullDescription": {"text": doc.sections.get("What it does", doc.summary) or cls.name},
        "help": {"text": doc.sections.get("Why is this bad?", doc.summary), "markdown": help_md},
        "defaultConfiguration": {"level": LEVEL[cls.severity]},
        "properties": {"condition": cls.condition, "tags": [cls.condition]},
    }


def _result(f: Finding, index: dict[str, int]) -> dict[str, Any]:
    res: dict[str, Any] = {
        "ruleId": f.rule,
        "ruleIndex": index[f.rule],
        "level": LEVEL[f.severity],
        "message": {
            "text": f.message
            + (f" [{f.evidence}]" if f.evidence and "\n" not in f.evidence else "")
        },
        "properties": {"condition": f.condition},
    }
    if f.file:
        loc: dict[str, Any] = {
            "physicalLocation": {
                "artifactLocation": {"uri": f.file, "uriBaseId": "FOLDER"},
            }
        }
        if f.line:
            loc["physicalLocation"]["region"] = {"startLine": int(f.line)}
        if f.function:
            loc["logicalLocations"] = [{"name": f.function, "kind": "function"}]
        res["locations"] = [loc]
    if f.suppressed:
        res["suppressions"] = [{"kind": "inSource", "justification": f.suppressed}]
    return res


def _run(report: AuditReport) -> dict[str, Any]:
    ids = sorted({f.rule for f in report.findings} | set(report.rules_run))
    index = {rid: i for i, rid in enumerate(ids)}
    folder_uri = Path(report.folder).resolve().as_uri().rstrip("/") + "/"
    return {
        "tool": {
            "driver": {
                "name": "pgolf",
                "version": __version__,
                "informationUri": INFO_URI,
                "rules": [_rule_descriptor(rid) for rid in ids],
            }
        },
        "originalUriBaseIds": {"FOLDER": {"uri": folder_uri}},
        "results": [_result(f, index) for f in report.findings],
        "properties": {"verdict": report.verdict, "summary": report.summary},
    }


def to_sarif(reports: Iterable[AuditReport] | AuditReport) -> dict[str, Any]:
    from audit.engine import AuditReport as _Report

    items = [reports] if isinstance(reports, _Report) else list(reports)
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [_run(r) for r in items]}

"""The JSON audit report, exactly per the `pgolf.audit/1` contract (extra keys are additive)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pgolf import __version__

if TYPE_CHECKING:
    from audit.engine import AuditReport

SCHEMA_ID = "pgolf.audit/1"


def self_audit_holds(claims_legal: bool, verdict: str) -> bool | None:
    """Whether a self-audit's "legal" conclusion survives this audit (None: undecided)."""
    if not claims_legal:
        return None
    return {"fail": False, "pass": True}.get(verdict)


def to_json(report: AuditReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA_ID,
        "folder": report.folder,
        "verdict": report.verdict,
        "findings": [f.to_json() for f in report.findings],
        "runs": [dict(r) for r in report.runs],
        "summary": dict(report.summary),
        "probes": report.probes,
        "self_audit": [
            {
                "file": s.file,
                "line": s.line,
                "conclusion": s.conclusion,
                "claims_legal": s.claims_legal,
                "holds": self_audit_holds(s.claims_legal, report.verdict),
            }
            for s in report.self_audits
        ],
        "rules_run": list(report.rules_run),
        "tool": {"name": "pgolf", "version": __version__, "facts": report.facts_version},
    }

"""Reports built from one finding list: LEGALITY_AUDIT.md, JSON (pgolf.audit/1), SARIF 2.1.0."""

from audit.report.json_report import SCHEMA_ID, to_json
from audit.report.markdown import to_markdown
from audit.report.sarif import to_sarif

__all__ = ["SCHEMA_ID", "to_json", "to_markdown", "to_sarif"]

"""Probe result types shared by the probes, run_probes, the CLI and the audit report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from audit.model import Finding


def jsonable(value: Any) -> Any:
    """Strict-JSON copy: nan becomes None, infinities the strings "inf" / "-inf"."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return jsonable(value.item())
    return value


# Status of one probe: "pass" (measured within tolerance), "fail" (measured violation),
# "error" (the scorer raised, timed out or broke the protocol), "skipped" (nothing to probe).
STATUSES = ("pass", "fail", "error", "skipped")


@dataclass
class ProbeResult:
    """What one probe measured, against which tolerance, and what that means."""

    condition: str  # "C1" | "C2" | "C3"
    name: str  # kebab-case probe name, e.g. "c2-normalization"
    status: str  # one of STATUSES
    measured: dict[str, Any] = field(default_factory=dict)
    tolerance: str = ""
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "name": self.name,
            "status": self.status,
            "measured": jsonable(self.measured),
            "tolerance": self.tolerance,
            "detail": self.detail,
        }


@dataclass
class ProbeReport:
    """All probe results for one script, the findings they imply, and how they were obtained."""

    results: list[ProbeResult]
    findings: list[Finding]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """Worst status over the results: fail > error > pass > skipped."""
        order = {"fail": 3, "error": 2, "pass": 1, "skipped": 0}
        if not self.results:
            return "skipped"
        return max((r.status for r in self.results), key=lambda s: order.get(s, 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "info": jsonable(self.info),
            "results": [r.to_json() for r in self.results],
            "findings": [f.to_json() for f in self.findings],
        }


class ScorerFailed(Exception):
    """The scorer raised, broke the protocol, or its process died or timed out."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal  # the process is gone: later probes cannot run either

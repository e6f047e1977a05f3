"""Opt-in dynamic probes for C1-C3, run in a sandboxed subprocess.

`run_probes(target)` imports the scorer of a record folder or script (its `pgolf_scorer`
hook, docs/scorer-protocol.md) in a sandbox and measures: C1 causality, C2 normalization and
C3 score-before-update. Results carry the measured numbers; failures become findings
PG491 / PG591 / PG691 (PG490 / PG590 / PG690 when a probe could not measure).
"""

from audit.probes import rules as rules  # registers the probe rule ids
from audit.probes.result import ProbeReport, ProbeResult
from audit.probes.run import run_probes

__all__ = ["ProbeReport", "ProbeResult", "run_probes"]

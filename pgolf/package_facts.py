"""Facts of a record folder computed from its run: statistics (R6), caps (R1-R3), the audit,
and requirements.txt. Shared by `pgolf package`; each is recomputed later by `pgolf verify`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pgolf import record_readme as rr
from pgolf.errors import PgolfError

BYTES_CAP = 16_000_000
TRAIN_CAP_S = 600.0
EVAL_CAP_S = 600.0
# Import name -> distribution name, for the requirements.txt of a record folder.
_DISTRIBUTIONS = {
    "torch": "torch",
    "numpy": "numpy",
    "sentencepiece": "sentencepiece",
    "zstandard": "zstandard",
    "zstd": "zstandard",
    "brotli": "brotli",
    "einops": "einops",
    "triton": "triton",
    "flash_attn": "flash-attn",
    "huggingface_hub": "huggingface-hub",
    "datasets": "datasets",
    "tiktoken": "tiktoken",
    "scipy": "scipy",
}


@dataclass
class Statistics:
    per_seed: dict[int, dict[str, Any]]
    mean_bpb: float | None
    std_bpb: float | None
    mean_loss: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "seeds": {str(k): v for k, v in sorted(self.per_seed.items())},
            "val_bpb_mean": self.mean_bpb,
            "val_bpb_std": self.std_bpb,
            "val_loss_mean": self.mean_loss,
        }


def statistics_from_logs(logs: dict[int, Any]) -> Statistics:
    """Per-seed scores from parsed logs and their mean and sample std (R6)."""
    from pgolf.stats import mean_std

    per_seed: dict[int, dict[str, Any]] = {}
    for seed, log in sorted(logs.items()):
        per_seed[seed] = {
            "val_bpb": log.val_bpb,
            "val_loss": log.val_loss,
            "steps": log.steps,
            "train_time_s": log.train_time_s,
            "eval_time_s": log.eval_time_s,
            "bytes_total": log.bytes_total,
        }
    bpbs = [v["val_bpb"] for v in per_seed.values() if v["val_bpb"] is not None]
    losses = [v["val_loss"] for v in per_seed.values() if v["val_loss"] is not None]
    mean_bpb, std_bpb = mean_std(bpbs) if bpbs else (None, None)
    mean_loss = mean_std(losses)[0] if losses else None
    return Statistics(per_seed, mean_bpb, _finite(std_bpb), mean_loss)


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)


def cap_rows(
    *,
    code_bytes: int,
    artifact_sizes: dict[int, int],
    logs: dict[int, Any],
    bytes_cap: float = BYTES_CAP,
    train_cap: float = TRAIN_CAP_S,
    eval_cap: float = EVAL_CAP_S,
) -> list[rr.CapRow]:
    """R1-R3 recomputed: bytes from the files as shipped, times from the logs."""
    rows: list[rr.CapRow] = []
    totals = [code_bytes + size for size in artifact_sizes.values()]
    if totals:
        worst = max(totals)
        rows.append(
            rr.CapRow(
                "R1",
                "code + compressed model bytes",
                f"{int(bytes_cap):,}",
                f"{worst:,}",
                worst <= bytes_cap,
            )
        )
    else:
        rows.append(
            rr.CapRow("R1", "code + compressed model bytes", f"{int(bytes_cap):,}", "-", None)
        )
    for rule, what, attr, cap in (
        ("R2", "train time (before serialization)", "train_time_s", train_cap),
        ("R3", "eval time (after loading the artifact)", "eval_time_s", eval_cap),
    ):
        values = [getattr(log, attr) for log in logs.values() if getattr(log, attr) is not None]
        if values and len(values) == len(logs):
            worst_t = max(values)
            rows.append(rr.CapRow(rule, what, f"{cap:.0f} s", f"{worst_t:.1f} s", worst_t <= cap))
        else:
            rows.append(rr.CapRow(rule, what, f"{cap:.0f} s", "not in every log", None))
    return rows


def caps_json(rows: list[rr.CapRow]) -> dict[str, Any]:
    return {
        r.rule: {"what": r.what, "limit": r.limit, "measured": r.measured, "ok": r.ok} for r in rows
    }


# ---------------------------------------------------------------------------- audit


@dataclass
class AuditOutcome:
    verdict: str
    markdown: str
    findings: list[dict[str, Any]]
    summary: rr.AuditSummary


def audit(folder: Path) -> AuditOutcome:
    """Run the static audit on an assembled folder (PgolfError if the auditor is unusable)."""
    try:
        from audit.engine import audit_folder
        from audit.report import to_markdown
    except ImportError as exc:
        raise PgolfError(f"the auditor is not available in this install ({exc})") from None
    report = audit_folder(folder)
    findings = [f for f in report.findings if not getattr(f, "suppressed", None)]
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: (order.get(str(f.severity), 3), f.rule, f.file or "", f.line or 0))
    counts: dict[str, int] = {}
    for f in findings:
        counts[str(f.severity)] = counts.get(str(f.severity), 0) + 1
    top = []
    for f in findings:
        if str(f.severity) == "info":
            continue
        where = f.file or ""
        if f.line:
            where += f":{f.line}"
        top.append(f"{f.rule} ({f.condition}, {f.severity}) {where} {f.message}".replace("  ", " "))
    entries = [
        {"rule": f.rule, "severity": str(f.severity), "file": f.file, "line": f.line}
        for f in findings
    ]
    summary = rr.AuditSummary(str(report.verdict), counts, top[:12])
    return AuditOutcome(str(report.verdict), to_markdown(report), entries, summary)


# ---------------------------------------------------------------------------- requirements


def requirements_for(script: Path, torch_version: str | None) -> str:
    """requirements.txt: the third-party packages the script imports, torch pinned to the run's."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    lines = ["# Third-party packages train_gpt.py imports (torch pinned to the version that ran)."]
    for dist in sorted({_DISTRIBUTIONS[m] for m in modules if m in _DISTRIBUTIONS}):
        if dist == "torch" and torch_version:
            lines.append(f"torch=={torch_version.split('+')[0]}")
            continue
        try:
            lines.append(f"{dist}>={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            lines.append(dist)
    return "\n".join(lines) + "\n"

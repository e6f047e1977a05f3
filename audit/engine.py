"""Run every registered rule on a folder and assemble the AuditReport.

Rule modules are discovered (every module of `audit.rules`), each rule runs with its
exceptions isolated (a crash becomes a finding naming the rule), suppressions are applied,
and the verdict follows from what is left: fail iff an unsuppressed error, review iff an
unsuppressed warning, else pass.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import math
import pkgutil
import tempfile
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import Any

from audit import facts, suppress
from audit.context import AuditContext, SelfAudit, build_context
from audit.logrun import lower_unrun
from audit.model import REGISTRY, Finding, Rule, Severity

_LOADED: list[str] = []
_LOAD_ERRORS: list[tuple[str, str]] = []


def load_rules() -> list[type[Rule]]:
    """Import every module of audit.rules once (registering its rules); return all rules."""
    if not _LOADED:
        import audit.rules

        for mod in sorted(pkgutil.iter_modules(audit.rules.__path__), key=lambda m: m.name):
            if mod.name.startswith("_"):
                continue
            try:
                importlib.import_module(f"audit.rules.{mod.name}")
            except Exception as exc:  # one broken family must not disable the others
                _LOAD_ERRORS.append((mod.name, f"{type(exc).__name__}: {exc}"))
            _LOADED.append(mod.name)
        # The probe rule ids (PGx9x) are registered for --explain and --list-rules.
        with contextlib.suppress(ImportError):
            importlib.import_module("audit.probes.rules")
    return list(REGISTRY)


def load_errors() -> list[tuple[str, str]]:
    load_rules()
    return list(_LOAD_ERRORS)


def select_rules(
    rules: Iterable[type[Rule]],
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
) -> list[type[Rule]]:
    """Filter by id prefixes (`PG5` selects PG5xx), like ruff's --select/--ignore."""

    def hit(rule: type[Rule], prefixes: Sequence[str]) -> bool:
        ids = (rule.id, *rule.old_ids)
        return any(i.upper().startswith(p.strip().upper()) for i in ids for p in prefixes if p)

    out = [r for r in rules if not select or hit(r, select)]
    return [r for r in out if not ignore or not hit(r, ignore)]


def family(rule_id: str) -> str:
    """PG501 -> '5'."""
    return rule_id[2:3]


@dataclass
class AuditReport:
    folder: str
    verdict: str
    findings: list[Finding]
    runs: list[dict[str, Any]]
    summary: dict[str, Any]
    probes: dict[str, Any] | None = None
    self_audits: list[SelfAudit] = field(default_factory=list)
    rules_run: list[str] = field(default_factory=list)
    excerpts: dict[str, str] = field(default_factory=dict)
    facts_version: str = facts.FACTS_VERSION

    @property
    def active(self) -> list[Finding]:
        return [f for f in self.findings if f.suppressed is None]

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.active if f.severity == severity)

    def worst(self) -> Severity | None:
        ranked = sorted(self.active, key=lambda f: f.severity.rank, reverse=True)
        return ranked[0].severity if ranked else None

    def self_audit_contradicted(self) -> list[SelfAudit]:
        """Self-audits that claim legality while this audit fails."""
        if self.verdict != "fail":
            return []
        return [s for s in self.self_audits if s.claims_legal]

    def to_json(self) -> dict[str, Any]:
        from audit.report import to_json

        return to_json(self)


def verdict_of(findings: Iterable[Finding]) -> str:
    active = [f for f in findings if f.suppressed is None]
    if any(f.severity == Severity.ERROR for f in active):
        return "fail"
    if any(f.severity == Severity.WARNING for f in active):
        return "review"
    return "pass"


def run_rules(ctx: AuditContext, rules: Iterable[type[Rule]]) -> list[Finding]:
    findings: list[Finding] = []
    for cls in rules:
        try:
            rule = cls()
            produced = list(cls.check(rule, ctx) or ())
        except Exception as exc:
            findings.append(_internal_error(cls, exc))
            continue
        for f in produced:
            if isinstance(f, Finding):
                findings.append(_normalized(f, cls))
    return findings


def _normalized(f: Finding, cls: type[Rule]) -> Finding:
    """A finding with a real Severity and a str message (a sloppy rule must not crash reports)."""
    sev = f.severity
    if not isinstance(sev, Severity):
        try:
            sev = Severity(str(sev).lower())
        except ValueError:
            sev = cls.severity
    line = f.line if isinstance(f.line, int) and f.line > 0 else None
    return replace(f, severity=sev, message=str(f.message), line=line)


def _internal_error(cls: type[Rule], exc: BaseException) -> Finding:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return Finding(
        rule=cls.id,
        condition=cls.condition,
        severity=Severity.WARNING,
        message=(
            f"internal error in rule {cls.id} ({cls.name}): {type(exc).__name__}: {exc}"[:300]
            + f"{where}; {cls.condition} was not fully checked"
        ),
    )


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _int(x: Any) -> int | None:
    v = _finite(x)
    return int(v) if v is not None else None


def runs_and_summary(ctx: AuditContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    claimed = {id(lg) for lg in ctx.claim_runs()}
    runs = []
    for log in ctx.runs():
        runs.append(
            {
                "log": ctx.relpath(log.path),
                "seed": _int(getattr(log, "seed", None)),
                "val_bpb": _finite(getattr(log, "val_bpb", None)),
                "val_loss": _finite(getattr(log, "val_loss", None)),
                "bytes_total": _int(getattr(log, "bytes_total", None)),
                "train_time_s": _finite(getattr(log, "train_time_s", None)),
                "eval_time_s": _finite(getattr(log, "eval_time_s", None)),
                # Extension: False for logs outside the claim (ablations, reruns).
                "in_claim": id(log) in claimed,
            }
        )
    # The summary describes the claim: the runs matching its per-seed scores (else all).
    in_claim = [r for r in runs if r["in_claim"]]
    values = [r["val_bpb"] for r in in_claim if r["val_bpb"] is not None]
    mean, std = _mean_std(values)
    sizes = [r["bytes_total"] for r in in_claim if r["bytes_total"] is not None]
    claimed = _finite((ctx.submission or {}).get("val_bpb"))
    summary = {
        "n_runs": len(values),
        "val_bpb_mean": _finite(mean),
        "val_bpb_std": _finite(std),
        "claimed_val_bpb": claimed,
        "bytes_max": max(sizes) if sizes else None,
    }
    return runs, summary


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    try:
        from pgolf.stats import mean_std

        m, s = mean_std(values)
        return float(m), float(s)
    except ImportError:
        m = sum(values) / len(values)
        if len(values) < 2:
            return m, None
        return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _excerpts(ctx: AuditContext, findings: Iterable[Finding]) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in findings:
        if f.file and f.line and f.file in ctx.sources:
            text = ctx.sources[f.file].excerpt(f.line)
            if text:
                out[f"{f.file}:{f.line}"] = text
    return out


def _run_probes(folder: Path, timeout_s: float) -> tuple[dict[str, Any], list[Finding]]:
    from pgolf.errors import InputError

    try:
        from audit.probes import run_probes
    except ImportError:
        run_probes = None
    if run_probes is None:
        raise InputError(
            "--probe: the dynamic probes are not available in this installation "
            "(audit.probes.run_probes is missing)"
        )
    try:
        result = run_probes(folder, timeout_s=timeout_s)
    except Exception as exc:  # a probe failure is reported, the static audit still stands
        return {"error": f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"[:500]}, []
    results = [_plain(r) for r in getattr(result, "results", []) or []]
    findings = [f for f in getattr(result, "findings", []) or [] if isinstance(f, Finding)]
    return {"results": results}, findings


def _plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        obj = asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


def audit_context(
    ctx: AuditContext,
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
) -> AuditReport:
    rules = select_rules(load_rules(), select, ignore)
    findings = run_rules(ctx, rules)
    findings = lower_unrun(ctx, findings)
    findings = suppress.apply(findings, suppress.collect(ctx))
    findings.sort(key=lambda f: (-f.severity.rank, f.rule, f.file or "", f.line or 0))
    runs, summary = runs_and_summary(ctx)
    return AuditReport(
        folder=str(ctx.folder),
        verdict=verdict_of(findings),
        findings=findings,
        runs=runs,
        summary=summary,
        self_audits=list(ctx.self_audits),
        rules_run=[r.id for r in rules],
        excerpts=_excerpts(ctx, findings),
    )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while one folder is audited.

    An audit holds millions of small objects (the trees and the analyses' per-node caches)
    and the collector would traverse them again and again, about a tenth of the audit's time.
    The audit's data structures hold no reference cycles, so refcounting frees them; any cycle
    made meanwhile is collected once the folder is done.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def audit_folder(
    folder: Path,
    *,
    probe: bool = False,
    probe_timeout_s: float = 300.0,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    config: Mapping[str, str] | None = None,
) -> AuditReport:
    """Audit one folder. Raises InputError (exit 2) only if the folder cannot be audited."""
    with gc_paused():
        ctx = build_context(Path(folder), config=config)
        report = audit_context(ctx, select=select, ignore=ignore)
    if probe:
        probes, extra = _run_probes(Path(folder), probe_timeout_s)
        report.probes = probes
        if extra:
            extra = suppress.apply(extra, suppress.collect(ctx))
            report.findings.extend(extra)
            report.verdict = verdict_of(report.findings)
    return report


def env_lines(text: str) -> dict[str, str]:
    """`# pgolf-env: KEY=VALUE` lines of a fixture or doc example (the logged config)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("# pgolf-env:"):
            key, _, value = s[len("# pgolf-env:") :].strip().partition("=")
            if key.strip():
                out[key.strip().upper()] = value.strip()
    return out


def audit_source(
    text: str,
    *,
    filename: str = "train_gpt.py",
    config: Mapping[str, str] | None = None,
    select: Sequence[str] | None = None,
) -> list[Finding]:
    """Audit a snippet as a folder whose only file is `filename` (fixtures, doc examples)."""
    merged = env_lines(text)
    merged.update(config or {})
    with tempfile.TemporaryDirectory(prefix="pgolf-audit-") as tmp:
        (Path(tmp) / filename).write_text(text, encoding="utf-8")
        return audit_folder(Path(tmp), config=merged, select=select).findings

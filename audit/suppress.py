"""Suppressions: justified `# pgolf: allow PGxxx -- why` comments and `pgolf-audit.json`.

A suppression without a justification is not applied; it is returned as a problem so that
the report shows it (rule PG107). Suppressed findings stay in every report, marked with
their justification, and no longer count towards the verdict.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from audit.folder import read_text
from audit.model import Finding

if TYPE_CHECKING:
    from audit.context import AuditContext

CONFIG_NAME = "pgolf-audit.json"
_INLINE = re.compile(
    r"#\s*pgolf:\s*allow\s+(?P<ids>PG\d{3}(?:\s*,\s*PG\d{3})*)\s*(?:--\s*(?P<why>.*\S))?",
    re.I,
)


@dataclass(frozen=True)
class Suppression:
    rule: str
    justification: str
    file: str | None  # None: every file
    line: int | None  # None: every line of the file; inline: the comment's line
    origin: str  # "file:line" of the comment, or the config file
    inline: bool


@dataclass
class Suppressions:
    items: list[Suppression]
    problems: list[tuple[str, int | None, str]]  # (file, line, problem)


def collect(ctx: AuditContext) -> Suppressions:
    """Parse every suppression of the folder once (cached in ctx.cache)."""
    cached = ctx.cache.get("suppressions")
    if isinstance(cached, Suppressions):
        return cached
    found = Suppressions([], [])
    for rel, src in ctx.sources.items():
        for lineno, line in enumerate(src.text.splitlines(), start=1):
            if "pgolf" not in line:
                continue
            m = _INLINE.search(line)
            if not m:
                continue
            ids = [i.strip().upper() for i in m.group("ids").split(",")]
            why = (m.group("why") or "").strip()
            if not why:
                found.problems.append(
                    (rel, lineno, f"suppression of {', '.join(ids)} has no justification")
                )
                continue
            for rule in ids:
                found.items.append(Suppression(rule, why, rel, lineno, f"{rel}:{lineno}", True))
    _collect_config(ctx, found)
    ctx.cache["suppressions"] = found
    return found


def _collect_config(ctx: AuditContext, found: Suppressions) -> None:
    f = ctx.files.get(CONFIG_NAME)
    if f is None:
        return
    try:
        raw, _ = read_text(f, 1 << 20)
        data = json.loads(raw)
    except (OSError, ValueError) as exc:
        found.problems.append((CONFIG_NAME, None, f"not valid JSON ({exc}); no suppression used"))
        return
    allow = data.get("allow") if isinstance(data, dict) else None
    if not isinstance(allow, list):
        found.problems.append((CONFIG_NAME, None, 'expected {"allow": [...]}; nothing suppressed'))
        return
    for i, item in enumerate(allow):
        if not isinstance(item, dict) or not isinstance(item.get("rule"), str):
            found.problems.append((CONFIG_NAME, None, f"allow[{i}] has no rule id"))
            continue
        why = item.get("justification")
        if not isinstance(why, str) or not why.strip():
            found.problems.append(
                (CONFIG_NAME, None, f"allow[{i}] ({item['rule']}) has no justification")
            )
            continue
        file = item.get("file") if isinstance(item.get("file"), str) else None
        line = item.get("line") if isinstance(item.get("line"), int) else None
        found.items.append(
            Suppression(item["rule"].upper(), why.strip(), file, line, CONFIG_NAME, False)
        )


def _matches(s: Suppression, f: Finding) -> bool:
    if s.rule != f.rule:
        return False
    if s.inline:
        # On the finding's line or on the line above it.
        return f.file == s.file and f.line is not None and f.line in (s.line, (s.line or 0) + 1)
    if s.file is not None and s.file != f.file:
        return False
    return s.line is None or s.line == f.line


def apply(findings: list[Finding], sups: Suppressions) -> list[Finding]:
    """Mark findings covered by a justified suppression."""
    out: list[Finding] = []
    for f in findings:
        match = next((s for s in sups.items if _matches(s, f)), None)
        if match is not None and f.suppressed is None:
            f = replace(f, suppressed=f"{match.justification} ({match.origin})")
        out.append(f)
    return out

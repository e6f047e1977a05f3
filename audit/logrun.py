"""Log evidence of absence: code findings inside a branch the logged runs never entered.

Some branches print a line of their own every time they run (`log0(f"multi_ema_candidate
decay:{d} val_bpb:{b}")`). When the folder's logs hold the runs' output but no line starts
with that identifier, the branch did not run in the logged runs, whatever its guard (a
config list that was empty, `if len(candidates) > 1`) would suggest statically. Errors of the
code rules (PG3xx-PG7xx) raised inside such a branch are lowered to warnings with that note:
the code is still reported, but it is not what produced the claimed score.
"""

from __future__ import annotations

import ast
import dataclasses
from typing import TYPE_CHECKING

from audit import astcache
from audit.model import Finding, Severity

if TYPE_CHECKING:
    from audit.context import AuditContext

_CODE_FAMILIES = ("PG3", "PG4", "PG5", "PG6", "PG7")
_PRINTS = frozenset({"print", "log", "log0", "logger", "info", "log_print", "print0", "_log"})


def _prints_of(block: list[ast.stmt]) -> list[ast.Call]:
    """Print calls that run whenever `block` runs: its own statements, or the body of a loop
    among them (a finding inside that loop ran only if the loop did)."""
    out: list[ast.Call] = []
    for stmt in block:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            out.append(stmt.value)
        elif isinstance(stmt, ast.For | ast.While):
            out += [
                s.value
                for s in stmt.body
                if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
            ]
    return out


def _branch_heads(tree: ast.Module) -> list[tuple[int, int, str]]:
    """(first line, last line, identifier) for every `if` body that prints its own line."""
    from audit.rules._scoring import metric_prefix

    out: list[tuple[int, int, str]] = []
    for node in astcache.walk(tree):
        if not isinstance(node, ast.If):
            continue
        for call in _prints_of(node.body):
            f = call.func
            short = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if short not in _PRINTS:
                continue
            head = metric_prefix(call)
            if head:
                first = node.body[0].lineno
                last = getattr(node.body[-1], "end_lineno", None) or node.body[-1].lineno
                out.append((first, last, head))
    return out


def lower_unrun(ctx: AuditContext, findings: list[Finding]) -> list[Finding]:
    """Lower code-rule errors inside branches whose own log line is absent from the logs."""
    errors = [
        f
        for f in findings
        if f.severity is Severity.ERROR and f.rule.startswith(_CODE_FAMILIES) and f.file and f.line
    ]
    if not errors or not ctx.logs:
        return findings
    error_ids = {id(f) for f in errors}
    try:
        from audit.rules._scoring import _log_heads

        heads = _log_heads(ctx)
    except Exception:  # best effort: without the log heads nothing is lowered
        return findings
    if len(heads) < 3:  # the logs hold no run output to judge absence by
        return findings
    branches: dict[str, list[tuple[int, int, str]]] = {}
    out: list[Finding] = []
    for f in findings:
        if id(f) not in error_ids:
            out.append(f)
            continue
        src = ctx.sources.get(f.file or "")
        if src is None or src.tree is None:
            out.append(f)
            continue
        if f.file not in branches:
            branches[f.file] = _branch_heads(src.tree)  # type: ignore[index]
        missing = [
            head
            for first, last, head in branches[f.file]  # type: ignore[index]
            if first <= (f.line or 0) <= last and head not in heads
        ]
        if not missing:
            out.append(f)
            continue
        note = (
            f" (not in the logged runs: this branch prints `{missing[0]}` lines and no log has one)"
        )
        out.append(dataclasses.replace(f, severity=Severity.WARNING, message=f.message + note))
    return out

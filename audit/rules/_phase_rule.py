"""What the rules over the phase model (PG3xx, PG6xx, PG214) share: deep-recursion room for
their checks, the validation-driven updates that run before the artifact, and the finding
placed at a statement of a function."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from audit.flow.adapt import Update, is_throwaway, val_updates
from audit.model import Finding, Rule
from audit.phases import TRAIN, PhaseModel, deep_recursion

if TYPE_CHECKING:
    from audit.context import AuditContext


class PhaseRule(Rule):
    """A rule whose check walks the phase model (recursive over long expression chains)."""

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        with deep_recursion():
            yield from self._check(ctx)

    def _check(self, ctx: AuditContext) -> Iterator[Finding]:
        raise NotImplementedError


def before_artifact_updates(pm: PhaseModel) -> list[Update]:
    """Gradient steps on validation data that run before the artifact is written (not a
    throw-away copy of the model)."""
    return [u for u in val_updates(pm) if TRAIN in u.phases and not is_throwaway(u.func, u.node)]


def func_name(fn: Any) -> str:
    return fn.name if fn is not None else "<module>"


def site_finding(
    rule: Rule, pm: PhaseModel, file: str, node: ast.AST, fn: Any, **fmt: Any
) -> Finding:
    """A finding at `node` (a statement of function `fn`, or module level) quoting its line;
    `func` is formatted into the message with the function's name."""
    line = getattr(node, "lineno", 0)
    name = func_name(fn)
    return rule.finding(
        file=file,
        line=line,
        function=name,
        evidence=pm.line_text(file, line),
        func=name,
        **fmt,
    )

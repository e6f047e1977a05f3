"""Timed work logged between the training loop and the artifact, and which of it read
validation data.

R2 counts everything before the artifact is written; R3 everything the evaluation does. Work
on validation data cannot be training (R4: training never sees validation), so where a
submission runs it before serializing — fine-tuning on the validation tokens ("pre-quant
TTT"), calibrating on them — it is evaluation work placed early, and the maintainers count its
time towards the evaluation budget. The code rules find the functions that do it (a gradient
step on validation data before the artifact, PG301/PG602; validation data handed to a
calibration function, PG302); the log lines those functions print between the end of the
training loop and the artifact give its duration.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audit import astcache, facts

if TYPE_CHECKING:
    from audit.context import AuditContext

_TOTAL = re.compile(r"total|done", re.I)
# Cumulative clocks (wallclock, budget, total_elapsed) would count the training loop again.
_CUMULATIVE = re.compile(r"wallclock|budget|total_elapsed", re.I)
_PRINTS = frozenset({"print", "log", "log0", "logger", "info", "log_print", "print0", "_log"})


@dataclass(frozen=True)
class Phase:
    """One timed phase of a log: its evidence line, duration, and the function behind it."""

    line: int
    text: str
    seconds: float
    prefix: str
    val_function: str | None = None  # set when the phase is work on validation data


def line_prefix(text: str) -> str:
    """The identifier a log line starts with: `prequant_ttt:epoch 3/6 ...` -> prequant_ttt."""
    head = text.split(":", 1)[0] if ":" in text[:40] else text.split(" ", 1)[0]
    return head.strip().lower()


def _literal_heads(arg: ast.expr, strings: dict[str, set[str]]) -> set[str]:
    """Literal starts of a printed line: a string, an f-string's first constant part, or an
    f-string starting with a local variable bound to string literals (`f"{tag}:epoch"`)."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value}
    if not isinstance(arg, ast.JoinedStr) or not arg.values:
        return set()
    first = arg.values[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return {first.value}
    if isinstance(first, ast.FormattedValue) and isinstance(first.value, ast.Name):
        rest = arg.values[1] if len(arg.values) > 1 else None
        tail = rest.value if isinstance(rest, ast.Constant) and isinstance(rest.value, str) else ""
        return {head + tail for head in strings.get(first.value.id, set())}
    return set()


def _string_locals(fn: ast.AST) -> dict[str, set[str]]:
    """Locals assigned only string literals (or a choice between two of them)."""
    out: dict[str, set[str]] = {}
    for node in astcache.walk(fn):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if not isinstance(target, ast.Name):
                continue
            values = [node.value]
            if isinstance(node.value, ast.IfExp):
                values = [node.value.body, node.value.orelse]
            if all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in values):
                out.setdefault(target.id, set()).update(str(v.value) for v in values)  # type: ignore[attr-defined]
    return out


def _is_print(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not node.args:
        return False
    f = node.func
    return (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")) in _PRINTS


def _printed_prefixes(nodes: list[ast.AST], scope: ast.AST) -> set[str]:
    """Prefixes of the lines printed under `nodes` (`log(f"prequant_ttt:done ...")`)."""
    strings = _string_locals(scope)
    out: set[str] = set()
    for root in nodes:
        for node in astcache.walk(root):
            if not _is_print(node):
                continue
            for text in _literal_heads(node.args[0], strings):  # type: ignore[attr-defined]
                prefix = line_prefix(text)
                if re.fullmatch(r"[a-z_][\w\-]{2,}", prefix):
                    out.add(prefix)
    return out


def _timed_by_caller(pm: Any, call: ast.Call) -> list[ast.stmt]:
    """Prints right after the statement holding `call` that read a clock the caller started
    just before it (`t = time.perf_counter(); adapt(...); log(f"ttt:elapsed={...t...}")`)."""
    stmt = pm.statement_of(call)
    parent = pm.index.parent.get(id(stmt)) if stmt is not None else None
    for name in ("body", "orelse", "finalbody"):
        block = getattr(parent, name, None)
        if not isinstance(block, list) or not any(s is stmt for s in block):
            continue
        i = next(k for k, s in enumerate(block) if s is stmt)
        clocks = {
            t.id
            for s in block[max(0, i - 3) : i]
            if isinstance(s, ast.Assign)
            for t in s.targets
            if isinstance(t, ast.Name)
        }
        out: list[ast.stmt] = []
        for s in block[i + 1 : i + 5]:
            if not isinstance(s, ast.Expr | ast.If):  # synchronize(), `if dist: barrier()`
                break
            names = {n.id for n in astcache.walk(s) if isinstance(n, ast.Name)}
            if isinstance(s, ast.Expr) and _is_print(s.value) and clocks & names:
                out.append(s)
        return out
    return []


def val_work_prefixes(ctx: AuditContext) -> dict[str, str]:
    """Line prefix -> name of the function whose work it times, for every function that does
    work on validation data before the artifact (gradient steps, calibration): the lines it
    prints, and those its callers print right after it from a clock started just before it."""
    try:
        from audit.phases import TRAIN, analyze, deep_recursion
        from audit.rules._phase_rule import before_artifact_updates
        from audit.rules.data_separation import _calibration_functions

        with deep_recursion():
            pm = analyze(ctx)
            if "val_work_prefixes" in pm.memo:
                return dict(pm.memo["val_work_prefixes"])
            funcs: list[Any] = [u.func for u in before_artifact_updates(pm) if u.func is not None]
            for cal in _calibration_functions(pm):
                for edge in pm.val.callers_with_taint(cal):
                    if pm.is_reached(edge.call) and TRAIN in pm.phases_of(edge.call):
                        funcs.append(cal)
                        break
            out: dict[str, str] = {}
            for fn in funcs:
                for prefix in _printed_prefixes([fn.node], fn.node):
                    out.setdefault(prefix, fn.name)
                for edge in pm.val.callers_with_taint(fn):
                    scope = edge.caller.node if edge.caller else edge.call
                    after = _timed_by_caller(pm, edge.call)
                    for prefix in _printed_prefixes(list(after), scope):
                        out.setdefault(prefix, fn.name)
            pm.memo["val_work_prefixes"] = dict(out)
    except Exception:  # the phase model is optional evidence; without it no phase is val work
        return {}
    return out


def pre_artifact_phases(ctx: AuditContext, log: Any) -> list[Phase]:
    """Timed phases between the training loop's end and the artifact, one per line prefix.

    Per prefix, a "total"/"done" line wins over per-step lines (which are summed otherwise).
    Diagnostic evaluations and the serialization itself are not work, unless the function
    that prints them works on validation data.
    """
    lines: list[tuple[int, str]] = []
    stop = end = None
    try:
        with (ctx.folder / ctx.relpath(log.path)).open("rb") as fh:
            for n, raw in enumerate(fh, start=1):
                text = raw[:2048].decode("utf-8", errors="replace").strip()
                if facts.TRAIN_STOP_LINE.search(text):
                    stop, lines, end = n, [], None
                elif stop is not None and facts.ARTIFACT_LINE.search(text):
                    end = n  # the last one is the artifact (the first may be the raw model)
                elif stop is not None and len(lines) < 50_000:
                    lines.append((n, text))
    except OSError:
        return []
    if stop is None or end is None:
        return []
    val_prefixes = val_work_prefixes(ctx) if lines else {}
    groups: dict[str, list[tuple[int, str, float, bool]]] = {}
    for n, text in lines:
        if n >= end:
            break
        m = facts.PHASE_DURATION.search(text)
        if not m or _CUMULATIVE.search(text):
            continue
        prefix = line_prefix(text)
        if prefix not in val_prefixes and facts.NOT_TRAIN_WORK.search(text):
            continue
        seconds = float(m.group(1)) / (1000.0 if m.group(2).lower() == "ms" else 1.0)
        groups.setdefault(prefix, []).append((n, text, seconds, bool(_TOTAL.search(text))))
    out = []
    for prefix, items in groups.items():
        totals = [i for i in items if i[3]]
        if totals:
            n, text, seconds, _ = max(totals, key=lambda i: i[2])
        else:
            n, text = max(items, key=lambda i: i[2])[:2]
            times = [i[2] for i in items]
            cumulative = len(times) >= 3 and all(a < b for a, b in itertools.pairwise(times))
            seconds = times[-1] if cumulative else sum(times)  # a clock that only grows
        out.append(Phase(n, text, seconds, prefix, val_prefixes.get(prefix)))
    return out


def train_work(phases: list[Phase]) -> list[Phase]:
    """The phases that count towards training (R2): work not on validation data."""
    return [p for p in phases if p.val_function is None]


def val_work(phases: list[Phase]) -> list[Phase]:
    """The phases that count towards evaluation (R3), one per function: its lines restate
    the same work (`ttt_adamw:done elapsed=60.9s` then the caller's `ttt:elapsed=60.9s`),
    so the longest stands for it."""
    best: dict[str, Phase] = {}
    for p in phases:
        fn = p.val_function
        if fn is not None and (fn not in best or p.seconds > best[fn].seconds):
            best[fn] = p
    return sorted(best.values(), key=lambda p: p.line)

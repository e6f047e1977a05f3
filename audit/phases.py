"""Phase model of a submission: training vs evaluation code, config reachability, data taint.

`analyze(ctx)` builds (once per context, cached in `ctx.cache["phases"]`) a PhaseModel:

- phase of any node: "train" (runs before the artifact is serialized), "eval" (after), or
  "unknown" (not reached from the entry, no serialization point found, or both phases);
- reachability of functions and statements under the effective configuration (optional
  paths behind `if args.ttt_enabled:` and the like), with the config keys whose code default
  had to be assumed because the logs and README did not say;
- val-data taint (`fineweb_val_*` shards, byte sidecars, tensors and loaders built from them)
  and train-data taint, followed across assignments, calls and returns in every file.

The machinery lives in `audit.flow` (index, config, taint, trace); this module is the API the
rules use.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audit.flow.config import ConfigEvaluator
from audit.flow.index import FunctionInfo, ProgramIndex
from audit.flow.taint import TRAIN_SOURCE, VAL_SOURCE, TaintAnalysis
from audit.flow.trace import Occurrence, Trace, Tracer

if TYPE_CHECKING:
    from audit.context import AuditContext

CACHE_KEY = "phases"
TRAIN, EVAL, UNKNOWN = "train", "eval", "unknown"


@dataclass(frozen=True)
class Reach:
    """Whether code runs under the effective configuration."""

    reached: bool  # visited from the entry point on a branch not ruled out by the config
    certain: bool  # False if only reached through guards that could not be decided
    assumed: tuple[str, ...] = ()  # config keys whose default in code decided a guard

    @property
    def note(self) -> str:
        if not self.assumed:
            return ""
        keys = ", ".join(self.assumed)
        return f"configuration not logged for {keys}; judged with the default in code"


@dataclass
class PhaseModel:
    """Answers the questions rules ask about phases, reachability and data taint."""

    index: ProgramIndex
    trace: Trace
    config: ConfigEvaluator
    val: TaintAnalysis
    train_data: TaintAnalysis  # paths/loaders of train shards (not values derived from them)
    files: dict[str, str] = field(default_factory=dict)  # file -> text
    memo: dict[str, Any] = field(default_factory=dict)  # shared results of the rules
    problems: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ locations

    @property
    def serialize_site(self) -> tuple[str, int] | None:
        o = self.trace.serialize
        return (o.file, o.stmt.lineno) if o else None

    @property
    def load_site(self) -> tuple[str, int] | None:
        o = self.trace.load
        return (o.file, o.stmt.lineno) if o else None

    def statement_of(self, node: ast.AST) -> ast.stmt | None:
        """The innermost statement holding `node` (traced or not)."""
        cur: ast.AST | None = node
        while cur is not None and not isinstance(cur, ast.stmt):
            cur = self.index.parent.get(id(cur))
        return cur if isinstance(cur, ast.stmt) else None

    def occurrences(self, node: ast.AST) -> list[Occurrence]:
        """Trace visits of the statement that contains `node` (empty if never reached)."""
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out: list[Occurrence] = []
            for stmt in node.body:
                out.extend(self.trace.by_stmt.get(id(stmt), []))
            return out
        stmt = self.statement_of(node)
        return list(self.trace.by_stmt.get(id(stmt), [])) if stmt is not None else []

    def function_of(self, node: ast.AST) -> FunctionInfo | None:
        return self.index.function_of(node)

    # ------------------------------------------------------------------ phases

    def phase_of_occurrence(self, occ: Occurrence) -> str:
        s = self.trace.serialize
        if s is None:
            return UNKNOWN
        if any(a <= occ.seq <= b for a, b in self.trace.eval_spans):
            return EVAL  # an evaluation-only branch that loads a saved artifact
        return TRAIN if self.before_artifact(occ) else EVAL

    def before_artifact(self, occ: Occurrence) -> bool:
        """Runs before (or while) the artifact is written: part of training (R2, R4)."""
        s = self.trace.serialize
        if s is None:
            return False
        if occ.seq <= s.seq:
            return True
        cur: ast.AST | None = occ.stmt
        while cur is not None:  # inside `with open(artifact, "wb") as f:`
            if cur is s.stmt:
                return True
            cur = self.index.parent.get(id(cur))
        return False

    def phases_of(self, node: ast.AST) -> frozenset[str]:
        """Every phase in which the statement holding `node` runs."""
        return frozenset(self.phase_of_occurrence(o) for o in self.occurrences(node))

    def phase_of(self, node: ast.AST) -> str:
        """ "train", "eval", or "unknown" (unreached, no serialization point, or both)."""
        ph = self.phases_of(node)
        return next(iter(ph)) if len(ph) == 1 else UNKNOWN

    # ------------------------------------------------------------------ reachability

    def reach(self, node: ast.AST | FunctionInfo | str) -> Reach:
        """Reachability of a statement/function (node, FunctionInfo or function name)."""
        if isinstance(node, str):
            infos = [f for f in self.index.iter_functions() if f.name == node]
            occs = [o for f in infos for o in self.occurrences(f.node)]
        elif isinstance(node, FunctionInfo):
            occs = self.occurrences(node.node)
        else:
            occs = self.occurrences(node)
        if not occs:
            return Reach(False, not self.trace.truncated and self.trace.entry is not None)
        certain = [o for o in occs if not o.conditional]
        pool = certain or occs
        assumed = tuple(sorted({k for o in pool for k in o.assumed}))
        return Reach(True, bool(certain), assumed)

    def is_reached(self, node: ast.AST | FunctionInfo | str) -> bool:
        """False only when the effective configuration rules the code out (or it is dead)."""
        if self.trace.entry is None or self.trace.truncated:
            return True
        return self.reach(node).reached

    # ------------------------------------------------------------------ taint

    def is_val(self, expr: ast.AST) -> bool:
        """Does `expr` carry validation data (in any analysed calling context)?"""
        fn = self.index.function_of(expr)
        file = self._file_of(expr)
        return self.val.tainted_in(expr, fn, file)

    def is_train_data(self, expr: ast.AST) -> bool:
        fn = self.index.function_of(expr)
        return self.train_data.tainted_in(expr, fn, self._file_of(expr))

    def _file_of(self, node: ast.AST) -> str:
        return self.index.node_file.get(id(node), next(iter(self.index.trees), ""))

    def line_text(self, file: str, line: int) -> str:
        lines = self.files.get(file, "").splitlines()
        return lines[line - 1].strip()[:200] if 0 < line <= len(lines) else ""

    def summary(self) -> dict[str, Any]:
        return {
            "entry": self.trace.entry,
            "serialize": self.serialize_site,
            "load": self.load_site,
            "statements_traced": len(self.trace.occurrences),
            "truncated": self.trace.truncated,
        }


def build(
    trees: dict[str, ast.Module],
    config: dict[str, str],
    texts: dict[str, str],
    log_text: str = "",
) -> PhaseModel:
    """Build a PhaseModel from parsed files (used by analyze() and by tests)."""
    index = ProgramIndex(trees)
    cfg = ConfigEvaluator(trees, config)
    trace = Tracer(index, cfg, log_text).run()
    configured_val = {
        name
        for name in cfg.attr_defs
        if isinstance(v := cfg.attr_value(name), str) and VAL_SOURCE.search(v)
    }
    return PhaseModel(
        index=index,
        trace=trace,
        config=cfg,
        val=TaintAnalysis(index, VAL_SOURCE, attrs=configured_val),
        train_data=TaintAnalysis(index, TRAIN_SOURCE, paths_only=True, eager=False),
        files=texts,
    )


def analyze(ctx: AuditContext) -> PhaseModel:
    """The PhaseModel of an audit context, built once and cached in `ctx.cache`."""
    cached = ctx.cache.get(CACHE_KEY)
    if isinstance(cached, PhaseModel):
        return cached
    trees = {name: sf.tree for name, sf in ctx.sources.items() if sf.tree is not None}
    texts = {name: sf.text for name, sf in ctx.sources.items()}
    try:
        with deep_recursion():
            model = build(trees, dict(ctx.config), texts, _log_text(ctx))
    except RecursionError:
        # pathologically nested code: judge nothing rather than fail every rule
        model = build({}, dict(ctx.config), {})
        model.problems.append("code nested too deeply for data-flow analysis; not analysed")
    ctx.cache[CACHE_KEY] = model
    return model


@contextmanager
def deep_recursion(limit: int = 6000) -> Iterator[None]:
    """Room for the recursive AST walks on long expression chains (restored after)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _log_text(ctx: AuditContext, limit: int = 2_000_000, max_logs: int = 4) -> str:
    """Text of the first few run logs (bounded), for evidence that a branch ran."""
    from audit.folder import read_text

    parts: list[str] = []
    for log in list(ctx.logs)[:max_logs]:
        f = ctx.files.get(ctx.relpath(getattr(log, "path", "")))
        if f is None or getattr(f, "binary", False):
            continue
        try:
            text, _ = read_text(f, limit)
        except OSError:
            continue
        src_end = getattr(log, "source_end_line", None)
        if src_end:  # skip the embedded source: code is not evidence of execution
            text = "\n".join(text.splitlines()[src_end:])
        parts.append(text)
    return "\n".join(parts)

"""Static execution trace of a submission: statement order, phases and config reachability.

Starting at the script's entry (`if __name__ == "__main__":` body, else the module body),
statements are visited in source order and calls to the submission's own functions are
inlined (recursion and depth bounded), so each statement occurrence gets a sequence number.
Branches guarded by configuration (`if args.ttt_enabled:`) are evaluated against the
effective configuration; undecidable branches are all visited and marked conditional.

The serialization point is the statement writing the compressed artifact (`open(path, "wb")`,
`torch.save(obj, path)`, `Path.write_bytes` with a `final_model*` / `.ptz` / model path);
occurrences before it are the training phase, after it the evaluation phase.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from audit import astcache
from audit.flow.config import UNKNOWN, ConfigEvaluator, GuardResult
from audit.flow.index import FunctionInfo, ProgramIndex

_MAX_EVENTS = 150_000
_MAX_DEPTH = 24
_ARTIFACT_PATH = re.compile(r"final_model|\.ptz\b|\.int\d|model.*\.(pt|bin|xz|lzma|zst|br|gz)\b")
_COMPRESSED_PATH = re.compile(r"\.ptz\b|int\d|zst|xz|lzma|brotli|\.br\b|\.gz\b|quant|compress")


@dataclass(frozen=True)
class Occurrence:
    """One visit of a statement in the trace."""

    seq: int
    stmt: ast.stmt
    func: FunctionInfo | None
    file: str
    conditional: bool
    assumed: tuple[str, ...]


@dataclass
class Trace:
    occurrences: list[Occurrence] = field(default_factory=list)
    # (first, last) sequence numbers of evaluation-only branches before the serialization
    # point: `if TTT_ONLY: model = load(artifact); evaluate(...)`
    eval_spans: list[tuple[int, int]] = field(default_factory=list)
    by_stmt: dict[int, list[Occurrence]] = field(default_factory=dict)
    artifact_writes: list[Occurrence] = field(default_factory=list)
    compressed_writes: list[Occurrence] = field(default_factory=list)
    loads: list[Occurrence] = field(default_factory=list)
    truncated: bool = False
    entry: str | None = None
    serialize: Occurrence | None = None
    load: Occurrence | None = None


def _local_defs(fn: FunctionInfo | None) -> dict[str, ast.expr]:
    """Names assigned exactly once in a function body (for evaluating guards)."""
    if fn is None:
        return {}
    counts: dict[str, int] = {}
    exprs: dict[str, ast.expr] = {}
    for node in astcache.walk(fn.node):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            t = node.targets[0]
            if isinstance(t, ast.Name):
                counts[t.id] = counts.get(t.id, 0) + 1
                exprs[t.id] = node.value
        elif isinstance(node, ast.AugAssign | ast.For) and isinstance(node.target, ast.Name):
            counts[node.target.id] = counts.get(node.target.id, 0) + 2
    return {k: v for k, v in exprs.items() if counts.get(k) == 1}


def _calls_in(node: ast.AST) -> list[ast.Call]:
    out = [
        n for n in astcache.walk(node) if isinstance(n, ast.Call) and not isinstance(n, ast.Lambda)
    ]
    out.sort(key=lambda c: (getattr(c, "lineno", 0), getattr(c, "col_offset", 0)))
    return out


def _dotted(e: ast.expr) -> str:
    parts: list[str] = []
    while isinstance(e, ast.Attribute):
        parts.append(e.attr)
        e = e.value
    if isinstance(e, ast.Name):
        parts.append(e.id)
    return ".".join(reversed(parts))


class Tracer:
    def __init__(self, index: ProgramIndex, config: ConfigEvaluator, log_text: str = "") -> None:
        self.index = index
        self.config = config
        # Logs of the runs: output printed inside a branch proves the branch ran even when
        # the configuration key that switches it was not logged.
        self.log_text = log_text
        self._prefix_count: dict[str, int] = {}
        if log_text:
            for tree in index.trees.values():
                for n in astcache.walk(tree):
                    lead = _log_prefix(n)
                    if lead:
                        self._prefix_count[lead] = self._prefix_count.get(lead, 0) + 1
        self.trace = Trace()
        self._defs_cache: dict[str, dict[str, ast.expr]] = {}
        # statements are visited once per call path: their sorted calls are listed once
        self._calls_cache: dict[int, list[ast.Call]] = {}

    def run(self) -> Trace:
        entry_file, body = self._entry()
        self.trace.entry = entry_file
        if entry_file is not None:
            self._block(body, entry_file, None, (), False, ())
        self._find_points()
        return self.trace

    def _entry(self) -> tuple[str | None, list[ast.stmt]]:
        files = sorted(
            self.index.trees, key=lambda f: (not f.endswith("train_gpt.py"), f.count("/"), f)
        )
        for file in files:
            tree = self.index.trees[file]
            for stmt in tree.body:
                if isinstance(stmt, ast.If) and "__name__" in astcache.unparse(stmt.test):
                    pre = [s for s in tree.body if s is not stmt and not _is_def(s)]
                    return file, pre + stmt.body
        for file in files:
            tree = self.index.trees[file]
            body = [s for s in tree.body if not _is_def(s)]
            if any(_calls_in(s) for s in body):
                return file, body
        return None, []

    # ------------------------------------------------------------------ walking

    def _calls_of(self, node: ast.AST) -> list[ast.Call]:
        hit = self._calls_cache.get(id(node))
        if hit is None:
            hit = self._calls_cache[id(node)] = _calls_in(node)
        return hit

    def _defs(self, fn: FunctionInfo | None) -> dict[str, ast.expr]:
        key = fn.qualname if fn else ""
        if key not in self._defs_cache:
            self._defs_cache[key] = _local_defs(fn)
        return self._defs_cache[key]

    def _emit(
        self,
        stmt: ast.stmt,
        file: str,
        fn: FunctionInfo | None,
        cond: bool,
        assumed: tuple[str, ...],
    ) -> Occurrence | None:
        if len(self.trace.occurrences) >= _MAX_EVENTS:
            self.trace.truncated = True
            return None
        occ = Occurrence(len(self.trace.occurrences), stmt, fn, file, cond, assumed)
        self.trace.occurrences.append(occ)
        self.trace.by_stmt.setdefault(id(stmt), []).append(occ)
        return occ

    def _block(
        self,
        body: list[ast.stmt],
        file: str,
        fn: FunctionInfo | None,
        stack: tuple[str, ...],
        cond: bool,
        assumed: tuple[str, ...],
    ) -> None:
        for stmt in body:
            if self.trace.truncated:
                return
            if _is_def(stmt):
                continue
            occ = self._emit(stmt, file, fn, cond, assumed)
            if occ is None:
                return
            if isinstance(stmt, ast.If):
                self._calls(stmt.test, file, fn, stack, cond, assumed)
                g = self.config.guard(stmt.test, self._defs(fn))
                a = tuple(sorted(set(assumed) | set(g.assumed)))
                if g.value is False and g.assumed and self._ran(stmt.body, file, fn):
                    g = GuardResult(True, (), g.used)
                    a = assumed
                if g.value is True:
                    self._block(stmt.body, file, fn, stack, cond, a)
                elif g.value is False:
                    self._block(stmt.orelse, file, fn, stack, cond, a)
                else:
                    self._block(stmt.body, file, fn, stack, True, assumed)
                    self._block(stmt.orelse, file, fn, stack, True, assumed)
            elif isinstance(stmt, ast.For | ast.AsyncFor | ast.While):
                head = stmt.iter if isinstance(stmt, ast.For | ast.AsyncFor) else stmt.test
                self._calls(head, file, fn, stack, cond, assumed)
                self._block(stmt.body, file, fn, stack, cond, assumed)
                self._block(stmt.orelse, file, fn, stack, cond, assumed)
            elif isinstance(stmt, ast.With | ast.AsyncWith):
                for item in stmt.items:
                    self._calls(item.context_expr, file, fn, stack, cond, assumed)
                self._classify_with(stmt, occ)
                self._block(stmt.body, file, fn, stack, cond, assumed)
            elif isinstance(stmt, ast.Try):
                self._block(stmt.body, file, fn, stack, cond, assumed)
                for h in stmt.handlers:
                    self._block(h.body, file, fn, stack, True, assumed)
                self._block(stmt.orelse, file, fn, stack, cond, assumed)
                self._block(stmt.finalbody, file, fn, stack, cond, assumed)
            elif isinstance(stmt, ast.Match):
                for case in stmt.cases:
                    self._block(case.body, file, fn, stack, True, assumed)
            else:
                self._classify(stmt, occ)
                self._calls(stmt, file, fn, stack, cond, assumed)

    def _ran(
        self, body: list[ast.stmt], file: str = "", fn: FunctionInfo | None = None, depth: int = 0
    ) -> bool:
        """Does the log show a message printed inside `body` (or a function it calls)?"""
        if not self.log_text:
            return False
        for stmt in body:
            for n in astcache.walk(stmt):
                lead = _log_prefix(n)
                # only a message printed from this one place in the code is evidence
                if lead and self._prefix_count.get(lead) == 1 and lead in self.log_text:
                    return True
                if depth < 3 and isinstance(n, ast.Call):
                    callee = self.index.resolve_call(n, file, fn)
                    if callee is not None and self._ran(
                        callee.node.body, callee.file, callee, depth + 1
                    ):
                        return True
        return False

    def _calls(
        self,
        node: ast.AST,
        file: str,
        fn: FunctionInfo | None,
        stack: tuple[str, ...],
        cond: bool,
        assumed: tuple[str, ...],
    ) -> None:
        if len(stack) >= _MAX_DEPTH:
            return
        for call in self._calls_of(node):
            callees = [self.index.resolve_call(call, file, fn)]
            # functions handed over as arguments (`timed_eval("x", eval_fn, ...)`) run too
            for arg in [*call.args, *(k.value for k in call.keywords)]:
                if isinstance(arg, ast.Name):
                    ref = self.index.resolve_name(arg.id, file, fn)
                    if ref is not None and ref.name != "__init__":
                        callees.append(ref)
            for callee in callees:
                if callee is None or callee.qualname in stack:
                    continue
                self._block(
                    callee.node.body, callee.file, callee, (*stack, callee.qualname), cond, assumed
                )

    # ------------------------------------------------------------------ serialization

    def _path_text(self, e: ast.expr, fn: FunctionInfo | None) -> str:
        v = self.config.value_of(e, self._defs(fn))
        if isinstance(v, str):
            return v
        try:
            return astcache.unparse(e)
        except Exception:
            return ""

    def _is_artifact_path(self, e: ast.expr, fn: FunctionInfo | None) -> tuple[bool, bool]:
        text = self._path_text(e, fn)
        low = text.lower()
        if "log" in low and "model" not in low:
            return False, False
        art = bool(_ARTIFACT_PATH.search(low)) or (
            "model" in low and ("path" in low or "file" in low or "name" in low)
        )
        return art, art and bool(_COMPRESSED_PATH.search(low))

    def _classify_with(self, stmt: ast.With | ast.AsyncWith, occ: Occurrence) -> None:
        for item in stmt.items:
            c = item.context_expr
            if isinstance(c, ast.Call) and _dotted(c.func) in ("open", "io.open") and c.args:
                mode = _mode(c)
                art, comp = self._is_artifact_path(c.args[0], occ.func)
                if art and "w" in mode:
                    self.trace.artifact_writes.append(occ)
                    if comp or "b" in mode:
                        self.trace.compressed_writes.append(occ)
                elif art and "r" in mode:
                    self.trace.loads.append(occ)

    def _classify(self, stmt: ast.stmt, occ: Occurrence) -> None:
        for call in self._calls_of(stmt):
            name = _dotted(call.func)
            short = name.rsplit(".", 1)[-1]
            if short == "save" and len(call.args) >= 2 and name.startswith("torch"):
                art, comp = self._is_artifact_path(call.args[1], occ.func)
                if art:
                    self.trace.artifact_writes.append(occ)
                    if comp:
                        self.trace.compressed_writes.append(occ)
            elif short in ("write_bytes", "write_text") and isinstance(call.func, ast.Attribute):
                art, comp = self._is_artifact_path(call.func.value, occ.func)
                if art:
                    self.trace.artifact_writes.append(occ)
                    if comp or short == "write_bytes":
                        self.trace.compressed_writes.append(occ)
            elif name in ("open", "io.open") and call.args:
                mode = _mode(call)
                art, comp = self._is_artifact_path(call.args[0], occ.func)
                if art and "w" in mode:
                    self.trace.artifact_writes.append(occ)
                    if comp or "b" in mode:
                        self.trace.compressed_writes.append(occ)
                elif art and "r" in mode:
                    self.trace.loads.append(occ)
            elif short in ("load", "read_bytes") and (
                name.startswith("torch") or short == "read_bytes"
            ):
                target = call.args[0] if call.args else getattr(call.func, "value", None)
                if isinstance(target, ast.expr) and self._is_artifact_path(target, occ.func)[0]:
                    self.trace.loads.append(occ)

    def _find_points(self) -> None:
        t = self.trace
        if t.compressed_writes:
            t.serialize = t.compressed_writes[0]
        elif t.artifact_writes:
            t.serialize = t.artifact_writes[-1]
        if t.serialize is not None:
            later = [o for o in t.loads if o.seq > t.serialize.seq]
            t.load = later[0] if later else None
            for o in t.loads:
                if o.seq < t.serialize.seq:
                    span = self._branch_span(o)
                    if span is not None:
                        t.eval_spans.append(span)

    def _branch_span(self, load: Occurrence) -> tuple[int, int] | None:
        """Visits from an artifact load to the end of the `if` branch holding it."""
        cur: ast.AST | None = self.index.parent.get(id(load.stmt))
        while cur is not None and not isinstance(cur, ast.If):
            if isinstance(cur, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
                return None
            cur = self.index.parent.get(id(cur))
        if cur is None:
            return None
        branch = cur
        end = load.seq
        for o in self.trace.occurrences[load.seq :]:
            node: ast.AST | None = o.stmt
            while node is not None and node is not branch:
                node = self.index.parent.get(id(node))
            if node is branch:
                end = o.seq
            elif o.func is load.func:
                break
        return (load.seq, end)


def _log_prefix(n: ast.AST) -> str:
    """Literal start of a logged message (`log0(f"ttt:start lr={lr}")` -> "ttt:start lr=")."""
    if not isinstance(n, ast.Call) or not n.args:
        return ""
    name = _dotted(n.func).rsplit(".", 1)[-1].lower()
    if not (name.startswith("log") or name in ("print", "info", "write")):
        return ""
    lead = _literal_prefix(n.args[0]).strip()
    return lead if len(lead) >= 6 else ""


def _literal_prefix(e: ast.expr) -> str:
    if isinstance(e, ast.Constant) and isinstance(e.value, str):
        return e.value
    if isinstance(e, ast.JoinedStr) and e.values and isinstance(e.values[0], ast.Constant):
        return str(e.values[0].value)
    return ""


def _mode(call: ast.Call) -> str:
    mode: object = "r"
    if len(call.args) > 1 and isinstance(call.args[1], ast.Constant):
        mode = call.args[1].value
    for k in call.keywords:
        if k.arg == "mode" and isinstance(k.value, ast.Constant):
            mode = k.value.value
    return mode if isinstance(mode, str) else "r"


def _is_def(stmt: ast.stmt) -> bool:
    return isinstance(
        stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom
    )


__all__ = ["UNKNOWN", "Occurrence", "Trace", "Tracer"]

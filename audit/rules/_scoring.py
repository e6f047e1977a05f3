"""Shared analysis for the scoring rules (C1, C2, C4): what is the realized target, what is
the model's probability of it, and which functions the effective configuration runs.

Built once per audit and cached in `ctx.cache`. Three taints over the submission's code:

- TARGET: the realized next token (ids): the second argument of `cross_entropy`/`nll_loss`,
  the index of a `gather` over model outputs, the shifted slice `seq[1:]` next to `seq[:-1]`,
  and whatever flows from them.
- DIST: model distributions (`softmax`/`log_softmax` outputs).
- TLP: the model's (log-)probability of the realized token: loss outputs, gathers at the
  target, a DIST indexed by a TARGET value, and whatever flows from them.

Reachability: a function is judged only if some call of it (or a reference to it) sits under
guards that the effective configuration does not switch off; optional paths default off.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audit import astcache
from audit.pyast import Func, Program, Taint, base_name, call_name, tolerant_parse, walk_no_defs

if TYPE_CHECKING:
    from audit.context import AuditContext

_LOSS_CALLS = frozenset({"cross_entropy", "nll_loss", "binary_cross_entropy"})
_GATHER_CALLS = frozenset({"gather", "take_along_dim", "take_along_axis"})
_DIST_CALLS = frozenset({"softmax", "log_softmax", "logsumexp"})
# Conventional names of the realized target across the ecosystem (a weak, generic seed).
_TARGET_NAMES = frozenset(
    {
        "target",
        "targets",
        "tgt",
        "tgts",
        "target_ids",
        "tgt_ids",
        "target_id",
        "tgt_id",
        "next_token",
        "next_tokens",
        "labels",
    }
)


def _is_target_name(name: str) -> bool:
    low = name.lower()
    return (
        low in _TARGET_NAMES
        or low.startswith(("tgt_", "target_", "targets_"))
        or low.endswith(("_tgt", "_tgts", "_target", "_targets"))
    )


def _plus_one(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Constant) and node.value == 1:
        return True
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Add)
        and isinstance(node.right, ast.Constant)
        and node.right.value == 1
    )


def _shift_slice(node: ast.AST) -> bool:
    """`seq[1:]`, `seq[s + 1 : e + 1]`, `seq[:, 1:]`: the next-token view of a sequence."""
    if not isinstance(node, ast.Subscript):
        return False
    sl = node.slice
    parts = sl.elts if isinstance(sl, ast.Tuple) else [sl]
    last = parts[-1] if parts else None
    return (
        isinstance(last, ast.Slice)
        and _plus_one(last.lower)
        and (last.upper is None or _plus_one(last.upper))
    )


def _loss_target(call: ast.Call) -> ast.AST | None:
    if len(call.args) >= 2:
        return call.args[1]
    for k in call.keywords:
        if k.arg in ("target", "targets"):
            return k.value
    return None


def _gather_index(call: ast.Call) -> ast.AST | None:
    name = call_name(call)
    if name not in _GATHER_CALLS:
        return None
    for k in call.keywords:
        if k.arg in ("index", "indices"):
            return k.value
    if isinstance(call.func, ast.Attribute) and name == "gather" and len(call.args) == 2:
        return call.args[1]
    if len(call.args) >= 2 and name != "gather":
        return call.args[1]
    if len(call.args) == 3:
        return call.args[2]
    return None


def _collect_target_roots(program: Program) -> dict[int, set[str]]:
    """Per function, the names that data flow marks as realized targets."""
    roots: dict[int, set[str]] = {}
    for f in program.funcs:
        found: set[str] = set()
        for n in program.nodes_of_kinds(f, _CALL_OR_ASSIGN):
            if isinstance(n, ast.Call):
                name = call_name(n)
                tgt = _loss_target(n) if name in _LOSS_CALLS else _gather_index(n)
                if tgt is not None:
                    b = base_name(tgt)
                    if b:
                        found.add(b)
            elif isinstance(n, ast.Assign) and _shift_slice(n.value):
                for t in n.targets:
                    b = base_name(t)
                    if b:
                        found.add(b)
        roots[id(f.node)] = found
    return roots


def _index_key(node: ast.AST) -> str | None:
    try:
        return astcache.unparse(node)
    except Exception:
        return None


_CALL_OR_ASSIGN = frozenset({ast.Call, ast.Assign})
_SUBSCRIPT = frozenset({ast.Subscript})


def _context_reads(f: Func, program: Program) -> set[tuple[str, str]]:
    """(sequence, index) pairs read as context, `seq[j - k]`: `seq[j]` is then the token at
    the position being predicted."""
    context: set[tuple[str, str]] = set()
    for n in program.nodes_of_kinds(f, _SUBSCRIPT):
        if (
            isinstance(n, ast.Subscript)
            and isinstance(n.slice, ast.BinOp)
            and isinstance(n.slice.op, ast.Sub)
        ):
            base, idx = base_name(n.value), _index_key(n.slice.left)
            if base and idx:
                context.add((base, idx))
    return context


@dataclass
class ScoringModel:
    program: Program
    target: Taint
    dist: Taint
    tlp: Taint
    reach: Any  # _Reach
    sources: dict[str, str] = field(default_factory=dict)
    int_tables: frozenset[str] = frozenset()
    _reached: dict[int, bool] = field(default_factory=dict)
    repaired: frozenset[str] = frozenset()  # files parsed only after blanking bad lines
    active: frozenset[int] = frozenset()  # function nodes the taints were computed over

    phases: Any = None  # audit.phases.PhaseModel when available

    def reached(self, f: Func | None) -> bool:
        """Runs under the effective configuration, and not only before serialization."""
        if f is None or f.name == "<module>":
            return True
        key = id(f.node)
        hit = self._reached.get(key)
        if hit is None:
            hit = self._reached[key] = self._judge(f)
        return hit

    def _judge(self, f: Func) -> bool:
        own = bool(self.reach.reached(f))
        if own is False and self.reach.has_refs(f):
            # every call site sits under a guard the effective configuration switches off
            return False
        if self.phases is not None and f.file not in self.repaired:
            try:
                if self.phases.is_reached(f.node):
                    return self.phases.phase_of(f.node) != "train"
            except Exception:  # the phase model is best effort here
                pass
        # Not on the phase model's traced path (e.g. a method it could not resolve): fall
        # back to name-based call sites under config guards that are not switched off.
        return own

    def live(self, f: Func, node: ast.AST) -> bool:
        """`node` is not under a guard inside `f` that the effective configuration switches off."""
        try:
            return bool(self.reach._live(node, f))
        except Exception:
            return True

    def functions(self) -> Iterator[Func]:
        for f in self.program.funcs:
            if self.reached(f):
                yield f


def analyze(ctx: AuditContext) -> ScoringModel:
    cached = ctx.cache.get("audit-code-a.scoring")
    if cached is not None:
        return cached
    trees = {rel: src.tree for rel, src in ctx.sources.items() if src.tree is not None}
    repaired: set[str] = set()
    for rel, src in ctx.sources.items():
        if src.tree is None and src.text:
            tree = tolerant_parse(src.text)
            if tree is not None:
                trees[rel] = tree
                repaired.add(rel)
    logged = frozenset(
        m.name for log in ctx.logs for m in getattr(log, "metrics", []) if getattr(m, "name", None)
    ) | _log_heads(ctx)
    try:
        from audit import phases

        phase_model = phases.analyze(ctx)
    except Exception:  # without the phase model, fall back to local config reachability
        phase_model = None
    model = build(
        trees,
        ctx.config,
        {rel: src.text for rel, src in ctx.sources.items()},
        logged,
        phase_model=phase_model,
        repaired=frozenset(repaired),
    )
    ctx.cache["audit-code-a.scoring"] = model
    return model


def build(
    trees: dict[str, ast.Module],
    config: dict[str, str],
    sources: dict[str, str],
    logged_metrics: frozenset[str] = frozenset(),
    *,
    phase_model: Any = None,
    repaired: frozenset[str] = frozenset(),
) -> ScoringModel:
    program = Program(trees)
    shared = _shared_evaluator(phase_model, trees, config)
    reach = _Reach(program, trees, config, logged_metrics, shared)
    model = ScoringModel(program, None, None, None, reach, sources)  # type: ignore[arg-type]
    model.phases = phase_model
    model.repaired = repaired
    # Only code that runs after training can score tokens: the taints are computed over the
    # functions the configuration reaches there (and module level), which also keeps the
    # analysis cheap on large training scripts.
    active = {id(f.node) for f in program.funcs if f.name == "<module>" or model.reached(f)}
    roots = _collect_target_roots(program)

    context = {id(f.node): _context_reads(f, program) for f in program.funcs}

    def target_seed(expr: ast.AST, taint: Taint, f: Func) -> bool:
        if isinstance(expr, ast.Name):
            return expr.id in roots.get(id(f.node), ())
        if isinstance(expr, ast.Attribute):
            return base_name(expr) in roots.get(id(f.node), ())
        if isinstance(expr, ast.Subscript) and not isinstance(expr.slice, ast.BinOp | ast.Slice):
            ctx_reads = context.get(id(f.node))
            if ctx_reads and (base_name(expr.value), _index_key(expr.slice)) in ctx_reads:
                return True
        return _shift_slice(expr)

    target = Taint(
        program,
        target_seed,
        seed_names=_is_target_name,
        only=active,
        kinds=(ast.Name, ast.Attribute, ast.Subscript),
    )

    def dist_seed(expr: ast.AST, taint: Taint, f: Func) -> bool:
        return isinstance(expr, ast.Call) and call_name(expr) in _DIST_CALLS

    dist = Taint(program, dist_seed, only=active, kinds=(ast.Call,))

    def tlp_seed(expr: ast.AST, taint: Taint, f: Func) -> bool:
        if isinstance(expr, ast.Call):
            name = call_name(expr)
            if name in _LOSS_CALLS:
                return True
            idx = _gather_index(expr) if name in _GATHER_CALLS else None
            return idx is not None and target.is_tainted(idx, f)
        if isinstance(expr, ast.Subscript) and isinstance(expr.ctx, ast.Load):
            sl = expr.slice
            parts = sl.elts if isinstance(sl, ast.Tuple) else [sl]
            if any(not isinstance(p, ast.Slice) and target.is_tainted(p, f) for p in parts):
                return dist.is_tainted(expr.value, f)
        return False

    tlp = Taint(program, tlp_seed, only=active, kinds=(ast.Call, ast.Subscript))
    model.target, model.dist, model.tlp = target, dist, tlp
    model.int_tables = _int_tables(program)
    model.active = frozenset(active)
    return model


def _shared_evaluator(
    phase_model: Any, trees: dict[str, ast.Module], config: dict[str, str]
) -> Any:
    """The phase model's ConfigEvaluator when it was built over these very trees (no file
    repaired here) and configuration, so they are indexed once per audit; else None."""
    theirs = getattr(getattr(phase_model, "index", None), "trees", None)
    evaluator = getattr(phase_model, "config", None)
    if not isinstance(theirs, dict) or list(theirs) != list(trees):
        return None
    if any(theirs[k] is not v for k, v in trees.items()):
        return None
    if getattr(evaluator, "config", None) != {k.upper(): v for k, v in config.items()}:
        return None
    return evaluator


def _log_heads(ctx: AuditContext) -> frozenset[str]:
    """First words of the logs' output lines (after the embedded source): what actually ran."""
    from audit.folder import read_text

    heads: set[str] = set()
    by_path = {str(getattr(f, "path", "")): f for f in ctx.files.values()}
    for log in ctx.logs:
        f = by_path.get(str(getattr(log, "path", "")))
        if f is None:
            continue
        try:
            text, _ = read_text(f, limit=8 * 1024 * 1024)
        except OSError:
            continue
        skip = getattr(log, "source_end_line", None) or 0
        for i, line in enumerate(text.splitlines(), start=1):
            if i <= skip:
                continue
            head = _head(line)
            if head:
                heads.add(head)
    return frozenset(heads)


def _head(text: str) -> str | None:
    head = text.strip().split(" ", 1)[0].split(":", 1)[0].split("[", 1)[0].split("=", 1)[0]
    # identifiers with an underscore are specific enough to tie a line to its print call
    return head if "_" in head and head.replace("_", "").isalnum() and len(head) >= 5 else None


def _int_list(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and node.args:  # np.array([...]), torch.tensor([...])
        node = node.args[0]
    if not isinstance(node, ast.List | ast.Tuple) or not node.elts:
        return False
    vals = [e.value for e in node.elts if isinstance(e, ast.Constant)]
    return (
        len(vals) == len(node.elts)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in vals)
        and max(abs(v) for v in vals) >= 1000
    )


def _int_tables(program: Program) -> frozenset[str]:
    """Names bound to literal tables of large integers (hash multipliers such as primes)."""
    out: set[str] = set()
    for f in program.funcs:
        for n in walk_no_defs(f.node):
            if isinstance(n, ast.Assign) and _int_list(n.value):
                for t in n.targets:
                    if isinstance(t, ast.Name):
                        out.add(t.id)
                    elif isinstance(t, ast.Attribute):
                        out.add(t.attr)
    return frozenset(out)


_IMPLICIT_METHODS = frozenset({"forward", "__call__", "__init__", "__iter__", "__next__"})


class _Reach:
    """Which functions run under the effective configuration (optional paths default off)."""

    def __init__(
        self,
        program: Program,
        trees: dict[str, ast.Module],
        config: dict[str, str],
        logged_metrics: frozenset[str] = frozenset(),
        evaluator: Any = None,
    ) -> None:
        self.program = program
        self.logged = logged_metrics
        self.memo: dict[int, bool] = {}
        self._defs: dict[int, dict[str, ast.expr]] = {}  # per function node: _local_defs
        self.evaluator: Any = evaluator
        if evaluator is None:
            try:
                from audit.flow.config import ConfigEvaluator

                self.evaluator = ConfigEvaluator(trees, config)
            except Exception:  # the phase model is optional: without it every function counts
                self.evaluator = None
        self.parents = program.parent
        # name -> places where it is called or referenced, for the names `reached` and
        # `has_refs` look up (function names, and the class key of implicit methods)
        wanted = {f.name for f in program.funcs} | {
            f.qualname.split(".")[-2]
            for f in program.funcs
            if f.name in _IMPLICIT_METHODS and "." in f.qualname
        }
        self.refs: dict[str, list[tuple[ast.AST, Func]]] = {}
        load = ast.Load
        for f in program.funcs:
            for n in walk_no_defs(f.node):
                tp = type(n)
                if tp is ast.Name:
                    if n.id in wanted and type(n.ctx) is load:  # type: ignore[attr-defined]
                        self.refs.setdefault(n.id, []).append((n, f))  # type: ignore[attr-defined]
                elif tp is ast.Attribute and n.attr in wanted and type(n.ctx) is load:  # type: ignore[attr-defined]
                    self.refs.setdefault(n.attr, []).append((n, f))  # type: ignore[attr-defined]

    def _config_guard(self, test: ast.expr, local: dict[str, ast.expr]) -> bool | None:
        """Value of a guard when the configuration decides it (env vars, logged keys), else None."""
        try:
            res = self.evaluator.guard(test, local)
        except Exception:
            return None
        if not (res.assumed or res.used):
            return None  # a data-dependent guard: not ours to decide statically
        return res.value

    def _logs_metric(self, branch: Any) -> bool:
        if not self.logged or not branch:
            return False
        stmts = branch if isinstance(branch, list) else [branch]
        for stmt in stmts:
            for n in astcache.walk(stmt):
                if isinstance(n, ast.Call) and metric_prefix(n) in self.logged:
                    return True
        return False

    def has_refs(self, f: Func) -> bool:
        return any(caller is not f for _, caller in self.refs.get(f.name, []))

    def reached(self, f: Func | None, depth: int = 0) -> bool:
        if f is None or f.name == "<module>":
            return True
        key = id(f.node)
        if key in self.memo:
            return self.memo[key]
        if depth > 12:
            return True
        self.memo[key] = True  # cycles: optimistic
        result = False
        if f.name in _IMPLICIT_METHODS and "." in f.qualname:
            # nn.Module.forward / __call__ run when the class is instantiated and called
            cls = f.qualname.split(".")[-2]
            if any(
                self._live(ref, caller) and self.reached(caller, depth + 1)
                for ref, caller in self.refs.get(cls, [])
            ):
                self.memo[key] = True
                return True
        for ref, caller in self.refs.get(f.name, []):
            if caller is f:
                continue
            if self._live(ref, caller) and self.reached(caller, depth + 1):
                result = True
                break
        if f.parent is not None and f.parent.name != "<module>" and not result:
            result = False
        self.memo[key] = result
        return result

    def _live(self, node: ast.AST, caller: Func) -> bool:
        if self.evaluator is None:
            return True
        local = self._defs.get(id(caller.node))
        if local is None:
            local = self._defs[id(caller.node)] = _local_defs(caller)
        cur: ast.AST = node
        while True:
            parent = self.parents.get(id(cur))
            if parent is None or parent is caller.node:
                return True
            if isinstance(parent, ast.If | ast.IfExp | ast.While):
                if cur is not parent.test:
                    res = self._config_guard(parent.test, local)
                    in_body = _contains(parent.body, cur)
                    branch = parent.body if in_body else getattr(parent, "orelse", [])
                    # The logs are the strongest evidence: a metric this branch prints was
                    # logged, so the branch ran whatever the code defaults say.
                    if self._logs_metric(branch):
                        pass
                    elif (res is False and in_body) or (
                        res is True and not in_body and isinstance(parent, ast.If | ast.IfExp)
                    ):
                        return False
            elif isinstance(parent, ast.BoolOp) and isinstance(parent.op, ast.And):
                idx = parent.values.index(cur) if cur in parent.values else 0
                for prev in parent.values[:idx]:
                    if self._config_guard(prev, local) is False:
                        return False
            cur = parent


def metric_prefix(call: ast.Call) -> str | None:
    """`log(f"ngram_eval_exact val_loss:{x}")` -> "ngram_eval_exact"."""
    if not call.args:
        return None
    arg = call.args[0]
    text = None
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        text = arg.value
    elif isinstance(arg, ast.JoinedStr) and arg.values:
        first = arg.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            text = first.value
    if not text:
        return None
    return _head(text)


def _contains(body: Any, node: ast.AST) -> bool:
    if isinstance(body, list):
        return any(b is node for b in body)
    return body is node


def _local_defs(f: Func) -> dict[str, ast.expr]:
    out: dict[str, ast.expr] = {}
    counts: dict[str, int] = {}
    for n in walk_no_defs(f.node):
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            name = n.targets[0].id
            counts[name] = counts.get(name, 0) + 1
            out[name] = n.value
    return {k: v for k, v in out.items() if counts[k] == 1}

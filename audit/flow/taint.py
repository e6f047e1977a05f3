"""Data-flow taint of the submission's code: which values derive from a data source.

A source is a string naming shards of one split (`fineweb_val_*.bin`, the byte sidecars
`fineweb_val_bytes_*`; or `fineweb_train_*`). Taint follows assignments, attributes (an
attribute assigned a tainted value in a constructor or class body is tainted wherever it is
read), subscripts, iteration, `with ... as`, container mutation (`xs.append(t)`), call
arguments into the submission's own functions (analysed per context: which parameters and
whether `self` carry taint), their return values, and unknown library calls (a result is
tainted when an argument or the receiver is). Shapes and lengths (`len`, `.numel()`,
`.shape`) are not data and do not carry taint.

Analysis is flow-insensitive within a function (a fixed point over its assignments) and
context-sensitive across functions, with summaries cached per (function, tainted params).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audit import astcache
from audit.flow.index import FunctionInfo, ProgramIndex
from audit.flow.leaves import SCALAR_FUNCS as _SCALAR_FUNCS
from audit.flow.leaves import SHAPE_ATTRS as _SHAPE_ATTRS
from audit.flow.leaves import SHAPE_METHODS as _SHAPE_METHODS
from audit.flow.leaves import Leaf, Leaves

VAL_SOURCE = re.compile(
    r"fineweb_val|(?:^|[_/*.-])val_\*|_val_\d|(?:^|/)val[_/.]?\*?\.bin|_val\.bin"
    # a split named by itself, as in load_split(path, "val")
    r"|^(?:val|validation)$"
)
TRAIN_SOURCE = re.compile(r"fineweb_train|(?:^|[_/*.-])train_\*|_train_\d|_train\.bin")

# Methods that write their arguments into the object they are called on (a table filled at
# val-derived positions, or with val-derived values, holds val data).
_MUTATORS = frozenset(
    {
        "append",
        "extend",
        "copy_",
        "add_",
        "update",
        "insert",
        "put_",
        "index_copy_",
        "set_",
        "index_put_",
        "index_add_",
        "index_fill_",
        "scatter_",
        "scatter_add_",
        "scatter_reduce_",
        "masked_fill_",
        "masked_scatter_",
    }
)
_PATH_FUNCS = frozenset(
    {
        "join",
        "glob",
        "iglob",
        "rglob",
        "sorted",
        "list",
        "tuple",
        "Path",
        "str",
        "format",
        "replace",
        "expanduser",
        "resolve",
        "abspath",
        "realpath",
        "fspath",
        "PurePath",
    }
)
_FLOW_NODES = (
    ast.Assign,
    ast.AnnAssign,
    ast.AugAssign,
    ast.NamedExpr,
    ast.For,
    ast.AsyncFor,
    ast.withitem,
    ast.Call,
)
_FLOW_TYPES = frozenset(_FLOW_NODES)
_RETURN_TYPES = frozenset({ast.Return, ast.Yield, ast.YieldFrom})
_MAX_DEPTH = 14
_MAX_CONTEXTS = 4000


class TaintEnv(set):  # type: ignore[type-arg]
    """Tainted names of one scope, with the places they were bound.

    Membership (`name in env`) is flow-insensitive; `sites` lets a use see only bindings
    that come before it in the source or share a loop with it, so a name re-bound to val
    data after the artifact is written does not taint its earlier training uses.
    """

    def __init__(self, names: object = ()) -> None:
        super().__init__()
        self.sites: dict[str, list[ast.AST | None]] = {}
        self.cur: ast.AST | None = None  # node whose bindings are being recorded
        self.version = 0
        for n in names:  # type: ignore[attr-defined]
            self.add(n)

    def add(self, name: str) -> None:  # type: ignore[override]
        lst = self.sites.setdefault(name, [])
        site = self.cur
        if not any(x is site for x in lst):
            lst.append(site)
            self.version += 1
        super().add(name)

    def merge(self, other: TaintEnv) -> None:
        for name, sites in other.sites.items():
            lst = self.sites.setdefault(name, [])
            for site in sites:
                if not any(x is site for x in lst):
                    lst.append(site)
                    self.version += 1
            super().add(name)

    def copy(self) -> TaintEnv:  # type: ignore[override]
        out = TaintEnv()
        out.merge(self)
        out.cur = self.cur
        return out


@dataclass
class FuncTaint:
    """Result of analysing one function under one context."""

    names: set[str]
    returns: bool
    self_tainted: bool


@dataclass
class TaintedCall:
    """A call into a submission function that passes tainted data (context edge)."""

    caller: FunctionInfo | None
    call: ast.Call
    callee: FunctionInfo


@dataclass
class TaintState:
    """Everything learnt for one source: tainted names per function, edges, global attrs."""

    global_attrs: set[str] = field(default_factory=set)
    global_names: dict[str, TaintEnv] = field(default_factory=dict)  # file -> names
    names_by_func: dict[str, TaintEnv] = field(default_factory=dict)  # qualname -> union
    self_by_func: dict[str, bool] = field(default_factory=dict)
    tainted_calls: list[TaintedCall] = field(default_factory=list)
    analysed: dict[str, list[frozenset[str]]] = field(default_factory=dict)


_BODY = "_pgolf_body_nodes"


def _body_nodes(fn: ast.AST) -> list[ast.AST]:
    """Nodes of a function body, not descending into nested defs or classes (listed once per
    node, kept on it like audit.astcache; a fresh list is returned)."""
    hit = fn.__dict__.get(_BODY)
    if hit is None:
        hit = _list_body_nodes(fn)
        setattr(fn, _BODY, hit)
    return list(hit)


def _list_body_nodes(fn: ast.AST) -> tuple[ast.AST, ...]:
    out: list[ast.AST] = []
    skip = _DEF_TYPES
    stack: list[ast.AST] = [s for s in getattr(fn, "body", []) if type(s) not in skip]
    children, key = astcache.children, astcache.CHILDREN
    while stack:
        n = stack.pop()
        out.append(n)
        kids = n.__dict__.get(key)  # children(n), without a call when listed
        if kids is None:
            kids = children(n)
        for c in kids:
            if type(c) not in skip:
                stack.append(c)
    return tuple(out)


# none of them has subclasses: a type test is isinstance
_DEF_TYPES = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef})


def _assigns_attributes(flow: list[ast.AST]) -> bool:
    for n in flow:
        if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            if any(isinstance(t, ast.Attribute) for t in targets):
                return True
    return False


def _may_bind(n: ast.AST) -> bool:
    """False for the flow nodes on which `TaintAnalysis._flow` does nothing (keep in step)."""
    if isinstance(n, ast.Call):
        f = n.func
        short = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        saved = short in ("save", "dump") and len(n.args) >= 2
        return saved or (isinstance(f, ast.Attribute) and f.attr in _MUTATORS)
    if isinstance(n, ast.withitem):
        return n.optional_vars is not None
    return True


def _flow_exprs(n: ast.AST) -> list[ast.AST | None]:
    """The expressions `TaintAnalysis._flow` evaluates at a flow node (keep in step)."""
    if isinstance(n, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = n.targets if isinstance(n, ast.Assign) else [n.target]
        return [n.value, *(t.slice for t in targets if isinstance(t, ast.Subscript))]
    if isinstance(n, ast.NamedExpr):
        return [n.value]
    if isinstance(n, ast.For | ast.AsyncFor):
        return [n.iter]
    if isinstance(n, ast.withitem):
        return [n.context_expr] if n.optional_vars is not None else []
    if isinstance(n, ast.Call):
        f = n.func
        short = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        out: list[ast.AST | None] = []
        if short in ("save", "dump") and len(n.args) >= 2:
            out.append(n.args[0])
        if isinstance(f, ast.Attribute) and f.attr in _MUTATORS:
            out += [*n.args, *(k.value for k in n.keywords)]
        return out
    return []


def _base_name(t: ast.expr) -> str | None:
    while isinstance(t, ast.Subscript | ast.Attribute | ast.Starred):
        t = t.value
    return t.id if isinstance(t, ast.Name) else None


def _resolver(
    index: ProgramIndex, resolved: dict[int, FunctionInfo | None]
) -> Callable[[ast.Call, FunctionInfo | None, str], FunctionInfo | None]:
    """Call resolution memoised per call node (shared by the analyses of one program)."""

    def resolve(e: ast.Call, fn: FunctionInfo | None, file: str) -> FunctionInfo | None:
        key = id(e)
        if key not in resolved:
            resolved[key] = index.resolve_call(e, file, fn)
        return resolved[key]

    return resolve


class TaintAnalysis:
    """Taint for one source pattern over a ProgramIndex."""

    def __init__(
        self,
        index: ProgramIndex,
        source: re.Pattern[str],
        *,
        paths_only: bool = False,
        eager: bool = True,
        attrs: set[str] | None = None,
    ) -> None:
        self.index = index
        self.source = source
        # paths_only: library calls carry taint only when they build paths or file lists
        # (train data *read* at eval, not values merely derived from training data)
        self.paths_only = paths_only
        self.state = TaintState()
        # attributes whose configured value names the source (TRAIN_FILES=.../fineweb_val_*)
        self.state.global_attrs.update(attrs or ())
        self._cache: dict[tuple[str, frozenset[str], bool], FuncTaint] = {}
        self._active: set[tuple[str, frozenset[str], bool]] = set()
        self._depth = 0
        self._edges_seen: set[tuple[int, str]] = set()
        # shared by every analysis of the same program (val, train)
        self._parts_cache: dict[int, Any] = index.memo.setdefault("taint_parts", {})
        self._resolved: dict[int, FunctionInfo | None] = index.memo.setdefault("resolved", {})
        self._loop_cache: dict[int, set[int]] = index.memo.setdefault("loops", {})
        self._callee = _resolver(index, self._resolved)
        self._leaves: Leaves = index.memo.setdefault("leaves", Leaves())
        self._leaf_memo = self._leaves.memo  # read directly on the hot path of `expr`
        self._is_source: dict[str, bool] = {}
        self._log: list[tuple[str, frozenset[str]]] | None = None  # analyses of a writers' pass
        self._class_assigns = [
            stmt
            for classes in index.classes.values()
            for ci in classes
            for stmt in ci.node.body
            if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None
        ]
        self.run(eager)

    # ------------------------------------------------------------------ driver

    def run(self, eager: bool = True) -> None:
        """Global facts first (module and class scopes, functions that assign attributes), to
        a fixed point; then, if eager, every function under the empty context so that every
        call passing tainted data is explored (needed for `callers_with_taint`)."""
        funcs = list(self.index.iter_functions())
        writers = [fn for fn in funcs if _assigns_attributes(self._parts(fn.node)[0])]
        # The writers' pass is a function of the global facts it starts from (its cache starts
        # empty). When the last one neither changed them nor saw them change since, running it
        # again would redo the very same analyses: its results are restored instead.
        last: tuple[tuple[int, ...], dict[Any, FuncTaint], list[tuple[str, frozenset[str]]]] | None
        last = None
        for _ in range(4):
            before = self._snapshot()
            for file, tree in self.index.trees.items():
                self._scope_pass(file, tree)
            self._cache.clear()
            facts = self._facts()
            if last is not None and last[0] == facts:
                self._cache.update(last[1])
                for qualname, tparams in last[2]:
                    self.state.analysed.setdefault(qualname, []).append(tparams)
            else:
                self._log = []
                for fn in writers:
                    self.analyse(fn, frozenset(), False)
                log, self._log = self._log, None
                last = (facts, dict(self._cache), log) if self._facts() == facts else None
            if self._snapshot() == before:
                break
        if not eager:
            return
        for _ in range(2):
            before = self._snapshot()
            for fn in funcs:
                self.analyse(fn, frozenset(), False)
            if self._snapshot() == before:
                break
            self._cache.clear()

    def _facts(self) -> tuple[int, ...]:
        """Changes whenever a global fact is learnt: the sets only grow, and every name or
        binding site added to a global scope bumps its version."""
        envs = self.state.global_names.values()
        return (len(self.state.global_attrs), len(envs), sum(env.version for env in envs))

    def _snapshot(self) -> tuple[int, int]:
        return (
            len(self.state.global_attrs),
            sum(map(len, self.state.global_names.values())),
        )

    def _scope_pass(self, file: str, tree: ast.Module) -> None:
        names = self.state.global_names.setdefault(file, TaintEnv())
        for stmt in self._class_assigns:
            if self.index.node_file.get(id(stmt)) != file:
                continue
            if self.expr(stmt.value, names, None, file):  # type: ignore[attr-defined]
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]  # type: ignore[attr-defined]
                for t in targets:
                    if isinstance(t, ast.Name):
                        self.state.global_attrs.add(t.id)
        flow, calls, _ = self._parts(tree)
        for stmt in flow:
            names.cur = stmt
            if (
                isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign)
                and stmt.value is not None
            ):
                if self.expr(stmt.value, names, None, file):
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                    for t in targets:
                        self._bind(t, names, None, top=True)
            elif isinstance(stmt, ast.For) and self.expr(stmt.iter, names, None, file):
                self._bind(stmt.target, names, None, top=True)
        names.cur = None
        for call in self._effect_calls(tree, calls, None, file):
            self.expr(call, names, None, file)

    # ------------------------------------------------------------------ functions

    def analyse(self, fn: FunctionInfo, tparams: frozenset[str], self_t: bool) -> FuncTaint:
        key = (fn.qualname, tparams, self_t)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if key in self._active or self._depth > _MAX_DEPTH or len(self._cache) > _MAX_CONTEXTS:
            return FuncTaint(set(tparams), False, self_t)
        self._active.add(key)
        self._depth += 1
        try:
            res = self._analyse(fn, tparams, self_t)
        finally:
            self._depth -= 1
            self._active.discard(key)
        self._cache[key] = res
        self.state.names_by_func.setdefault(fn.qualname, TaintEnv()).merge(res.names)
        if self_t:
            self.state.self_by_func[fn.qualname] = True
        self.state.analysed.setdefault(fn.qualname, []).append(tparams)
        if self._log is not None:
            self._log.append((fn.qualname, tparams))
        return res

    def _analyse(self, fn: FunctionInfo, tparams: frozenset[str], self_t: bool) -> FuncTaint:
        names = TaintEnv(tparams)  # parameters: bound before every use
        if self_t and fn.params:
            names.add(fn.params[0])
        for p in self._tainted_defaults(fn):
            names.add(p)
        _, calls, rets = self._parts(fn.node)
        flow = self._gated_flow(fn)
        file = fn.file
        # the analysis adds to these in place (never replaces them, never adds a file's
        # global scope while a function is analysed)
        globals_ = self.state.global_names.get(file, ())
        attrs = self.state.global_attrs
        for _ in range(8):
            v0 = names.version
            for node, gate in flow:
                if (
                    not gate.calls
                    and not (gate.strs and self._names_source(gate.strs))
                    and gate.names.isdisjoint(names)
                    and gate.names.isdisjoint(globals_)
                    and gate.attrs.isdisjoint(attrs)
                ):
                    continue  # every expression `_flow` would evaluate is untainted
                names.cur = node
                self._flow(node, names, fn, file, self_t, tparams)
            names.cur = None
            if names.version == v0:
                break
        # final pass: explore calls (records tainted edges and callee contexts)
        for node in self._effect_calls(fn.node, calls, fn, file):
            self.expr(node, names, fn, file)
        returns = any(self.expr(n.value, names, fn, file) for n in rets)
        return FuncTaint(names, returns, self_t)

    def _tainted_defaults(self, fn: FunctionInfo) -> set[str]:
        """Parameters whose default value is source data (`pattern="fineweb_val_*.bin"`)."""
        a = fn.node.args
        positional = a.posonlyargs + a.args
        pairs = list(zip(positional[len(positional) - len(a.defaults) :], a.defaults))
        pairs += [(p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
        return {p.arg for p, d in pairs if self.expr(d, set(), None, fn.file)}

    def _effect_calls(
        self, node: ast.AST, calls: list[ast.Call], fn: FunctionInfo | None, file: str
    ) -> list[ast.Call]:
        """The calls of a body whose evaluation reaches a call into the submission: only those
        have effects (callee contexts analysed, tainted edges recorded); the value of the
        others is not used. Cached per node, shared by the analyses of one program."""
        memo: dict[int, list[ast.Call]] = self.index.memo.setdefault("taint_effect_calls", {})
        hit = memo.get(id(node))
        if hit is None:
            leaves, resolve = self._leaves, self._callee
            hit = memo[id(node)] = [c for c in calls if leaves.of(c, fn, file, resolve).calls]
        return hit

    def _binding_flow(self, node: ast.AST) -> list[ast.AST]:
        """The flow nodes `_flow` can bind names at: without the calls that are neither a
        save/dump nor a mutator, and `with` items without `as` (on those `_flow` does
        nothing). Cached per node, shared by the analyses of one program."""
        memo: dict[int, list[ast.AST]] = self.index.memo.setdefault("taint_binding_flow", {})
        hit = memo.get(id(node))
        if hit is None:
            hit = memo[id(node)] = [n for n in self._parts(node)[0] if _may_bind(n)]
        return hit

    def _gated_flow(self, fn: FunctionInfo) -> list[tuple[ast.AST, Leaf]]:
        """`_binding_flow(fn.node)`, each node with the union of the leaves of the
        expressions `_flow` evaluates at it (keep in step with `_flow`): when that union is
        quiet, each of them is untainted and `_flow` does nothing there. Cached per function,
        shared by the analyses of one program."""
        memo: dict[int, list[tuple[ast.AST, Leaf]]] = self.index.memo.setdefault(
            "taint_gated_flow", {}
        )
        hit = memo.get(id(fn.node))
        if hit is None:
            leaves, resolve, file = self._leaves, self._callee, fn.file
            hit = memo[id(fn.node)] = [
                (n, leaves.union(_flow_exprs(n), fn, file, resolve))
                for n in self._binding_flow(fn.node)
            ]
        return hit

    def _parts(self, node: ast.AST) -> tuple[list[ast.AST], list[ast.Call], list[ast.AST]]:
        """Nodes of a body that move taint, its calls, and its returns (cached per node)."""
        return self.parts(node)[:3]  # type: ignore[return-value]

    def parts(
        self, node: ast.AST
    ) -> tuple[list[ast.AST], list[ast.Call], list[ast.AST], list[ast.BinOp]]:
        """`_parts` plus the body's `@` products (for Gram-matrix detection)."""
        hit = self._parts_cache.get(id(node))
        if hit is None:
            flow: list[ast.AST] = []
            calls: list[ast.Call] = []
            rets: list[ast.AST] = []
            mats: list[ast.BinOp] = []
            # one pass, each list in body order (none of these node types has subclasses)
            for n in _body_nodes(node):
                tp = type(n)
                if tp in _FLOW_TYPES:
                    flow.append(n)
                    if tp is ast.Call:
                        calls.append(n)  # type: ignore[arg-type]
                elif tp in _RETURN_TYPES:
                    if n.value is not None:  # type: ignore[attr-defined]
                        rets.append(n)
                elif tp is ast.BinOp and type(n.op) is ast.MatMult:  # type: ignore[attr-defined]
                    mats.append(n)  # type: ignore[arg-type]
            hit = (flow, calls, rets, mats)
            self._parts_cache[id(node)] = hit
        return hit

    def _flow(
        self,
        node: ast.AST,
        names: set[str],
        fn: FunctionInfo,
        file: str,
        self_t: bool,
        tparams: frozenset[str],
    ) -> None:
        empty_ctx = not tparams and not self_t
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
            value = node.value
            targets = (
                node.targets if isinstance(node, ast.Assign) else [node.target]  # type: ignore[list-item]
            )
            if value is None or not self.expr(value, names, fn, file):
                # `table[val_tokens] += 1`: written at val-derived positions, the table
                # holds val data whatever the value written
                for t in targets:
                    if isinstance(t, ast.Subscript) and self.expr(t.slice, names, fn, file):
                        base = _base_name(t)
                        if base and base != "self":
                            names.add(base)
                return
            for t in targets:
                if (
                    isinstance(t, ast.Tuple | ast.List)
                    and isinstance(value, ast.Tuple | ast.List)
                    and len(t.elts) == len(value.elts)
                ):
                    for te, ve in zip(t.elts, value.elts):
                        if self.expr(ve, names, fn, file):
                            self._bind(te, names, fn, top=empty_ctx)
                    continue
                self._bind(t, names, fn, top=empty_ctx)
        elif isinstance(node, ast.For | ast.AsyncFor):
            if self.expr(node.iter, names, fn, file):
                self._bind(node.target, names, fn, top=False)
        elif isinstance(node, ast.withitem):
            if node.optional_vars is not None and self.expr(node.context_expr, names, fn, file):
                self._bind(node.optional_vars, names, fn, top=False)
        elif isinstance(node, ast.Call):
            f = node.func
            short = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            # torch.save(obj, buf) / pickle.dump(obj, fh): the buffer now holds obj
            saved = short in ("save", "dump") and len(node.args) >= 2
            if saved and self.expr(node.args[0], names, fn, file):
                base = _base_name(node.args[1])
                if base:
                    names.add(base)
            if isinstance(f, ast.Attribute) and f.attr in _MUTATORS:
                args = list(node.args) + [k.value for k in node.keywords]
                if any(self.expr(a, names, fn, file) for a in args):
                    base = _base_name(f.value)
                    if base:
                        names.add(base)
                    if (
                        empty_ctx
                        and isinstance(f.value, ast.Attribute)
                        and _base_name(f.value) in ("self",)
                    ):
                        self.state.global_attrs.add(f.value.attr)

    def _bind(self, t: ast.expr, names: set[str], fn: FunctionInfo | None, top: bool) -> None:
        if isinstance(t, ast.Name):
            names.add(t.id)
        elif isinstance(t, ast.Tuple | ast.List):
            for e in t.elts:
                self._bind(e, names, fn, top)
        elif isinstance(t, ast.Starred):
            self._bind(t.value, names, fn, top)
        elif isinstance(t, ast.Attribute):
            base = _base_name(t)
            if base == "self":
                # `self.x = tainted` taints x for every instance only when the value is
                # tainted on its own (empty context), not via a tainted constructor argument
                if top:
                    self.state.global_attrs.add(t.attr)
            else:
                self.state.global_attrs.add(t.attr)
                if base:
                    names.add(base)
        elif isinstance(t, ast.Subscript):
            base = _base_name(t)
            if base and base != "self":
                names.add(base)

    # ------------------------------------------------------------------ expressions

    def expr(self, e: ast.AST | None, names: set[str], fn: FunctionInfo | None, file: str) -> bool:
        if e is None:
            return False
        tp = type(e)
        if tp is ast.Constant:
            value = e.value  # type: ignore[attr-defined]
            return isinstance(value, str) and self._names_source((value,))
        if tp is ast.Name:
            if e.id in names and self._visible(names, e.id, e):  # type: ignore[attr-defined]
                return True
            return fn is not None and e.id in self.state.global_names.get(file, ())  # type: ignore[attr-defined]
        hit = self._leaf_memo.get(id(e))
        leaf = hit[1] if hit is not None else self._leaves.of(e, fn, file, self._callee)
        if not leaf.calls and not (leaf.strs and self._names_source(leaf.strs)):
            # Leaf.quiet, inlined (the hottest test of the analysis)
            read = leaf.names
            if (
                read.isdisjoint(names)
                and (fn is None or read.isdisjoint(self.state.global_names.get(file, ())))
                and leaf.attrs.isdisjoint(self.state.global_attrs)
            ):
                return False  # no call, no source string, no tainted name or attribute
        if isinstance(e, ast.Attribute):
            if e.attr in _SHAPE_ATTRS:
                return False
            return e.attr in self.state.global_attrs or self.expr(e.value, names, fn, file)
        if isinstance(e, ast.Subscript):
            return self.expr(e.value, names, fn, file)
        if isinstance(e, ast.Call):
            return self._call(e, names, fn, file)
        if isinstance(e, ast.JoinedStr):
            return any(self.expr(v, names, fn, file) for v in e.values)
        if isinstance(e, ast.FormattedValue):
            return self.expr(e.value, names, fn, file)
        if isinstance(e, ast.Lambda):  # a closure over val data carries it (minimize(fun=...))
            return self.expr(e.body, names, fn, file)
        if isinstance(e, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            inner = names.copy() if isinstance(names, TaintEnv) else set(names)
            for g in e.generators:
                if self.expr(g.iter, inner, fn, file):
                    self._bind(g.target, inner, fn, top=False)
            parts = [e.key, e.value] if isinstance(e, ast.DictComp) else [e.elt]
            return any(self.expr(p, inner, fn, file) for p in parts)
        if isinstance(e, ast.Dict):
            return any(self.expr(v, names, fn, file) for v in e.values if v is not None)
        if isinstance(e, ast.Compare):
            return self.expr(e.left, names, fn, file) or any(
                self.expr(c, names, fn, file) for c in e.comparators
            )
        if isinstance(e, ast.IfExp):  # the value is chosen by the test: it carries its taint
            return any(self.expr(x, names, fn, file) for x in (e.test, e.body, e.orelse))
        if isinstance(e, ast.BinOp):
            return self.expr(e.left, names, fn, file) or self.expr(e.right, names, fn, file)
        if isinstance(e, ast.UnaryOp | ast.Starred | ast.Await | ast.NamedExpr):
            return self.expr(e.operand if isinstance(e, ast.UnaryOp) else e.value, names, fn, file)
        if isinstance(e, ast.Tuple | ast.List | ast.Set):
            return any(self.expr(x, names, fn, file) for x in e.elts)
        if isinstance(e, ast.BoolOp):
            return any(self.expr(x, names, fn, file) for x in e.values)
        if isinstance(e, ast.expr):
            return any(
                self.expr(c, names, fn, file)
                for c in astcache.children(e)
                if isinstance(c, ast.expr)
            )
        return False

    def _names_source(self, strs: frozenset[str]) -> bool:
        memo = self._is_source
        for text in strs:
            hit = memo.get(text)
            if hit is None:
                hit = memo[text] = bool(self.source.search(text))
            if hit:
                return True
        return False

    def _call(self, e: ast.Call, names: set[str], fn: FunctionInfo | None, file: str) -> bool:
        f = e.func
        if isinstance(f, ast.Name) and f.id in _SCALAR_FUNCS:
            return False
        if isinstance(f, ast.Attribute) and f.attr in _SHAPE_METHODS:
            return False
        pos = [self.expr(a, names, fn, file) for a in e.args]
        kws = {k.arg: self.expr(k.value, names, fn, file) for k in e.keywords}
        recv = isinstance(f, ast.Attribute) and self.expr(f.value, names, fn, file)
        callee = self._callee(e, fn, file)
        any_arg = any(pos) or any(kws.values())
        if callee is None:
            if self.paths_only:
                short = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                return short in _PATH_FUNCS and (any_arg or bool(recv))
            return any_arg or bool(recv)
        params = callee.params
        offset = 0
        is_ctor = callee.name == "__init__" and isinstance(f, ast.Name)
        self_t = False
        if callee.is_method:
            offset = 1
            if is_ctor:
                self_t = any_arg
            elif isinstance(f, ast.Attribute):
                self_t = bool(recv)
        tp: set[str] = set()
        for i, flag in enumerate(pos):
            if flag and i + offset < len(params):
                tp.add(params[i + offset])
            elif flag and params and callee.node.args.vararg:
                tp.add(callee.node.args.vararg.arg)
        for k, flag in kws.items():
            if flag and k is not None and k in params:
                tp.add(k)
            elif flag and k is None:
                tp.update(params[offset:])
        carries = tp or self_t or self._reads_tainted_attr(callee, e)
        if carries:
            key = (id(e), callee.qualname)
            if key not in self._edges_seen:
                self._edges_seen.add(key)
                self.state.tainted_calls.append(TaintedCall(fn, e, callee))
        res = self.analyse(callee, frozenset(tp), self_t)
        if is_ctor:
            return self_t
        return res.returns

    # ------------------------------------------------------------------ queries

    def tainted_in(self, e: ast.AST, fn: FunctionInfo | None, file: str) -> bool:
        """Is `e` tainted in any context its function was analysed in?"""
        if fn is None:
            names = self.state.global_names.get(file, TaintEnv()).copy()
        else:
            if fn.qualname not in self.state.names_by_func:
                self.analyse(fn, frozenset(), False)  # lazy analyses (eager=False)
            names = self.state.names_by_func.get(fn.qualname, TaintEnv()).copy()
            names.cur = None
            if self.state.self_by_func.get(fn.qualname) and fn.params:
                names.add(fn.params[0])
        return self.expr(e, names, fn, file)

    def _reads_tainted_attr(self, callee: FunctionInfo, call: ast.Call) -> bool:
        """An object argument whose tainted attribute the callee reads (`val_data` handed
        on, `val_data.val_tokens` read inside): the call carries source data too."""
        if not self.state.global_attrs or not (call.args or call.keywords):
            return False
        key = f"param_attrs:{callee.qualname}"
        reads = self.index.memo.get(key)
        if reads is None:
            params = set(callee.params)
            reads = set()
            for n in astcache.walk(callee.node):
                if (
                    isinstance(n, ast.Attribute)
                    and isinstance(n.value, ast.Name)
                    and n.value.id in params
                    and n.value.id not in ("self", "cls")
                ):
                    reads.add(n.attr)
            self.index.memo[key] = reads
        return bool(reads & self.state.global_attrs)

    def _visible(self, names: set[str], name: str, use: ast.AST) -> bool:
        """A binding of `name` reaches `use`: it comes first in the source, or a loop holds
        both (loop-carried), or it is a parameter."""
        sites = names.sites.get(name) if isinstance(names, TaintEnv) else None
        if not sites:
            return True
        upos = (getattr(use, "lineno", 0), getattr(use, "col_offset", 0))
        if upos == (0, 0):
            return True
        loops: set[int] | None = None
        for site in sites:
            if site is None:
                return True
            if (getattr(site, "lineno", 0), getattr(site, "col_offset", 0)) <= upos:
                return True
        for site in sites:
            if loops is None:
                loops = self._loops_of(use)
            if loops & self._loops_of(site):  # type: ignore[arg-type]
                return True
        return False

    def _loops_of(self, node: ast.AST) -> set[int]:
        key = id(node)
        hit = self._loop_cache.get(key)
        if hit is None:
            hit = set()
            cur = self.index.parent.get(id(node))
            while cur is not None and not isinstance(
                cur, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module
            ):
                if isinstance(cur, ast.For | ast.AsyncFor | ast.While | ast.comprehension):
                    hit.add(id(cur))
                cur = self.index.parent.get(id(cur))
            self._loop_cache[key] = hit
        return hit

    def callers_with_taint(self, fn: FunctionInfo) -> list[TaintedCall]:
        return [c for c in self.state.tainted_calls if c.callee.qualname == fn.qualname]

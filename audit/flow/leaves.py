"""What an expression's val/train taint can come from: a necessary condition, cached per node.

`TaintAnalysis.expr` re-evaluates the same expressions many times (every pass of a function's
fixed point, every calling context, every round of the global passes), and nearly all of them
stay untainted. `Leaves.of(e)` lists, once per node, the names and attributes the evaluation
of `e` reads, following exactly the children `expr` visits. `expr` can only be true when one
of them is tainted, so when none is the answer is False without walking the expression.

An expression that calls one of the submission's own functions always takes the full path:
its value depends on more than its leaves (the callee's return summary) and its evaluation
has effects (the callee is analysed). One whose string constants name the analysis' source
does too. Leaves are the same for every source, so the val and train analyses share them.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from typing import Any

from audit import astcache

SHAPE_ATTRS = frozenset({"shape", "dtype", "device", "ndim", "is_cuda", "requires_grad"})
SHAPE_METHODS = frozenset({"numel", "size", "dim", "nelement", "__len__", "element_size"})
SCALAR_FUNCS = frozenset(
    {"len", "isinstance", "print", "log", "log0", "logger", "hasattr", "type", "id", "callable"}
)
_COMPREHENSIONS = ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
_EMPTY: frozenset[str] = frozenset()


class Leaf:
    """Names, attribute names and string constants read by an expression (the places taint
    can enter it), and whether it calls a function of the submission."""

    __slots__ = ("attrs", "calls", "names", "strs")

    def __init__(
        self, names: frozenset[str], attrs: frozenset[str], strs: frozenset[str], calls: bool
    ) -> None:
        self.names = names
        self.attrs = attrs
        self.strs = strs
        self.calls = calls

    def quiet(self, env: set[str], globals_: Iterable[str] | None, attrs: set[str]) -> bool:
        """True when no name or attribute it reads is tainted."""
        return (
            self.names.isdisjoint(env)
            and (globals_ is None or self.names.isdisjoint(globals_))
            and self.attrs.isdisjoint(attrs)
        )


_NONE = Leaf(_EMPTY, _EMPTY, _EMPTY, False)
Resolve = Callable[[ast.Call, Any, str], object]


class Leaves:
    """Per-node `Leaf`, computed once per program and shared by its analyses (val, train).

    `resolve(call, fn, file)` gives the submission function a call in `fn` of `file` runs
    (None for library calls). It is handed in on each call, not kept: a resolver holds the
    program index that keeps these leaves, and the two would form a reference cycle.
    """

    def __init__(self) -> None:
        # id -> (node, leaf): holding the node keeps its id from being reused meanwhile
        self._memo: dict[int, tuple[ast.AST, Leaf]] = {}
        self.memo = self._memo  # read-only for callers: `of` without a call on a hit

    def of(self, e: ast.AST, fn: Any, file: str, resolve: Resolve) -> Leaf:
        """The leaves of `e`, an expression of function `fn` (None: module level) in `file`."""
        hit = self._memo.get(id(e))
        if hit is not None:
            return hit[1]
        leaf = self._compute(e, fn, file, resolve)
        self._memo[id(e)] = (e, leaf)
        return leaf

    def union(self, parts: Iterable[ast.AST | None], fn: Any, file: str, resolve: Resolve) -> Leaf:
        """The leaves of several expressions of `fn` together (None entries are skipped)."""
        return self._union(parts, fn, file, resolve)

    def _union(
        self,
        parts: Iterable[ast.AST | None],
        fn: Any,
        file: str,
        resolve: Resolve,
        leaf: tuple[set[str], set[str], set[str]] | None = None,
        calls: bool = False,
    ) -> Leaf:
        memo = self._memo
        subs = [
            hit[1] if (hit := memo.get(id(p))) is not None else self.of(p, fn, file, resolve)
            for p in parts
            if p is not None
        ]
        if leaf is None:
            found = [sub for sub in subs if sub is not _NONE]
            if not found:
                return Leaf(_EMPTY, _EMPTY, _EMPTY, True) if calls else _NONE
            if len(found) == 1 and (found[0].calls or not calls):
                return found[0]  # leaves are never mutated: one part is the union itself
        names, attrs, strs = leaf or (set(), set(), set())
        for sub in subs:
            names.update(sub.names)
            attrs.update(sub.attrs)
            strs.update(sub.strs)
            calls = calls or sub.calls
        if not names and not attrs and not strs and not calls:
            return _NONE
        return Leaf(frozenset(names), frozenset(attrs), frozenset(strs), calls)

    def _compute(self, e: ast.AST, fn: Any, file: str, resolve: Resolve) -> Leaf:
        """Mirror of the children `TaintAnalysis.expr` visits (keep the two in step)."""
        if isinstance(e, ast.Constant):
            if isinstance(e.value, str):
                return Leaf(_EMPTY, _EMPTY, frozenset((e.value,)), False)
            return _NONE
        if isinstance(e, ast.Name):
            return Leaf(frozenset((e.id,)), _EMPTY, _EMPTY, False)
        if isinstance(e, ast.Attribute):
            if e.attr in SHAPE_ATTRS:
                return _NONE
            return self._union([e.value], fn, file, resolve, (set(), {e.attr}, set()))
        if isinstance(e, ast.Subscript):
            return self.of(e.value, fn, file, resolve)
        if isinstance(e, ast.Call):
            f = e.func
            if isinstance(f, ast.Name) and f.id in SCALAR_FUNCS:
                return _NONE
            if isinstance(f, ast.Attribute) and f.attr in SHAPE_METHODS:
                return _NONE
            parts: list[ast.AST | None] = [*e.args, *(k.value for k in e.keywords)]
            if isinstance(f, ast.Attribute):
                parts.append(f.value)
            return self._union(parts, fn, file, resolve, calls=resolve(e, fn, file) is not None)
        if isinstance(e, ast.JoinedStr):
            return self._union(e.values, fn, file, resolve)
        if isinstance(e, ast.FormattedValue):
            return self.of(e.value, fn, file, resolve)
        if isinstance(e, ast.Lambda):
            return self.of(e.body, fn, file, resolve)
        if isinstance(e, _COMPREHENSIONS):
            elts = [e.key, e.value] if isinstance(e, ast.DictComp) else [e.elt]
            return self._union([*(g.iter for g in e.generators), *elts], fn, file, resolve)
        if isinstance(e, ast.Dict):
            return self._union(e.values, fn, file, resolve)
        if isinstance(e, ast.Compare):
            return self._union([e.left, *e.comparators], fn, file, resolve)
        if isinstance(e, ast.IfExp):
            return self._union([e.test, e.body, e.orelse], fn, file, resolve)
        if isinstance(e, ast.BinOp):
            return self._union([e.left, e.right], fn, file, resolve)
        if isinstance(e, ast.UnaryOp):
            return self.of(e.operand, fn, file, resolve)
        if isinstance(e, ast.Starred | ast.Await | ast.NamedExpr):
            return self.of(e.value, fn, file, resolve)
        if isinstance(e, ast.Tuple | ast.List | ast.Set):
            return self._union(e.elts, fn, file, resolve)
        if isinstance(e, ast.BoolOp):
            return self._union(e.values, fn, file, resolve)
        if isinstance(e, ast.expr):
            kids = [c for c in astcache.children(e) if isinstance(c, ast.expr)]
            return self._union(kids, fn, file, resolve)
        return _NONE

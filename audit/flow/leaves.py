"""What an expression's val/train taint can come from: a necessary condition, cached per node.

`TaintAnalysis.expr` re-evaluates the same expressions many times (every pass of a function's
fixed point, every calling context, every round of the global passes), and nearly all of them
stay untainted. `Leaves.of(e)` lists, once per node, the names and attributes the evaluation
of `e` reads, following exactly the children `expr` visits. `expr` can only be true when one
of them is tainted, so when none is the answer is False without walking the expression.

An expression that holds a source string or a call into the submission's own functions is
"opaque" (None): its value depends on more than its leaves (a callee's return summary) and
its evaluation has effects (the callee is analysed), so it always takes the full path.
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
    """Names and attribute names read by an expression (the places taint can enter it)."""

    __slots__ = ("attrs", "names")

    def __init__(self, names: frozenset[str], attrs: frozenset[str]) -> None:
        self.names = names
        self.attrs = attrs

    def quiet(self, env: set[str], globals_: Iterable[str] | None, attrs: set[str]) -> bool:
        """True when no leaf is tainted: the expression cannot be."""
        return (
            self.names.isdisjoint(env)
            and (globals_ is None or self.names.isdisjoint(globals_))
            and self.attrs.isdisjoint(attrs)
        )


_NONE = Leaf(_EMPTY, _EMPTY)


class Leaves:
    """Per-node `Leaf` (or None when opaque), computed once per analysis.

    `is_source(text)` says whether a string constant names the analysis' source;
    `resolve(call, fn, file)` gives the submission function a call in `fn` of `file` runs
    (None for library calls). It must not hold the analysis (no bound method): the two would
    form a reference cycle that keeps every tree alive until the cyclic collector runs.
    """

    def __init__(
        self, is_source: Callable[[str], bool], resolve: Callable[[ast.Call, Any, str], object]
    ) -> None:
        self.is_source = is_source
        self.resolve = resolve
        # id -> (node, leaf): holding the node keeps its id from being reused meanwhile
        self._memo: dict[int, tuple[ast.AST, Leaf | None]] = {}

    def of(self, e: ast.AST, fn: Any, file: str) -> Leaf | None:
        """The leaves of `e`, an expression of function `fn` (None: module level) in `file`."""
        hit = self._memo.get(id(e))
        if hit is not None:
            return hit[1]
        leaf = self._compute(e, fn, file)
        self._memo[id(e)] = (e, leaf)
        return leaf

    def _union(self, parts: Iterable[ast.AST | None], fn: Any, file: str) -> Leaf | None:
        names: set[str] = set()
        attrs: set[str] = set()
        for p in parts:
            if p is None:
                continue
            leaf = self.of(p, fn, file)
            if leaf is None:
                return None
            names.update(leaf.names)
            attrs.update(leaf.attrs)
        if not names and not attrs:
            return _NONE
        return Leaf(frozenset(names), frozenset(attrs))

    def _compute(self, e: ast.AST, fn: Any, file: str) -> Leaf | None:
        """Mirror of the children `TaintAnalysis.expr` visits (keep the two in step)."""
        if isinstance(e, ast.Constant):
            return None if isinstance(e.value, str) and self.is_source(e.value) else _NONE
        if isinstance(e, ast.Name):
            return Leaf(frozenset((e.id,)), _EMPTY)
        if isinstance(e, ast.Attribute):
            if e.attr in SHAPE_ATTRS:
                return _NONE
            inner = self.of(e.value, fn, file)
            if inner is None:
                return None
            return Leaf(inner.names, inner.attrs | {e.attr})
        if isinstance(e, ast.Subscript):
            return self.of(e.value, fn, file)
        if isinstance(e, ast.Call):
            f = e.func
            if isinstance(f, ast.Name) and f.id in SCALAR_FUNCS:
                return _NONE
            if isinstance(f, ast.Attribute) and f.attr in SHAPE_METHODS:
                return _NONE
            if self.resolve(e, fn, file) is not None:
                return None
            parts: list[ast.AST | None] = [*e.args, *(k.value for k in e.keywords)]
            if isinstance(f, ast.Attribute):
                parts.append(f.value)
            return self._union(parts, fn, file)
        if isinstance(e, ast.JoinedStr):
            return self._union(e.values, fn, file)
        if isinstance(e, ast.FormattedValue):
            return self.of(e.value, fn, file)
        if isinstance(e, ast.Lambda):
            return self.of(e.body, fn, file)
        if isinstance(e, _COMPREHENSIONS):
            elts = [e.key, e.value] if isinstance(e, ast.DictComp) else [e.elt]
            return self._union([*(g.iter for g in e.generators), *elts], fn, file)
        if isinstance(e, ast.Dict):
            return self._union(e.values, fn, file)
        if isinstance(e, ast.Compare):
            return self._union([e.left, *e.comparators], fn, file)
        if isinstance(e, ast.IfExp):
            return self._union([e.test, e.body, e.orelse], fn, file)
        if isinstance(e, ast.BinOp):
            return self._union([e.left, e.right], fn, file)
        if isinstance(e, ast.UnaryOp):
            return self.of(e.operand, fn, file)
        if isinstance(e, ast.Starred | ast.Await | ast.NamedExpr):
            return self.of(e.value, fn, file)
        if isinstance(e, ast.Tuple | ast.List | ast.Set):
            return self._union(e.elts, fn, file)
        if isinstance(e, ast.BoolOp):
            return self._union(e.values, fn, file)
        if isinstance(e, ast.expr):
            return self._union(
                [c for c in astcache.children(e) if isinstance(c, ast.expr)], fn, file
            )
        return _NONE

"""What a `pyast.Taint` expression test can become true from: a necessary condition per node.

`Taint._expr` evaluates the same expressions over and over (each local pass of each function,
each time the worklist wakes it, then every query of the rules), calling the seed at every
node on the way, and almost every answer is False. `Leaves.of(e, f)` records once per
(node, function) the seed's verdict at the node and, over exactly the children `_expr`
visits, the names and dotted attributes read, the submission functions called (a call is
tainted when its callee returns taint) and whether a seed fires anywhere below. `_expr` is
then False without walking whenever none of those leaves is tainted.

Seeds must depend only on the node and the function (every seed of the scoring model and of
the rules does: they read finished taints and fixed tables, never the taint being built).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import TYPE_CHECKING

from audit import astcache

if TYPE_CHECKING:
    from audit.pyast import Func, Taint

_COMPREHENSIONS = ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
_EMPTY: frozenset[str] = frozenset()


class Leaf:
    """Names/dotted attributes read and functions called by an expression, seed-free."""

    __slots__ = ("calls", "names")

    def __init__(self, names: frozenset[str], calls: frozenset[str]) -> None:
        self.names = names
        self.calls = calls

    def quiet(self, tainted: set[str], returning: set[str]) -> bool:
        """True when nothing the expression reads or calls is tainted: neither is it."""
        return self.names.isdisjoint(tainted) and self.calls.isdisjoint(returning)


NONE = Leaf(_EMPTY, _EMPTY)
SEEDED = "seeded"  # the seed fires at the node itself: tainted
OPAQUE = "opaque"  # a seed (or a seeded name) below: evaluate in full

Summary = Leaf | str


class Leaves:
    """Summaries of one taint's expressions, per (function, node).

    The taint is handed in on each call rather than kept: taint and summaries holding each
    other would be a reference cycle, keeping the audit's trees alive for the cyclic GC.
    """

    def __init__(self) -> None:
        from audit import pyast  # pyast imports this module

        self._sanitizers = pyast.SANITIZERS
        self._call_name = pyast.call_name
        self._dotted = pyast.dotted
        # id(function node) -> id(node) -> (node, summary); holding the node keeps its id
        # from being reused while the summary is kept
        self._memo: dict[int, dict[int, tuple[ast.AST, Summary]]] = {}

    def of(self, e: ast.AST, f: Func, t: Taint) -> Summary:
        """The summary of `e`, an expression of `f`, for taint `t`."""
        per = self._memo.get(id(f.node))
        if per is None:
            per = self._memo[id(f.node)] = {}
        hit = per.get(id(e))
        if hit is not None:
            return hit[1]
        s = self._compute(e, f, t)
        per[id(e)] = (e, s)
        return s

    def _union(
        self, parts: Iterable[ast.AST], f: Func, t: Taint, names: set[str], calls: set[str]
    ) -> bool:
        """Add the parts' leaves to `names`/`calls`; False when a part is opaque."""
        for p in parts:
            s = self.of(p, f, t)
            if isinstance(s, str):
                return False
            names.update(s.names)
            calls.update(s.calls)
        return True

    def _compute(self, e: ast.AST, f: Func, t: Taint) -> Summary:
        """Mirror of the children `Taint._expr` visits (keep the two in step)."""
        if t.seed(e, t, f):
            return SEEDED
        names: set[str] = set()
        calls: set[str] = set()
        parts: list[ast.AST]
        if isinstance(e, ast.Name):
            if t.seed_names and t.seed_names(e.id):
                return OPAQUE
            return Leaf(frozenset((e.id,)), _EMPTY)
        if isinstance(e, ast.Attribute):
            d = self._dotted(e)
            if d is not None:
                names.add(d)
            parts = [] if e.attr in self._sanitizers else [e.value]
        elif isinstance(e, ast.Call):
            if self._call_name(e) in self._sanitizers:
                return NONE
            program = t.program
            calls.update(c.qualname for c in program.callees(e) if c.file in program.trees)
            parts = [*e.args, *(k.value for k in e.keywords)]
            if isinstance(e.func, ast.Attribute):
                parts.append(e.func.value)
        elif isinstance(e, ast.Lambda | ast.FunctionDef):
            return NONE
        elif isinstance(e, ast.Subscript) and not t.index_propagates:
            parts = [e.value]
        elif isinstance(e, _COMPREHENSIONS):
            elts = [e.key, e.value] if isinstance(e, ast.DictComp) else [e.elt]
            conds = [c for g in e.generators for c in g.ifs]
            parts = [*(g.iter for g in e.generators), *elts, *conds]
        else:
            parts = [c for c in astcache.children(e) if not isinstance(c, ast.expr_context)]
        if not self._union(parts, f, t, names, calls):
            return OPAQUE
        if not names and not calls:
            return NONE
        return Leaf(frozenset(names), frozenset(calls))

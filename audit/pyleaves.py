"""What a `pyast.Taint` expression test can become true from: a necessary condition per node.

`Taint._expr` evaluates the same expressions over and over (each local pass of each function,
each time the worklist wakes it, then every query of the rules), calling the seed at every
node on the way, and almost every answer is False. Two per-node records let it answer False
without walking:

- the expression's *shape* (shared by every taint of one program): over exactly the children
  `_expr` visits, the names and dotted attributes read and the submission functions called
  (a call is tainted when its callee returns taint);
- its *state* for one taint and function: SEEDED (the seed fires at the node: tainted), OPAQUE
  (a seed or a seeded name below: evaluate in full) or its shape when no seed fires anywhere
  below (then tainted only through a name or a callee of the shape).

Seeds must depend only on the node and the function (every seed of the scoring model and of
the rules does: they read finished taints and fixed tables, never the taint being built).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from audit import astcache

if TYPE_CHECKING:
    from audit.pyast import Func, Program, Taint

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_EMPTY: frozenset[str] = frozenset()

SEEDED = "seeded"
OPAQUE = "opaque"


class Shape:
    """Names/dotted attributes read and functions called by an expression; the children
    `Taint._expr` visits, and the node types found below it through them (`type_bits`)."""

    __slots__ = ("below", "calls", "kids", "names")

    def __init__(
        self,
        names: frozenset[str],
        calls: frozenset[str],
        kids: tuple[ast.AST, ...],
        below: int = 0,
    ) -> None:
        self.names = names
        self.calls = calls
        self.kids = kids
        self.below = below


_NOTHING = Shape(_EMPTY, _EMPTY, ())
_BITS: dict[type, int] = {}


def type_bits(types: object) -> int:
    """One bit per AST node type (numbered as met), or-ed over `types`."""
    out = 0
    for tp in types:  # type: ignore[attr-defined]
        bit = _BITS.get(tp)
        if bit is None:
            bit = _BITS[tp] = 1 << len(_BITS)
        out |= bit
    return out


class Shapes:
    """Expression shapes of one program (one table per `index_propagates` setting).

    Kept by the program and handed it on each call (not holding it: no reference cycle).
    """

    def __init__(self, index_propagates: bool) -> None:
        from audit import pyast  # pyast imports this module

        self._sanitizers = pyast.SANITIZERS
        self._call_name = pyast.call_name
        self._dotted = pyast.dotted
        self.index_propagates = index_propagates
        # id -> (node, shape): holding the node keeps its id from being reused meanwhile
        self._memo: dict[int, tuple[ast.AST, Shape]] = {}
        self._names: dict[str, Shape] = {}

    def of(self, e: ast.AST, program: Program) -> Shape:
        hit = self._memo.get(id(e))
        if hit is not None:
            return hit[1]
        s = self._compute(e, program)
        self._memo[id(e)] = (e, s)
        return s

    def _compute(self, e: ast.AST, program: Program) -> Shape:
        """Mirror of the children `Taint._expr` visits (keep the two in step)."""
        tp = type(e)
        # the node's own name / callees; the kids' sets are joined below (reused when alone)
        names: list[frozenset[str]] = []
        calls: list[frozenset[str]] = []
        kids: tuple[ast.AST, ...]
        if tp is ast.Name:
            name = e.id  # type: ignore[attr-defined]
            s = self._names.get(name)
            if s is None:
                s = self._names[name] = Shape(frozenset((name,)), _EMPTY, ())
            return s
        if tp is ast.Attribute:
            d = self._dotted(e)
            if d is not None:
                names.append(frozenset((d,)))
            kids = () if e.attr in self._sanitizers else (e.value,)  # type: ignore[attr-defined]
        elif tp is ast.Call:
            if self._call_name(e) in self._sanitizers:
                return _NOTHING
            own = [c.qualname for c in program.callees(e) if c.file in program.trees]  # type: ignore[arg-type]
            if own:
                calls.append(frozenset(own))
            func = e.func  # type: ignore[attr-defined]
            kids = (*e.args, *[k.value for k in e.keywords])  # type: ignore[attr-defined]
            if type(func) is ast.Attribute:
                kids = (*kids, func.value)
        elif tp is ast.Lambda or tp is ast.FunctionDef:
            return _NOTHING
        elif tp is ast.Subscript and not self.index_propagates:
            kids = (e.value,)  # type: ignore[attr-defined]
        elif tp in _COMPREHENSIONS:
            gens = e.generators  # type: ignore[attr-defined]
            elts = (e.key, e.value) if tp is ast.DictComp else (e.elt,)  # type: ignore[attr-defined]
            kids = (*(g.iter for g in gens), *elts, *(c for g in gens for c in g.ifs))
        else:
            found = astcache.children(e)
            if not found:  # constants, operators, contexts
                return _NOTHING
            kids = tuple([c for c in found if not isinstance(c, ast.expr_context)])
        below = 0
        bits, memo = _BITS, self._memo
        for k in kids:
            hit = memo.get(id(k))  # self.of(k), without a call when known
            s = hit[1] if hit is not None else self.of(k, program)
            if s.names:
                names.append(s.names)
            if s.calls:
                calls.append(s.calls)
            bit = bits.get(type(k))
            below |= (bit if bit is not None else type_bits((type(k),))) | s.below
        if not names and not calls and not kids:
            return _NOTHING
        return Shape(_join(names), _join(calls), kids, below)


def _join(parts: list[frozenset[str]]) -> frozenset[str]:
    """The union of `parts` (one part is returned as is: shapes never mutate their sets)."""
    if not parts:
        return _EMPTY
    if len(parts) == 1:
        return parts[0]
    return frozenset().union(*parts)


class Leaves:
    """States of one taint's expressions, per (function, node), over the program's shapes.

    The taint is handed in on each call rather than kept: taint and states holding each
    other would be a reference cycle, keeping the audit's trees alive for the cyclic GC.
    """

    def __init__(self, shapes: Shapes) -> None:
        self.shapes = shapes
        # id(function node) -> id(node) -> (node, state)
        self._memo: dict[int, dict[int, tuple[ast.AST, str | Shape]]] = {}

    def state(self, e: ast.AST, f: Func, t: Taint) -> str | Shape:
        """SEEDED, OPAQUE, or (quiet: no seed below) the shape of `e`, an expression of `f`,
        under taint `t`."""
        per = self._memo.get(id(f.node))
        if per is None:
            per = self._memo[id(f.node)] = {}
        hit = per.get(id(e))
        if hit is not None:
            return hit[1]
        if (t.kinds is None or type(e) in t.kinds) and t.seed(e, t, f):
            st = SEEDED
        elif type(e) is ast.Name and t.seed_names and t.seed_names(e.id):
            st = OPAQUE
        else:
            st = shape = self.shapes.of(e, t.program)
            # a kid's state is SEEDED or OPAQUE only where the seed can fire below
            if shape.below & t.seed_bits:
                for k in shape.kids:
                    hit = per.get(id(k))  # self.state(k, f, t), without a call when known
                    if isinstance(hit[1] if hit is not None else self.state(k, f, t), str):
                        st = OPAQUE
                        break
        per[id(e)] = (e, st)
        return st

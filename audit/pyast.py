"""Small shared AST helpers for code rules: names, expression text, scopes and taint flow.

`Taint` is a forward may-taint analysis over the functions of a submission: start from seed
expressions (e.g. "the second argument of cross_entropy is the realized target"), follow
assignments, loop targets, container appends, call arguments into parameters and return
values back to call sites, across files. It is deliberately coarse (whole-array taint,
no path sensitivity); rules combine several taints to describe a mechanism.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from audit import astcache
from audit.pyleaves import OPAQUE, SEEDED, Leaves, Shapes, type_bits

FuncNode = ast.FunctionDef | ast.AsyncFunctionDef

# Calls whose result carries shape/size information only, never the values of the argument.
SANITIZERS = frozenset(
    {"len", "numel", "size", "dim", "ndim", "shape", "dtype", "device", "is_cuda", "isinstance"}
)


# In-place writes into a container: `acc.append(x)` makes `acc` carry `x`.
_CONTAINER_WRITES = frozenset(
    {
        "append",
        "extend",
        "add",
        "insert",
        "copy_",
        "fill_",
        "put_",
        "index_put_",
        "scatter_",
        "scatter_add_",
        "add_",
        "setdefault",
        "index_copy_",
        "masked_scatter_",
    }
)


def dotted(node: ast.AST) -> str | None:
    """`a.b.c` for Name/Attribute chains, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def call_name(call: ast.Call) -> str | None:
    """Last component of the called name: `F.cross_entropy(...)` -> "cross_entropy"."""
    f = call.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


def base_name(node: ast.AST) -> str | None:
    """The variable an expression reads or writes through: `y[i, :n].view(-1)` -> "y"."""
    while True:
        if isinstance(node, ast.Subscript | ast.Starred):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            node = node.func.value
        elif isinstance(node, ast.Attribute):
            d = dotted(node)
            if d and d.startswith("self."):
                return d
            node = node.value
        else:
            break
    return dotted(node)


def target_names(target: ast.AST) -> list[str]:
    """Names written by an assignment target (subscript/attribute stores write their base)."""
    if isinstance(target, ast.Tuple | ast.List):
        return [n for e in target.elts for n in target_names(e)]
    if isinstance(target, ast.Starred):
        return target_names(target.value)
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Attribute):
        d = dotted(target)
        return [d] if d else []
    if isinstance(target, ast.Subscript):
        b = base_name(target)
        return [b] if b else []
    return []


# a line and its terminator (\r\n, \r or \n), as the parser and ast.get_source_segment split
_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+\Z")


@functools.lru_cache(maxsize=16)
def _source_lines(source: str) -> tuple[str, ...]:
    return tuple(_LINE.findall(source))


def source_segment(source: str, node: ast.AST) -> str | None:
    """`ast.get_source_segment(source, node)`, without splitting `source` again on every call
    (the stdlib splits it character by character: seconds per audit on large files)."""
    try:
        if node.end_lineno is None or node.end_col_offset is None:  # type: ignore[attr-defined]
            return None
        lineno = node.lineno - 1  # type: ignore[attr-defined]
        end_lineno = node.end_lineno - 1  # type: ignore[attr-defined]
        col_offset = node.col_offset  # type: ignore[attr-defined]
        end_col_offset = node.end_col_offset  # type: ignore[attr-defined]
    except AttributeError:
        return None
    lines = _source_lines(source)
    if end_lineno == lineno:
        return lines[lineno].encode()[col_offset:end_col_offset].decode()
    first = lines[lineno].encode()[col_offset:].decode()
    last = lines[end_lineno].encode()[:end_col_offset].decode()
    return "".join([first, *lines[lineno + 1 : end_lineno], last])


def expr_text(node: ast.AST, source: str, limit: int = 160) -> str:
    """Source text of `node` on one line, shortened to `limit` characters."""
    try:
        seg = source_segment(source, node) or ast.unparse(node)
    except Exception:
        seg = ast.unparse(node) if isinstance(node, ast.AST) else ""
    seg = " ".join(seg.split())
    return seg if len(seg) <= limit else seg[: limit - 3] + "..."


def line_text(source: str, line: int, limit: int = 200) -> str:
    lines = source.splitlines()
    if 1 <= line <= len(lines):
        text = lines[line - 1].strip()
        return text if len(text) <= limit else text[: limit - 3] + "..."
    return ""


def tolerant_parse(text: str, max_repairs: int = 40) -> ast.Module | None:
    """Parse `text`, blanking lines the running Python cannot parse (e.g. 3.12 f-strings).

    Each offending line becomes `pass` at its indentation, so the rest of the file keeps its
    line numbers and can still be analysed. None when the file stays unparsable.
    """
    lines = text.splitlines()
    for _ in range(max_repairs):
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError as exc:
            ln = exc.lineno or 0
            if not 1 <= ln <= len(lines) or lines[ln - 1].strip() == "pass":
                return None
            bad = lines[ln - 1]
            lines[ln - 1] = bad[: len(bad) - len(bad.lstrip())] + "pass"
        except (ValueError, RecursionError, MemoryError):
            return None
    return None


# walk_no_defs results are kept on the walked node itself (like audit.astcache), so they live
# as long as their tree: a module-level cache kept earlier audits' trees alive
_NO_DEFS = "_pgolf_no_defs"
_STOP = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_STOP_TYPES = frozenset(_STOP)  # none of them has subclasses: a type test is isinstance


def walk_no_defs(node: ast.AST) -> Iterator[ast.AST]:
    """ast.walk that does not descend into nested function/class definitions (memoized)."""
    hit = node.__dict__.get(_NO_DEFS)
    if hit is not None:
        return iter(hit)
    out: list[ast.AST] = []
    stack = list(astcache.children(node))
    children, key = astcache.children, astcache.CHILDREN
    while stack:
        n = stack.pop()
        out.append(n)
        if type(n) in _STOP_TYPES:
            continue
        kids = n.__dict__.get(key)  # children(n), without a call when listed
        if kids is None:
            kids = children(n)
        if kids:
            stack.extend(kids)
    if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.For | ast.While):
        setattr(node, _NO_DEFS, out)
    return iter(out)


@dataclass
class Func:
    """One function (or a module's top-level code, name "<module>") of one file."""

    file: str
    name: str
    qualname: str
    node: ast.AST
    params: list[str] = field(default_factory=list)
    parent: Func | None = None


def param_names(node: FuncNode) -> list[str]:
    """Every parameter name of a function, in signature order (*args and **kwargs included)."""
    a = node.args
    names = [p.arg for p in a.posonlyargs + a.args]
    if a.vararg:
        names.append(a.vararg.arg)
    names += [p.arg for p in a.kwonlyargs]
    if a.kwarg:
        names.append(a.kwarg.arg)
    return names


class Program:
    """Every function of every parsed file, with name lookup (no imports, no execution)."""

    def __init__(self, trees: dict[str, ast.Module]) -> None:
        self.trees = trees
        self.funcs: list[Func] = []
        self.by_name: dict[str, list[Func]] = {}
        self.func_of_node: dict[int, Func] = {}
        self.parent: dict[int, ast.AST] = {}
        for file, tree in trees.items():
            mod = Func(file, "<module>", f"{file}:<module>", tree)
            self._add(mod)
            self._index(file, tree, mod)
        self._flow: dict[int, list[ast.AST]] = {}
        self.children: dict[int, list[Func]] = {}
        self.callers: dict[str, list[Func]] = {}
        for f in self.funcs:
            if f.parent is not None:
                self.children.setdefault(id(f.parent.node), []).append(f)
            called: set[str] = set()
            for n in self.calls_of(f):
                name = call_name(n)  # type: ignore[arg-type]
                if name and name not in called:
                    called.add(name)
                    self.callers.setdefault(name, []).append(f)

    def nodes_of_kinds(self, f: Func, kinds: frozenset[type[ast.AST]]) -> list[ast.AST]:
        """The nodes of `walk_no_defs(f.node)` whose type is one of `kinds`, in that order
        (cached per function and set of types)."""
        memo = self.__dict__.setdefault("_kind_nodes", {})
        key = (id(f.node), kinds)
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = [n for n in walk_no_defs(f.node) if type(n) in kinds]
        return hit

    def calls_of(self, f: Func) -> list[ast.AST]:
        """The calls among `walk_no_defs(f.node)`, in that order (cached)."""
        return self.nodes_of_kinds(f, _CALL_KIND)

    def shapes(self, index_propagates: bool) -> Shapes:
        """Expression shapes shared by every taint of this program (audit.pyleaves)."""
        table = self.__dict__.setdefault("_shapes", {})
        hit = table.get(index_propagates)
        if hit is None:
            hit = table[index_propagates] = Shapes(index_propagates)
        return hit

    def _add(self, f: Func) -> None:
        self.funcs.append(f)
        self.func_of_node[id(f.node)] = f
        self.by_name.setdefault(f.name, []).append(f)

    def _index(self, file: str, tree: ast.Module, mod: Func) -> None:
        """One pass over the tree: parents, functions, and the nodes each function owns."""
        owned: dict[int, list[ast.AST]] = {id(tree): []}
        self._scope(file, tree, mod, owned[id(tree)], "", owned)
        for f in self.funcs:
            nodes = owned.get(id(f.node))
            if nodes is not None:
                setattr(f.node, _NO_DEFS, nodes)

    def _scope(
        self,
        file: str,
        top: ast.AST,
        owner: Func,
        nodes: list[ast.AST],
        prefix: str,
        owned: dict[int, list[ast.AST]],
    ) -> None:
        """Depth first below `top` (last child first), up to the next def or class, whose
        subtree is done by a nested call on the spot (the order of one stack over the tree).
        A node's parent is recorded when it is visited: a node the parser shares between
        parents (`ast.Load()`) keeps the last one visited."""
        parents = self.parent
        children, key = astcache.children, astcache.CHILDREN
        stack = list(children(top))
        above = [top] * len(stack)  # each stacked node's parent
        while stack:
            node = stack.pop()
            parents[id(node)] = above.pop()
            nodes.append(node)
            kids = node.__dict__.get(key)  # children(node), without a call when listed
            if kids is None:
                kids = children(node)
            kind = type(node)
            if kind is ast.FunctionDef or kind is ast.AsyncFunctionDef:
                q = f"{prefix}{node.name}"  # type: ignore[attr-defined]
                f = Func(file, node.name, q, node, param_names(node), owner)  # type: ignore[attr-defined,arg-type]
                self._add(f)
                mine = owned[id(node)] = []
                self._scope(file, node, f, mine, q + ".", owned)
            elif kind is ast.ClassDef:
                self._scope(file, node, owner, nodes, f"{prefix}{node.name}.", owned)  # type: ignore[attr-defined]
            elif kids:
                stack.extend(kids)
                above.extend([node] * len(kids))

    def flow_nodes(self, f: Func) -> list[ast.AST]:
        """The nodes of `f` through which values flow (assignments, loops, calls, returns)."""
        key = id(f.node)
        hit = self._flow.get(key)
        if hit is None:
            kinds = _FLOW_TYPES  # none of them has subclasses: a type test is isinstance
            hit = self._flow[key] = [n for n in walk_no_defs(f.node) if type(n) in kinds]
        return hit

    def taint_nodes(self, f: Func) -> list[ast.AST]:
        """`flow_nodes(f)` without those `Taint._run` does nothing with: calls that neither
        write into a container nor call a function of the submission, `with` items without
        `as` (keep in step with `Taint._run`)."""
        memo = self.__dict__.setdefault("_taint_nodes", {})
        hit = memo.get(id(f.node))
        if hit is None:
            hit = memo[id(f.node)] = [n for n in self.flow_nodes(f) if self._moves_taint(n)]
        return hit

    def _moves_taint(self, n: ast.AST) -> bool:
        if isinstance(n, ast.Call):
            writes = isinstance(n.func, ast.Attribute) and n.func.attr in _CONTAINER_WRITES
            return writes or bool(self.callees(n))
        if isinstance(n, ast.withitem):
            return n.optional_vars is not None
        return True

    def callees(self, call: ast.Call) -> list[Func]:
        func = call.func
        if isinstance(func, ast.Name):
            return self.by_name.get(func.id) or self.param_callees(call)
        if isinstance(func, ast.Attribute):
            # obj.meth(...): only when few candidates, to avoid library-method noise
            cands = self.by_name.get(func.attr, _NO_FUNCS)
            return cands if 0 < len(cands) <= 3 else _NO_FUNCS
        return _NO_FUNCS

    def enclosing(self, node: ast.AST) -> Func | None:
        cur = self.parent.get(id(node))
        while cur is not None:
            if isinstance(cur, ast.FunctionDef | ast.AsyncFunctionDef):
                return self.func_of_node.get(id(cur))
            cur = self.parent.get(id(cur))
        return None

    def param_callees(self, call: ast.Call) -> list[Func]:
        """`fn(x, y)` where `fn` is a parameter or a local alias: the submission functions
        bound to it at the call sites of the enclosing function (`run(model.forward_ttt)`),
        or assigned to it in an enclosing scope (`fwd = torch.compile(inner)`)."""
        memo = self.__dict__.setdefault("_param_callees", {})
        hit = memo.get(id(call))
        if hit is not None:
            return hit
        memo[id(call)] = []  # recursion guard
        out: list[Func] = []
        f = self.enclosing(call)
        name = call.func.id if isinstance(call.func, ast.Name) else None
        if f is not None and name in f.params:
            pos = f.params.index(name)
            if f.params[:1] in (["self"], ["cls"]):
                pos -= 1
            for caller in self.callers.get(f.name, ()):
                for n in self.calls_of(caller):
                    if call_name(n) != f.name:  # type: ignore[arg-type]
                        continue
                    bound = [k.value for k in n.keywords if k.arg == name]
                    if not bound and 0 <= pos < len(n.args):
                        bound = [n.args[pos]]
                    for b in bound:
                        out += self._function_value(b, caller, 0)
        elif f is not None and name is not None:
            out = self._resolve_name(name, f, 0)
        memo[id(call)] = out
        return out

    def _assigned_names(self) -> set[str]:
        hit = self.__dict__.get("_assigned")
        if hit is None:
            hit = {
                t.id
                for tree in self.trees.values()
                for n in astcache.walk(tree)
                if type(n) is ast.Assign
                for t in n.targets  # type: ignore[attr-defined]
                if isinstance(t, ast.Name)
            }
            self.__dict__["_assigned"] = hit
        return hit

    def _resolve_name(self, name: str, scope: Func | None, depth: int) -> list[Func]:
        """Functions a name refers to: a def, or a variable assigned a function value in
        `scope` or an enclosing scope (aliases, `torch.compile(f)`, nonlocal rebinding)."""
        direct = self.by_name.get(name)
        if direct:
            return list(direct)
        if depth > 3 or name not in self._assigned_names():
            return []
        s = scope
        while s is not None:
            out: list[Func] = []
            for value in self._single_assigns(s).get(name, ()):
                out += self._function_value(value, s, depth + 1)
            if out:
                return out
            s = s.parent
        return []

    def _single_assigns(self, f: Func) -> dict[str, list[ast.expr]]:
        """`name = value` statements of `f` (one plain-name target), values by name in
        `walk_no_defs` order (cached per function)."""
        memo = self.__dict__.setdefault("_single_assigns_memo", {})
        hit = memo.get(id(f.node))
        if hit is None:
            hit = memo[id(f.node)] = {}
            for n in self.nodes_of_kinds(f, _ASSIGN_KIND):
                targets = n.targets  # type: ignore[attr-defined]
                if len(targets) == 1 and isinstance(targets[0], ast.Name):
                    hit.setdefault(targets[0].id, []).append(n.value)  # type: ignore[attr-defined]
        return hit

    def _function_value(
        self, node: ast.AST, scope: Func | None = None, depth: int = 0
    ) -> list[Func]:
        """Functions a value names: `f`, `obj.meth`, through `torch.compile(...)`/`partial(...)`."""
        while isinstance(node, ast.Call) and node.args and call_name(node) in _FN_WRAPPERS:
            node = node.args[0]
        if isinstance(node, ast.Name):
            return self._resolve_name(node.id, scope, depth)
        if isinstance(node, ast.Attribute):
            cands = self.by_name.get(node.attr, [])
            return list(cands) if 0 < len(cands) <= 3 else []
        return []

    def indirect_callers(self, f: Func) -> list[Func]:
        """Functions that call `f` through a function-valued parameter."""
        rev = self.__dict__.get("_indirect")
        if rev is None:
            rev = {}
            assigned = self._assigned_names()
            for g in self.funcs:
                pset = set(g.params)
                for n in self.calls_of(g):
                    if (
                        isinstance(n.func, ast.Name)  # type: ignore[attr-defined]
                        and (n.func.id in pset or n.func.id in assigned)
                        and not self.by_name.get(n.func.id)
                    ):
                        for c in self.param_callees(n):
                            rev.setdefault(c.qualname, []).append(g)
            self.__dict__["_indirect"] = rev
        return rev.get(f.qualname, [])

    def function_at(self, file: str, line: int) -> Func | None:
        best: Func | None = None
        for f in self.funcs:
            if f.file != file or f.name == "<module>":
                continue
            n = f.node
            inside = n.lineno <= line <= (n.end_lineno or n.lineno)  # type: ignore[attr-defined]
            if inside and (best is None or n.lineno >= best.node.lineno):  # type: ignore[attr-defined]
                best = f
        return best


_CALL_KIND: frozenset[type[ast.AST]] = frozenset({ast.Call})
_ASSIGN_KIND: frozenset[type[ast.AST]] = frozenset({ast.Assign})
_NO_FUNCS: list[Func] = []  # shared empty answer of Program.callees (never mutated)
_FN_WRAPPERS = frozenset({"compile", "partial", "jit", "script", "checkpoint", "wraps"})


def local_flow(f: Func, start: set[str], limit: int = 8) -> set[str]:
    """Names of `f` that (syntactically) derive from `start` through assignments in `f`."""
    names = set(start)
    assigns = [
        n
        for n in walk_no_defs(f.node)
        if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.For)
        or (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in {"append", "extend"}
        )
    ]
    for _ in range(limit):
        before = len(names)
        for n in assigns:
            if isinstance(n, ast.Call):
                if mentions(n.args, names):
                    b = base_name(n.func.value)  # type: ignore[attr-defined]
                    if b:
                        names.add(b)
                continue
            value = n.iter if isinstance(n, ast.For) else n.value
            if value is not None and mentions([value], names):
                targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                for t in targets:
                    names.update(target_names(t))
        if len(names) == before:
            break
    return names


def mentions(nodes: Iterable[ast.AST], names: set[str]) -> bool:
    for node in nodes:
        for n in astcache.walk(node):
            if isinstance(n, ast.Name) and n.id in names:
                return True
            if isinstance(n, ast.Attribute) and dotted(n) in names:
                return True
    return False


_FLOW_NODES = (
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.NamedExpr,
    ast.For,
    ast.AsyncFor,
    ast.withitem,
    ast.Call,
    ast.Return,
)
_FLOW_TYPES = frozenset(_FLOW_NODES)

SeedFn = Callable[[ast.AST, "Taint", Func], bool]
# what `Taint._expr` is ever handed: expressions and the operator nodes inside them
_EXPR_PARTS = (ast.expr, ast.operator, ast.unaryop, ast.boolop, ast.cmpop)


class Taint:
    """Forward may-taint of names, per function, to a fixpoint across calls and returns."""

    def __init__(
        self,
        program: Program,
        seed: SeedFn,
        *,
        seed_names: Callable[[str], bool] | None = None,
        rounds: int = 6,
        index_propagates: bool = True,
        only: set[int] | frozenset[int] | None = None,
        kinds: tuple[type[ast.AST], ...] | None = None,
    ) -> None:
        self.program = program
        self.only = only
        # the node types at which `seed` can fire (None: any): a promise of the caller that
        # lets the seed be asked only there
        self.kinds = frozenset(kinds) if kinds is not None else None
        # the node types at which the seed or `seed_names` can fire, as audit.pyleaves bits
        # (-1: any)
        self.seed_bits = -1
        if kinds is not None:
            self.seed_bits = type_bits([*kinds, *([ast.Name] if seed_names else [])])
        self.index_propagates = index_propagates
        self.seed = seed
        self.seed_names = seed_names
        self.names: dict[int, set[str]] = {id(f.node): set() for f in program.funcs}
        self.returns: set[str] = set()  # qualnames of functions returning tainted values
        self._cache: dict[int, bool] = {}
        self._final = False
        self._memo: dict[int, bool] = {}
        self._leaves = Leaves(program.shapes(index_propagates))
        for f in program.funcs:
            if seed_names:
                self.names[id(f.node)].update(p for p in f.params if seed_names(p))
        # Worklist to a fixpoint: a function is re-run when its parameters gain taint, when
        # an enclosing function's names change, or when a function it calls starts
        # returning tainted values.
        self._dirty: set[int] = {
            id(f.node) for f in program.funcs if only is None or id(f.node) in only
        }
        # inert: the seed fires nowhere in the analysed functions and no name is seeded, so no
        # expression of theirs is tainted (a rule may skip its scan of them)
        self.inert = seed_names is None and not self._seeded_somewhere()
        if self.inert:
            self._dirty.clear()
        budget = rounds * max(len(program.funcs), 1)
        while self._dirty and budget > 0:
            for f in program.funcs:
                if id(f.node) in self._dirty:
                    self._dirty.discard(id(f.node))
                    budget -= 1
                    self._run(f)
        self._final = True

    def _seeded_somewhere(self) -> bool:
        """Does the seed fire at any node `_expr` can reach in the analysed functions?

        Without a seeded name, taint only starts where the seed fires: if it fires nowhere,
        no name gets tainted and no function returns taint (the worklist would find nothing).
        """
        for f in self.program.funcs:
            if self.only is not None and id(f.node) not in self.only:
                continue
            if self.kinds is not None:
                nodes = self.program.nodes_of_kinds(f, self.kinds)
                if any(self.seed(n, self, f) for n in nodes):
                    return True
                continue
            for n in walk_no_defs(f.node):
                if isinstance(n, _EXPR_PARTS) and self.seed(n, self, f):
                    return True
        return False

    # ------------------------------------------------------------------ queries

    def tainted_names(self, f: Func) -> set[str]:
        out = set(self.names[id(f.node)])
        p = f.parent
        while p is not None:  # closures read the enclosing function's names
            out |= self.names[id(p.node)]
            p = p.parent
        return out

    def is_tainted(self, expr: ast.AST, f: Func) -> bool:
        if not self._final:
            return self._expr(expr, f, self.tainted_names(f))
        key = id(expr)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._expr(expr, f, self.tainted_names(f))
        return hit

    def tainted_nodes(self, expr: ast.AST, f: Func) -> Iterator[ast.AST]:
        names = self.tainted_names(f)
        for n in astcache.walk(expr):
            if isinstance(n, ast.Name | ast.Attribute) and self._leaf(n, names):
                yield n

    # ------------------------------------------------------------------ engine

    def _leaf(self, n: ast.AST, names: set[str]) -> bool:
        if isinstance(n, ast.Name):
            return n.id in names or bool(self.seed_names and self.seed_names(n.id))
        if isinstance(n, ast.Attribute):
            d = dotted(n)
            return d is not None and d in names
        return False

    def _expr(self, expr: ast.AST, f: Func, names: set[str]) -> bool:
        state = self._leaves.state(expr, f, self)
        if state is SEEDED:  # the seed fires here
            return True
        if (
            state is not OPAQUE
            and state.names.isdisjoint(names)  # type: ignore[union-attr]
            and state.calls.isdisjoint(self.returns)  # type: ignore[union-attr]
        ):
            return False  # no seed below, and nothing it reads or calls is tainted
        if isinstance(expr, ast.Name | ast.Attribute) and self._leaf(expr, names):
            return True
        if isinstance(expr, ast.Attribute):
            if expr.attr in SANITIZERS:
                return False
            return self._expr(expr.value, f, names)
        if isinstance(expr, ast.Call):
            cname = call_name(expr)
            if cname in SANITIZERS:
                return False
            for callee in self.program.callees(expr):
                if callee.qualname in self.returns and callee.file in self.program.trees:
                    return True
            parts: list[ast.AST] = list(expr.args) + [k.value for k in expr.keywords]
            if isinstance(expr.func, ast.Attribute):
                parts.append(expr.func.value)
            return any(self._expr(p, f, names) for p in parts)
        if isinstance(expr, ast.Lambda | ast.FunctionDef):
            return False
        if isinstance(expr, ast.Subscript) and not self.index_propagates:
            return self._expr(expr.value, f, names)
        if isinstance(expr, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            bound = {t for g in expr.generators for t in target_names(g.target)}
            if any(self._expr(g.iter, f, names) for g in expr.generators):
                return True
            inner = names - bound
            elts = [expr.key, expr.value] if isinstance(expr, ast.DictComp) else [expr.elt]
            conds = [c for g in expr.generators for c in g.ifs]
            return any(self._expr(e, f, inner) for e in elts + conds)
        return any(
            self._expr(c, f, names)
            for c in astcache.children(expr)
            if not isinstance(c, ast.expr_context)
        )

    def _mark(self, f: Func, new: Iterable[str]) -> bool:
        s = self.names[id(f.node)]
        before = len(s)
        s.update(new)
        if len(s) == before:
            return False
        self._wake(f)
        for child in self.program.children.get(id(f.node), ()):
            self._wake(child)
        return True

    def _run(self, f: Func) -> bool:
        changed = False
        relevant = self.program.taint_nodes(f)
        for _ in range(3):  # local fixpoint for loops
            local_change = False
            names = self.tainted_names(f)
            for n in relevant:
                written: list[str] = []
                if isinstance(n, ast.Assign):
                    if self._expr(n.value, f, names):
                        for t in n.targets:
                            written += target_names(t)
                elif isinstance(n, ast.AugAssign | ast.AnnAssign):
                    if n.value is not None and self._expr(n.value, f, names):
                        written += target_names(n.target)
                elif isinstance(n, ast.NamedExpr):
                    if self._expr(n.value, f, names):
                        written += target_names(n.target)
                elif isinstance(n, ast.For | ast.AsyncFor):
                    written += self._loop_targets(n.target, n.iter, f, names)
                elif isinstance(n, ast.withitem) and n.optional_vars is not None:
                    if self._expr(n.context_expr, f, names):
                        written += target_names(n.optional_vars)
                elif isinstance(n, ast.Call):
                    if (
                        isinstance(n.func, ast.Attribute)
                        and n.func.attr in _CONTAINER_WRITES
                        and any(self._expr(a, f, names) for a in n.args)
                    ):
                        b = base_name(n.func.value)
                        if b:
                            written.append(b)
                    self._propagate_args(n, f, names)
                elif (
                    isinstance(n, ast.Return)
                    and n.value is not None
                    and f.qualname not in self.returns
                ) and self._expr(n.value, f, names):
                    self.returns.add(f.qualname)
                    for caller in self.program.callers.get(f.name, ()):
                        self._wake(caller)
                    for caller in self.program.indirect_callers(f):
                        self._wake(caller)
                    changed = True
                if written and self._mark(f, written):
                    local_change = True
                    names = self.tainted_names(f)
            if not local_change:
                break
            changed = True
        return changed

    def _wake(self, f: Func) -> None:
        if self.only is None or id(f.node) in self.only:
            self._dirty.add(id(f.node))

    def _loop_targets(self, target: ast.AST, it: ast.AST, f: Func, names: set[str]) -> list[str]:
        # zip(a, b) / enumerate(a) bind element-wise: only the matching targets are tainted.
        if (
            isinstance(it, ast.Call)
            and isinstance(it.func, ast.Name)
            and isinstance(target, ast.Tuple)
        ):
            if it.func.id == "zip" and len(it.args) == len(target.elts):
                out: list[str] = []
                for t, a in zip(target.elts, it.args, strict=True):
                    out += self._loop_targets(t, a, f, names)
                return out
            if it.func.id == "enumerate" and it.args and len(target.elts) == 2:
                return self._loop_targets(target.elts[1], it.args[0], f, names)
        if self._expr(it, f, names):
            return target_names(target)
        return []

    def _propagate_args(self, call: ast.Call, f: Func, names: set[str]) -> None:
        callees = self.program.callees(call)
        if not callees:
            return
        tainted_pos = [i for i, a in enumerate(call.args) if self._expr(a, f, names)]
        tainted_kw = [k.arg for k in call.keywords if k.arg and self._expr(k.value, f, names)]
        if not tainted_pos and not tainted_kw:
            return
        for callee in callees:
            params = list(callee.params)
            # a bound method handed over as a value (`fn = model.forward`) is called without self
            indirect = isinstance(call.func, ast.Name) and callee.name != call.func.id
            offset = (
                1
                if params[:1] in (["self"], ["cls"])
                and (isinstance(call.func, ast.Attribute) or indirect)
                else 0
            )
            new = [params[i + offset] for i in tainted_pos if i + offset < len(params)]
            new += [k for k in tainted_kw if k in params]
            if new:
                self._mark(callee, new)

"""Index of the functions and classes defined in a submission's files, and call resolution.

Calls are resolved by name within the submission only (never by importing anything):
`foo(...)` to a module-level function `foo` (same file first), `Cls(...)` to `Cls.__init__`,
`self.meth(...)` to a method of the enclosing class, `obj.meth(...)` to a method when exactly
one class of the submission defines `meth`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from audit import astcache
from audit.astcache import CHILDREN as _CHILDREN
from audit.pyast import param_names

FuncNode = ast.FunctionDef | ast.AsyncFunctionDef

# Method names so common on library objects (tensors, modules, optimizers) that resolving
# `obj.name(...)` to a same-named method of the submission would mostly be wrong.
_AMBIGUOUS_METHODS = frozenset(
    {
        "step",
        "zero_grad",
        "to",
        "train",
        "eval",
        "cuda",
        "cpu",
        "float",
        "half",
        "bfloat16",
        "item",
        "numel",
        "size",
        "view",
        "reshape",
        "sum",
        "mean",
        "backward",
        "parameters",
        "named_parameters",
        "state_dict",
        "load_state_dict",
        "apply",
        "append",
        "extend",
        "update",
        "get",
        "items",
        "keys",
        "values",
        "copy",
        "copy_",
        "clone",
        "detach",
        "reset",
        "write",
        "read",
        "close",
        "__call__",
    }
)


@dataclass
class FunctionInfo:
    """One function or method: its node, file, qualified name and enclosing class."""

    qualname: str
    name: str
    file: str
    node: FuncNode
    cls: str | None = None
    params: list[str] = field(default_factory=list)

    @property
    def is_method(self) -> bool:
        return self.cls is not None


@dataclass
class ClassInfo:
    name: str
    file: str
    node: ast.ClassDef
    methods: dict[str, FunctionInfo] = field(default_factory=dict)


class NodeFiles:
    """`id(node) -> file` for every node of the indexed trees, found through the parent
    links on demand (a few lookups each) rather than stored once per node."""

    def __init__(self, parent: dict[int, ast.AST]) -> None:
        self.parent = parent
        self.roots: dict[int, str] = {}  # id(tree) -> file

    def get(self, key: int, default: str | None = None) -> str | None:
        roots, parent = self.roots, self.parent
        while True:
            file = roots.get(key)
            if file is not None:
                return file
            up = parent.get(key)
            if up is None:
                return default
            key = id(up)


class ProgramIndex:
    """Every function/class of every parsed file, plus parent links for statement lookup."""

    def __init__(self, trees: dict[str, ast.Module]) -> None:
        self.trees = trees
        self.functions: dict[str, FunctionInfo] = {}
        self.by_name: dict[str, list[FunctionInfo]] = {}
        self.classes: dict[str, list[ClassInfo]] = {}
        self.methods_by_name: dict[str, list[FunctionInfo]] = {}
        self.parent: dict[int, ast.AST] = {}
        self.by_node: dict[int, FunctionInfo] = {}
        self.node_file = NodeFiles(self.parent)
        self.memo: dict[str, Any] = {}  # analyses sharing per-node results
        for file, tree in trees.items():
            self._index_file(file, tree)

    def _index_file(self, file: str, tree: ast.Module) -> None:
        self.node_file.roots[id(tree)] = file
        parents, children, key = self.parent, astcache.children, _CHILDREN
        for parent in astcache.walk(tree):
            kids = parent.__dict__.get(key)
            if kids is None:
                kids = children(parent)
            for child in kids:
                parents[id(child)] = parent
        self._collect(file, tree.body, prefix="", cls=None, outer=None)

    def _collect(
        self,
        file: str,
        body: list[ast.stmt],
        prefix: str,
        cls: ClassInfo | None,
        outer: FunctionInfo | None,
    ) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                qual = f"{prefix}{stmt.name}"
                info = FunctionInfo(
                    qualname=f"{file}:{qual}",
                    name=stmt.name,
                    file=file,
                    node=stmt,
                    cls=cls.name if cls else None,
                    params=param_names(stmt),
                )
                self.functions[info.qualname] = info
                if cls is not None:
                    cls.methods[stmt.name] = info
                    self.methods_by_name.setdefault(stmt.name, []).append(info)
                else:
                    self.by_name.setdefault(stmt.name, []).append(info)
                self.by_node[id(stmt)] = info
                self._collect(file, stmt.body, prefix=f"{qual}.", cls=None, outer=info)
                # nested functions are reachable by plain name from the enclosing body
            elif isinstance(stmt, ast.ClassDef):
                ci = ClassInfo(name=stmt.name, file=file, node=stmt)
                self.classes.setdefault(stmt.name, []).append(ci)
                self._collect(file, stmt.body, prefix=f"{prefix}{stmt.name}.", cls=ci, outer=outer)
            else:
                for attr in ("body", "orelse", "finalbody", "handlers"):
                    inner = getattr(stmt, attr, None)
                    if isinstance(inner, list) and inner and isinstance(inner[0], ast.AST):
                        stmts = [h.body if isinstance(h, ast.ExceptHandler) else [h] for h in inner]
                        flat = [s for group in stmts for s in group]
                        self._collect(file, flat, prefix, cls, outer)

    # ------------------------------------------------------------------ resolution

    def function_of(self, node: ast.AST) -> FunctionInfo | None:
        """The innermost function whose body contains `node` (None at module level)."""
        cur: ast.AST | None = node
        while cur is not None:
            cur = self.parent.get(id(cur))
            if isinstance(cur, ast.FunctionDef | ast.AsyncFunctionDef):
                return self.by_node.get(id(cur))
        return None

    def enclosing_class(self, func: FunctionInfo | None) -> str | None:
        return func.cls if func else None

    def resolve_call(
        self, call: ast.Call, file: str, caller: FunctionInfo | None
    ) -> FunctionInfo | None:
        """The submission function a call runs, if it can be named statically."""
        f = call.func
        if isinstance(f, ast.Name):
            return self.resolve_name(f.id, file, caller)
        if isinstance(f, ast.Attribute):
            if isinstance(f.value, ast.Name) and f.value.id in ("self", "cls") and caller:
                if caller.cls:
                    for ci in self.classes.get(caller.cls, []):
                        if f.attr in ci.methods:
                            return ci.methods[f.attr]
                        # single-level inheritance within the submission
                        for base in ci.node.bases:
                            if isinstance(base, ast.Name):
                                for bci in self.classes.get(base.id, []):
                                    if f.attr in bci.methods:
                                        return bci.methods[f.attr]
                return None
            if f.attr in _AMBIGUOUS_METHODS:
                return None
            cands = self.methods_by_name.get(f.attr, [])
            if len(cands) == 1 and not (f.attr.startswith("__") and f.attr.endswith("__")):
                return cands[0]
        return None

    def resolve_name(
        self, name: str, file: str, caller: FunctionInfo | None
    ) -> FunctionInfo | None:
        # nested function defined in the caller (closures such as `def _build_opt`)
        if caller is not None:
            nested = self.functions.get(f"{caller.qualname}.{name}")
            if nested is not None:
                return nested
        cands = self.by_name.get(name, [])
        for c in cands:
            if c.file == file and "." not in c.qualname.split(":", 1)[1]:
                return c
        top = [c for c in cands if "." not in c.qualname.split(":", 1)[1]]
        if top:
            return top[0]
        classes = self.classes.get(name)
        if classes:
            init = classes[0].methods.get("__init__")
            if init is not None:
                return init
        return None

    def class_init(self, name: str) -> FunctionInfo | None:
        classes = self.classes.get(name)
        if classes:
            return classes[0].methods.get("__init__")
        return None

    def iter_functions(self) -> Iterator[FunctionInfo]:
        return iter(self.functions.values())

    def info_for_node(self, node: FuncNode) -> FunctionInfo | None:
        return self.by_node.get(id(node))

"""Evaluate configuration guards (`if args.ttt_enabled:`) against the effective configuration.

Optional paths are switched by environment variables read in a Hyperparameters class,
module constants or local variables. A guard is evaluated with a small three-valued
interpreter over the AST (never `eval`): a value comes from `ctx.config` (the logged
hyperparameter dump, upper-cased keys, or the README command's env assignments) when the key
is there, else from the default written in the code, and then the key is recorded as
*assumed* so findings can say the judgement rests on a default.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audit import astcache

UNKNOWN: Any = object()

_ENV_GETTERS = {"get", "getenv"}
_CMP: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_BIN: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def parse_value(text: str) -> Any:
    """A logged/config value as Python: True/False/None/int/float, else the stripped string."""
    s = text.strip().strip("'\"")
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


def _to_int(v: str) -> int:
    try:
        return int(v)
    except ValueError:
        return int(float(v))


@dataclass
class GuardResult:
    """Value of a guard: True/False, or None when it cannot be decided statically."""

    value: bool | None
    assumed: tuple[str, ...] = ()  # config keys whose code default was used
    used: tuple[str, ...] = ()  # config keys read from the effective configuration


@dataclass
class _Eval:
    assumed: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)


class ConfigEvaluator:
    """Evaluates expressions of a submission under an effective configuration."""

    def __init__(self, trees: Mapping[str, ast.Module], config: Mapping[str, str]) -> None:
        self.config = {k.upper(): v for k, v in config.items()}
        # attribute name -> defining expression (class bodies, `self.x = ...` in __init__)
        self.attr_defs: dict[str, ast.expr] = {}
        self.module_defs: dict[str, ast.expr] = {}
        for tree in trees.values():
            self._collect(tree)
        self._stack: set[str] = set()

    def _collect(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                t = stmt.targets[0]
                if isinstance(t, ast.Name):
                    self.module_defs.setdefault(t.id, stmt.value)
            elif (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and stmt.value is not None
            ):
                self.module_defs.setdefault(stmt.target.id, stmt.value)
        for node in astcache.walk(tree):
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign):
                        for t in stmt.targets:
                            if isinstance(t, ast.Name):
                                self.attr_defs.setdefault(t.id, stmt.value)
                    elif (
                        isinstance(stmt, ast.AnnAssign)
                        and isinstance(stmt.target, ast.Name)
                        and stmt.value is not None
                    ):
                        self.attr_defs.setdefault(stmt.target.id, stmt.value)
                    elif isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
                        for sub in astcache.walk(stmt):
                            if isinstance(sub, ast.Assign) and len(sub.targets) == 1:
                                t = sub.targets[0]
                                if (
                                    isinstance(t, ast.Attribute)
                                    and isinstance(t.value, ast.Name)
                                    and t.value.id == "self"
                                ):
                                    self.attr_defs.setdefault(t.attr, sub.value)

    # ------------------------------------------------------------------ public

    def guard(
        self, test: ast.expr, local_defs: Mapping[str, ast.expr] | None = None
    ) -> GuardResult:
        st = _Eval()
        try:
            val = self._ev(test, st, local_defs or {})
        except Exception:
            val = UNKNOWN
        if val is UNKNOWN:
            return GuardResult(None, tuple(sorted(st.assumed)), tuple(sorted(st.used)))
        try:
            b = bool(val)
        except Exception:
            return GuardResult(None, tuple(sorted(st.assumed)), tuple(sorted(st.used)))
        return GuardResult(b, tuple(sorted(st.assumed)), tuple(sorted(st.used)))

    def value_of(self, expr: ast.expr, local_defs: Mapping[str, ast.expr] | None = None) -> Any:
        try:
            return self._ev(expr, _Eval(), local_defs or {})
        except Exception:
            return UNKNOWN

    def attr_value(self, name: str) -> Any:
        return self._attr(name, _Eval())

    # ------------------------------------------------------------------ interpreter

    def _lookup_key(self, key: str, st: _Eval) -> Any:
        k = key.upper()
        if k in self.config:
            st.used.add(k)
            return parse_value(self.config[k])
        return UNKNOWN

    def _attr(self, name: str, st: _Eval) -> Any:
        v = self._lookup_key(name, st)
        if v is not UNKNOWN:
            return v
        expr = self.attr_defs.get(name)
        if expr is None or name in self._stack:
            return UNKNOWN
        self._stack.add(name)
        try:
            return self._ev(expr, st, {})
        finally:
            self._stack.discard(name)

    def _name(self, name: str, st: _Eval, local: Mapping[str, ast.expr]) -> Any:
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
        expr = local.get(name)
        key = f"local:{name}"
        if expr is not None and key not in self._stack:
            self._stack.add(key)
            try:
                return self._ev(expr, st, {})
            finally:
                self._stack.discard(key)
        if name.isupper():
            v = self._lookup_key(name, st)
            if v is not UNKNOWN:
                return v
        expr = self.module_defs.get(name)
        key = f"module:{name}"
        if expr is not None and key not in self._stack:
            self._stack.add(key)
            try:
                return self._ev(expr, st, {})
            finally:
                self._stack.discard(key)
        return UNKNOWN

    def _env(self, args: list[ast.expr], st: _Eval, local: Mapping[str, ast.expr]) -> Any:
        if not args:
            return UNKNOWN
        key = self._ev(args[0], st, local)
        if not isinstance(key, str):
            return UNKNOWN
        k = key.upper()
        if k in self.config:
            st.used.add(k)
            return self.config[k]
        st.assumed.add(k)
        if len(args) > 1:
            return self._ev(args[1], st, local)
        return None

    def _ev(self, e: ast.expr, st: _Eval, local: Mapping[str, ast.expr]) -> Any:
        if isinstance(e, ast.Constant):
            return e.value
        if isinstance(e, ast.Name):
            return self._name(e.id, st, local)
        if isinstance(e, ast.Attribute):
            if isinstance(e.value, ast.Attribute) and e.value.attr == "environ":
                return UNKNOWN
            return self._attr(e.attr, st)
        if isinstance(e, ast.Subscript):
            # os.environ["KEY"]
            if isinstance(e.value, ast.Attribute) and e.value.attr == "environ":
                return self._env([e.slice], st, local)
            return UNKNOWN
        if isinstance(e, ast.Call):
            f = e.func
            if isinstance(f, ast.Attribute) and f.attr in _ENV_GETTERS:
                base = f.value
                is_env = (isinstance(base, ast.Attribute) and base.attr == "environ") or (
                    isinstance(base, ast.Name) and base.id in ("os", "environ")
                )
                if is_env:
                    return self._env(e.args, st, local)
            if isinstance(f, ast.Name) and f.id == "getattr" and len(e.args) >= 2:
                name = self._ev(e.args[1], st, local)
                if not isinstance(name, str):
                    return UNKNOWN
                v = self._attr(name, st)
                if v is UNKNOWN and len(e.args) > 2:
                    return self._ev(e.args[2], st, local)
                return v
            if isinstance(f, ast.Name) and f.id in ("int", "float", "bool", "str") and e.args:
                v = self._ev(e.args[0], st, local)
                if v is UNKNOWN:
                    return UNKNOWN
                if f.id == "bool" and isinstance(v, str):
                    return bool(v)
                if f.id == "int" and isinstance(v, str):
                    if v.strip().lower() in ("true", "false"):  # a logged Python bool
                        return int(v.strip().lower() == "true")
                    if not v.strip().lstrip("-").replace(".", "", 1).isdigit():
                        return UNKNOWN
                    return int(float(v))
                if f.id == "int" and isinstance(v, bool):
                    return int(v)
                return {"int": int, "float": float, "bool": bool, "str": str}[f.id](v)
            if isinstance(f, ast.Attribute) and f.attr in ("lower", "upper", "strip"):
                v = self._ev(f.value, st, local)
                if isinstance(v, str):
                    return getattr(v, f.attr)()
                return UNKNOWN
            if isinstance(f, ast.Name) and f.id in ("_env_bool", "env_bool", "_bool_env", "_flag"):
                v = self._env(e.args, st, local)
                if isinstance(v, str):
                    return v.strip().lower() in ("1", "true", "yes", "on")
                return v
            return UNKNOWN
        if isinstance(e, ast.UnaryOp):
            v = self._ev(e.operand, st, local)
            if v is UNKNOWN:
                return UNKNOWN
            if isinstance(e.op, ast.Not):
                return not v
            if isinstance(e.op, ast.USub):
                return -v
            return UNKNOWN
        if isinstance(e, ast.BoolOp):
            vals = [self._ev(v, st, local) for v in e.values]
            if isinstance(e.op, ast.And):
                if any(v is not UNKNOWN and not v for v in vals):
                    return False
                if any(v is UNKNOWN for v in vals):
                    return UNKNOWN
                return vals[-1]
            if any(v is not UNKNOWN and v for v in vals):
                return next(v for v in vals if v is not UNKNOWN and v)
            if any(v is UNKNOWN for v in vals):
                return UNKNOWN
            return vals[-1]
        if isinstance(e, ast.Compare):
            left = self._ev(e.left, st, local)
            for op, comp in zip(e.ops, e.comparators):
                right = self._ev(comp, st, local)
                if left is UNKNOWN or right is UNKNOWN or type(op) not in _CMP:
                    return UNKNOWN
                if not _CMP[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(e, ast.BinOp) and type(e.op) in _BIN:
            a, b = self._ev(e.left, st, local), self._ev(e.right, st, local)
            if a is UNKNOWN or b is UNKNOWN:
                return UNKNOWN
            return _BIN[type(e.op)](a, b)
        if isinstance(e, ast.Tuple | ast.List | ast.Set):
            vals = [self._ev(x, st, local) for x in e.elts]
            if any(v is UNKNOWN for v in vals):
                return UNKNOWN
            return tuple(vals)
        if isinstance(e, ast.IfExp):
            t = self._ev(e.test, st, local)
            if t is UNKNOWN:
                return UNKNOWN
            return self._ev(e.body if t else e.orelse, st, local)
        if isinstance(e, ast.JoinedStr):
            parts = []
            for v in e.values:
                if isinstance(v, ast.Constant):
                    parts.append(str(v.value))
                elif isinstance(v, ast.FormattedValue):
                    x = self._ev(v.value, st, local)
                    if x is UNKNOWN:
                        return UNKNOWN
                    parts.append(str(x))
            return "".join(parts)
        return UNKNOWN

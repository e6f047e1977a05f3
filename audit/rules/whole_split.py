"""PG702 (C4, also C3): a count table filled from the whole validation split, then used to score.

A cache or n-gram table built in one go from *every* validation token (`np.add.at(full,
(val[:-1], val[1:]), 1)`, or `cache.build_full(val_np)` outside any chunk loop) and then read
to score those same positions means each token is scored with statistics that already contain
it: a second pass over the split whose result replaces the model's own pass (C4), with future
tokens visible (C3). Online caches updated chunk by chunk after scoring, and prefills bounded
by a position (tokens earlier ranks already scored), do not match.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import TYPE_CHECKING

from audit.flow.adapt import _count_update_data, _direct_scoring, val_count_updates
from audit.flow.index import FunctionInfo
from audit.model import Finding, Rule, Severity, register
from audit.phases import EVAL, UNKNOWN, analyze
from audit.pyast import walk_no_defs

if TYPE_CHECKING:
    from audit.context import AuditContext
    from audit.phases import PhaseModel

# conversions that keep the whole array (`val_tokens.numpy().astype(np.int64)`)
_WHOLE_CALLS = frozenset(
    {
        "numpy",
        "astype",
        "cpu",
        "to",
        "long",
        "int",
        "view",
        "reshape",
        "flatten",
        "ravel",
        "contiguous",
        "copy",
        "clone",
        "asarray",
        "array",
        "as_tensor",
        "tolist",
        "detach",
    }
)


def _small_const(node: ast.AST | None) -> bool:
    if node is None:
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, int) and node.value <= 16


_LOADERS = frozenset({"fromfile", "memmap", "load", "cat", "concatenate", "from_numpy", "tensor"})


def _assigned(scope: ast.AST, name: str) -> list[ast.AST] | None:
    """Values bound to `name` in `scope` (None when it is bound otherwise: loop, with, tuple)."""
    out: list[ast.AST] = []
    nodes = walk_no_defs(scope)
    for n in nodes:
        if isinstance(n, ast.Assign):
            for t in n.targets:
                if isinstance(t, ast.Name) and t.id == name:
                    out.append(n.value)
                elif any(isinstance(e, ast.Name) and e.id == name for e in ast.walk(t)):
                    return None
        elif isinstance(n, ast.AnnAssign | ast.AugAssign | ast.For | ast.withitem):
            target = n.optional_vars if isinstance(n, ast.withitem) else n.target
            if any(isinstance(e, ast.Name) and e.id == name for e in ast.walk(target or n)):
                return None
    return out


def _whole(
    pm: PhaseModel, node: ast.AST, fn: FunctionInfo | None, file: str, depth: int = 0
) -> bool:
    """The complete validation array, up to conversions and constant-bound shifts
    (`val_np[1:]`): names are resolved through their assignments and, for parameters,
    through the call sites (outside any loop) that bind them."""
    if depth > 6:
        return False
    if isinstance(node, ast.Name):
        if fn is not None and node.id in fn.params:
            return _param_whole(pm, fn, node.id, depth + 1)
        scope = fn.node if fn is not None else pm.index.trees.get(file)
        values = _assigned(scope, node.id) if scope is not None else None
        if fn is not None and values == []:  # a module-level name read in a function
            return _whole(pm, node, None, file, depth + 1)
        return bool(values) and all(_whole(pm, v, fn, file, depth + 1) for v in values)
    if isinstance(node, ast.Tuple):
        return bool(node.elts) and all(_whole(pm, e, fn, file, depth) for e in node.elts)
    if isinstance(node, ast.Subscript):
        sl = node.slice
        return (
            isinstance(sl, ast.Slice)
            and _small_const(sl.lower)
            and _small_const(sl.upper)
            and sl.step is None
            and _whole(pm, node.value, fn, file, depth + 1)
        )
    if isinstance(node, ast.Attribute):  # `self.val_tokens`, `val_data.tokens`
        return node.attr not in ("shape", "size", "T") and isinstance(node.value, ast.Name)
    if isinstance(node, ast.Call):
        f = node.func
        short = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        if short in _LOADERS or "load" in short.lower():
            return True
        if short not in _WHOLE_CALLS:
            return False
        if isinstance(f, ast.Attribute) and short in ("asarray", "array", "as_tensor"):
            return bool(node.args) and _whole(pm, node.args[0], fn, file, depth + 1)
        if isinstance(f, ast.Attribute):  # method chain on the array
            return _whole(pm, f.value, fn, file, depth + 1)
        return bool(node.args) and _whole(pm, node.args[0], fn, file, depth + 1)
    return False


def _bound_arg(call: ast.Call, fn: FunctionInfo, name: str) -> ast.AST | None:
    for k in call.keywords:
        if k.arg == name:
            return k.value
    params = list(fn.params)
    pos = params.index(name)
    if params[:1] in (["self"], ["cls"]) and isinstance(call.func, ast.Attribute):
        pos -= 1
    return call.args[pos] if 0 <= pos < len(call.args) else None


def _param_whole(pm: PhaseModel, fn: FunctionInfo, name: str, depth: int) -> bool:
    for tc in pm.val.callers_with_taint(fn):
        arg = _bound_arg(tc.call, fn, name)
        if arg is None or isinstance(arg, ast.Starred) or not pm.is_val(arg):
            continue
        stop = tc.caller.node if tc.caller else None
        if _in_loop(pm, tc.call, stop):
            continue
        file = tc.caller.file if tc.caller else pm._file_of(tc.call)
        if _whole(pm, arg, tc.caller, file, depth + 1):
            return True
    return False


def _in_loop(pm: PhaseModel, node: ast.AST, stop: ast.AST | None) -> bool:
    cur = pm.index.parent.get(id(node))
    while cur is not None and cur is not stop:
        if isinstance(cur, ast.For | ast.AsyncFor | ast.While | ast.comprehension):
            return True
        if isinstance(cur, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return False
        cur = pm.index.parent.get(id(cur))
    return False


def _holders(call: ast.AST, pm: PhaseModel) -> set[str]:
    """Names that hold the built table after `call`: its receiver object or assigned names."""
    out: set[str] = set()
    if isinstance(call, ast.Call):
        f = call.func
        base = f.value if isinstance(f, ast.Attribute) else None
        while isinstance(base, ast.Attribute | ast.Subscript):
            base = base.value
        if isinstance(base, ast.Name) and base.id not in ("np", "torch", "numpy"):
            out.add(base.id)
        if getattr(f, "attr", "") == "at" and call.args:  # np.add.at(table, keys, 1)
            t = call.args[0]
            while isinstance(t, ast.Subscript):
                t = t.value
            if isinstance(t, ast.Name):
                out.add(t.id)
    parent = pm.index.parent.get(id(call))
    if isinstance(parent, ast.Assign):
        out.update(t.id for t in parent.targets if isinstance(t, ast.Name))
    if isinstance(call, ast.AugAssign):
        t = call.target
        while isinstance(t, ast.Subscript):
            t = t.value
        if isinstance(t, ast.Name):
            out.add(t.id)
    return out


def _read_later(scope: ast.AST, names: set[str], line: int) -> bool:
    """A later statement of `scope` reads one of `names` (the table is used to score)."""
    for n in ast.walk(scope):
        if (
            isinstance(n, ast.Name)
            and n.id in names
            and isinstance(n.ctx, ast.Load)
            and getattr(n, "lineno", 0) > line
        ):
            return True
    return False


def _delegated(
    pm: PhaseModel, fn: FunctionInfo, depth: int = 0
) -> Iterator[tuple[ast.Call, FunctionInfo | None]]:
    """Calls outside any loop that hand the whole validation array to a table-building
    function (no scoring inside), directly or through builder functions above it."""
    if depth > 2 or _direct_scoring(fn.node):
        return
    for tc in pm.val.callers_with_taint(fn):
        call, caller = tc.call, tc.caller
        stop = caller.node if caller else None
        file = caller.file if caller else pm._file_of(call)
        args = [*call.args, *(k.value for k in call.keywords)]
        whole = any(pm.is_val(a) and _whole(pm, a, caller, file) for a in args)
        if whole and not _in_loop(pm, call, stop):
            yield call, caller
        elif caller is not None and not whole:
            yield from _delegated(pm, caller, depth + 1)


def _is_count(node: ast.AST) -> bool:
    """A count increment (`t[k] += 1`, `t += np.bincount(k)`, `np.add.at`), not arithmetic
    on probabilities that happens to write into an array."""
    if isinstance(node, ast.AugAssign):
        v = node.value
        return isinstance(v, ast.Constant) or any(
            isinstance(c, ast.Call)
            and getattr(c.func, "attr", getattr(c.func, "id", "")) == "bincount"
            for c in ast.walk(v)
        )
    return True


@register
class WholeSplitTable(Rule):
    """A count table filled from the whole validation split, then used to score it.

    ## What it does
    Finds cache or n-gram count tables filled in one go from every validation token, either
    inline (`np.add.at(table, (val[:-1], val[1:]), 1)`, `np.bincount(val)`) or by handing the
    complete validation array to a table-building function outside any chunk loop
    (`cache.build_full(val_np)`), when the table is read afterwards (to score).

    ## Why is this bad?
    Every position is then scored with statistics that already contain that very token and
    the tokens after it: a second pass over the validation set whose result replaces the
    model's own (C4), and adaptation on tokens before they are scored (C3). "Leave-one-out"
    corrections (subtracting one count) do not make the table causal.

    ## Illegal example
    ```python
    import math
    import numpy as np

    val_np = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16).astype(np.int64)


    def evaluate(val_np):
        ctx = np.zeros(1024)
        full = np.zeros((1024, 1024))
        np.add.at(ctx, val_np[:-1], 1)
        np.add.at(full, (val_np[:-1], val_np[1:]), 1)
        nll_sum = 0.0
        for i in range(1, len(val_np)):
            nll_sum += -np.log(full[val_np[i - 1], val_np[i]] / max(ctx[val_np[i - 1]], 1))
        return nll_sum / math.log(2)


    if __name__ == "__main__":
        print(evaluate(val_np))
    ```

    ## Legal example
    ```python
    import math
    import numpy as np

    val_np = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16).astype(np.int64)


    def evaluate(val_np):
        ctx = np.ones(1024)
        full = np.ones((1024, 1024)) / 1024
        nll_sum = 0.0
        for i in range(1, len(val_np)):
            nll_sum += -np.log(full[val_np[i - 1], val_np[i]] / ctx[val_np[i - 1]])
            full[val_np[i - 1], val_np[i]] += 1
            ctx[val_np[i - 1]] += 1
        return nll_sum / math.log(2)


    if __name__ == "__main__":
        print(evaluate(val_np))
    ```

    ## References
    - RULES.md C4 and C3 (docs/rules.md); docs/auditor-heldout.md (M5)
    """

    id = "PG702"
    name = "whole-split-table"
    condition = "C4"
    severity = Severity.ERROR
    message = (
        "table filled from the whole validation split and then read to score it, in"
        " `{func}` (second pass with future tokens visible; C4, C3)"
    )

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        pm = analyze(ctx)
        seen: set[int] = set()
        for upd in val_count_updates(pm):
            if upd.phases and not (upd.phases & {EVAL, UNKNOWN}):
                continue  # training-phase tables are R4's business (PG303)
            data = _count_update_data(upd.node)
            sites: list[tuple[ast.AST, FunctionInfo | None, str]] = []
            stop = upd.func.node if upd.func else None
            if not _in_loop(pm, upd.node, stop) and any(
                pm.is_val(d) and _whole(pm, d, upd.func, upd.file) for d in data
            ):
                sites.append((upd.node, upd.func, upd.file))
            elif upd.func is not None and _is_count(upd.node):
                for call, caller in _delegated(pm, upd.func):
                    sites.append((call, caller, caller.file if caller else upd.file))
            for node, fn, file in sites:
                if id(node) in seen:
                    continue
                holder_scope = fn.node if fn else pm.index.trees.get(file)
                line = getattr(node, "end_lineno", None) or getattr(node, "lineno", 0)
                if holder_scope is None or not _read_later(holder_scope, _holders(node, pm), line):
                    continue
                seen.add(id(node))
                func = fn.name if fn else "<module>"
                ln = getattr(node, "lineno", 0)
                yield self.finding(
                    file=file,
                    line=ln,
                    function=func,
                    evidence=pm.line_text(file, ln),
                    func=func,
                )

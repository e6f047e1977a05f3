"""Where validation data drives adaptation, and whether the adapted tokens were scored first.

Shared by the data-separation (PG3xx) and score-before-update (PG6xx) rules:

- `val_updates(pm)`: every `loss.backward()` / `torch.autograd.grad(loss, ...)` whose loss
  carries validation data, with its phases and reachability.
- `scored_first(pm, node)`: the legal test-time-training shape. Walking out from the update
  (through enclosing loops, then through the call sites that pass validation data in), some
  loop must hold, *before* the statement that leads to the update, a statement that scores:
  accumulates a loss/nll/bpb total, directly or through a submission function that does.
  A loop of epochs around that loop (the same chunks scored again after being trained on)
  makes it illegal again.
- `is_slot(pm, node)`: the update optimises a fresh tensor (a SLOT-style delta) rather than
  model or adapter weights.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from audit import astcache
from audit.flow.index import FunctionInfo
from audit.flow.taint import _body_nodes

_SCORE_TARGET = re.compile(r"loss|nll|bpb|bits|score|logp|nats|entropy|(^|_)ce($|_)", re.I)
_LOSS_FUNCS = frozenset({"cross_entropy", "nll_loss"})
_EPOCH = re.compile(r"epoch|(^|_)ep($|_)|pass(es)?$", re.I)
_FRESH = frozenset({"zeros", "zeros_like", "randn", "randn_like", "empty", "full", "ones", "rand"})
_OPTIMIZERS = re.compile(r"(^|\.)(SGD|Adam|AdamW|RMSprop|Adagrad|LBFGS|Muon|Lion)$")


@dataclass(frozen=True)
class Update:
    """A gradient update driven by validation data."""

    node: ast.Call  # the backward()/autograd.grad call
    loss: ast.expr
    func: FunctionInfo | None
    file: str
    phases: frozenset[str]
    reached: bool = True  # False: present and called, but off under the logged config


def _is_backward(call: ast.Call) -> ast.expr | None:
    f = call.func
    if isinstance(f, ast.Attribute) and f.attr == "backward":
        return f.value
    if isinstance(f, ast.Attribute) and f.attr == "grad" and call.args:
        base = astcache.unparse(f.value)
        if base.endswith("autograd"):
            return call.args[0]
    return None


def _referenced(pm) -> set[str]:
    """Names of functions that some code calls or hands over as an argument."""
    if "referenced" in pm.memo:
        return pm.memo["referenced"]
    names: set[str] = set()
    roots = [*pm.index.trees.values(), *(fn.node for fn in pm.index.iter_functions())]
    for root in roots:
        for n in pm.val._parts(root)[1]:
            f = n.func
            names.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
            names.update(a.id for a in n.args if isinstance(a, ast.Name))
    pm.memo["referenced"] = names
    return names


def val_updates(pm, *, include_off: bool = False) -> list[Update]:
    """Val-driven updates that run; with include_off, also those the config switches off."""
    key = f"val_updates:{include_off}"
    if key not in pm.memo:
        pm.memo[key] = _val_updates(pm, include_off)
    return list(pm.memo[key])


def _val_updates(pm, include_off: bool) -> list[Update]:
    out: list[Update] = []
    referenced = _referenced(pm) if include_off else set()
    for file, tree in pm.index.trees.items():  # module-level scripts
        for node in pm.val._parts(tree)[1]:
            loss = _is_backward(node)
            if loss is None or not pm.val.tainted_in(loss, None, file):
                continue
            if pm.is_reached(node):
                out.append(Update(node, loss, None, file, pm.phases_of(node)))
    for fn in pm.index.iter_functions():
        for node in pm.val._parts(fn.node)[1]:
            loss = _is_backward(node)
            if loss is None or not pm.val.tainted_in(loss, fn, fn.file):
                continue
            if not pm.is_reached(node):
                if include_off and fn.name in referenced:
                    out.append(Update(node, loss, fn, fn.file, frozenset(), reached=False))
                continue
            out.append(Update(node, loss, fn, fn.file, pm.phases_of(node)))
    return out


# ---------------------------------------------------------------------- scoring statements


def _target_text(t: ast.expr) -> str:
    while isinstance(t, ast.Subscript):
        t = t.value
    if isinstance(t, ast.Attribute):
        return t.attr
    return t.id if isinstance(t, ast.Name) else ""


def _scored_value(value: ast.AST) -> bool:
    """`total += mixed_nll(...)` / `total += F.cross_entropy(...)`: a loss added to a total
    whatever the total is called."""
    for n in astcache.walk(value):
        if isinstance(n, ast.Call):
            f = n.func
            name = (
                f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            )
            if name in _LOSS_FUNCS or (name and _SCORE_TARGET.search(name)):
                return True
    return False


def _direct_scoring(node: ast.AST) -> bool:
    for n in astcache.walk(node):
        if isinstance(n, ast.AugAssign) and isinstance(n.op, ast.Add | ast.Sub):
            if _SCORE_TARGET.search(_target_text(n.target)) or _scored_value(n.value):
                return True
        elif (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in ("append", "extend", "add_", "index_add_")
            and _SCORE_TARGET.search(_target_text(n.func.value))
        ):
            return True
    return False


def _is_scoring(pm, node: ast.AST, fn: FunctionInfo | None, depth: int = 0) -> bool:
    if _direct_scoring(node):
        return True
    if depth >= 3:
        return False
    file = fn.file if fn else pm._file_of(node)
    for n in astcache.walk(node):
        if isinstance(n, ast.Call):
            callee = pm.index.resolve_call(n, file, fn)
            if callee is not None and callee is not fn:
                body = ast.Module(body=list(callee.node.body), type_ignores=[])
                if _is_scoring(pm, body, callee, depth + 1):
                    return True
    return False


# ---------------------------------------------------------------------- loops


def _ancestors(pm, node: ast.AST, stop: ast.AST | None) -> list[ast.AST]:
    out: list[ast.AST] = []
    cur = pm.index.parent.get(id(node))
    while cur is not None and cur is not stop:
        out.append(cur)
        cur = pm.index.parent.get(id(cur))
    return out


def _child_in(pm, loop: ast.AST, node: ast.AST) -> ast.stmt | None:
    """The statement of `loop.body` that contains `node`."""
    cur: ast.AST | None = node
    body = getattr(loop, "body", [])
    while cur is not None:
        if any(cur is s for s in body):
            return cur  # type: ignore[return-value]
        cur = pm.index.parent.get(id(cur))
    return None


def _epoch_like(loop: ast.AST) -> bool:
    if isinstance(loop, ast.For | ast.AsyncFor):
        target = astcache.unparse(loop.target)
        return bool(_EPOCH.search(target) or _EPOCH.search(astcache.unparse(loop.iter)))
    return False


def _loop_score_first(pm, node: ast.AST, fn: FunctionInfo | None) -> str | None:
    """'legal' / 'epochs' if some enclosing loop of fn scores before `node`, else None."""
    stop = fn.node if fn else None
    anc = _ancestors(pm, node, stop)
    loops = [a for a in anc if isinstance(a, ast.For | ast.AsyncFor | ast.While)]
    for i, loop in enumerate(loops):
        child = _child_in(pm, loop, node)
        if child is None:
            continue
        before = []
        for s in loop.body:  # type: ignore[attr-defined]
            if s is child:
                break
            before.append(s)
        scoring = [s for s in before if _is_scoring(pm, s, fn)]
        if not scoring:
            continue
        outer = loops[i + 1 :]
        loopvars = {
            n.id
            for o in outer
            if isinstance(o, ast.For | ast.AsyncFor)
            for n in astcache.walk(o.target)
            if isinstance(n, ast.Name)
        }
        guarded_by_outer = any(
            isinstance(n, ast.Name) and n.id in loopvars
            for s in scoring
            for g in astcache.walk(s)
            if isinstance(g, ast.If)
            for n in astcache.walk(g.test)
        )
        if any(_epoch_like(o) for o in outer) or guarded_by_outer or _epoch_like(loop):
            return "epochs"
        return "legal"
    return None


def scored_first(pm, node: ast.AST, fn: FunctionInfo | None, depth: int = 0) -> str:
    """'legal', 'epochs' (re-scored after multi-epoch adaptation) or 'adapt-first'."""
    verdict = _loop_score_first(pm, node, fn)
    if verdict is not None:
        return verdict
    if depth == 0 and _context_positions_only(pm, node, fn):
        return "legal"
    if fn is None or depth >= 6:
        return "adapt-first"
    callers = [c for c in pm.val.callers_with_taint(fn) if pm.is_reached(c.call)]
    results = [scored_first(pm, c.call, c.caller, depth + 1) for c in callers]
    if "legal" in results:
        return "legal"
    if "epochs" in results:
        return "epochs"
    return "adapt-first"


def _slice_bounds(e: ast.AST) -> tuple[set[str], set[str]]:
    """Texts of the `s` in `x[:s]` (prefix) and `x[s:]` (suffix) slices inside `e`."""
    prefix: set[str] = set()
    suffix: set[str] = set()
    for n in astcache.walk(e):
        if isinstance(n, ast.Subscript):
            parts = n.slice.elts if isinstance(n.slice, ast.Tuple) else [n.slice]
            for sl in parts:
                if isinstance(sl, ast.Slice):
                    if sl.lower is None and sl.upper is not None:
                        prefix.add(astcache.unparse(sl.upper))
                    elif sl.lower is not None:
                        suffix.add(astcache.unparse(sl.lower))
    return prefix, suffix


def _context_positions_only(pm, node: ast.AST, fn: FunctionInfo | None) -> bool:
    """Adaptation on the context part of a sliding window (`loss(logits[:s], y[:s])`, tokens
    scored by earlier windows) while the window scores only `[s:]` after it."""
    if fn is None:
        return False
    loss = _is_backward(node) if isinstance(node, ast.Call) else None
    if loss is None:
        return False
    defs: dict[str, list[ast.AST]] = {}
    for n in _body_nodes(fn.node):
        if isinstance(n, ast.Assign):
            for t in n.targets:
                if isinstance(t, ast.Name):
                    defs.setdefault(t.id, []).append(n.value)
    seen: list[ast.AST] = [loss]
    for n in list(astcache.walk(loss)):
        if isinstance(n, ast.Name):
            seen.extend(defs.get(n.id, []))
    prefix: set[str] = set()
    for e in seen:
        prefix |= _slice_bounds(e)[0]
    if not prefix:
        return False
    for n in _body_nodes(fn.node):
        if (
            isinstance(n, ast.AugAssign)
            and getattr(n, "lineno", 0) > node.lineno  # type: ignore[attr-defined]
            and _SCORE_TARGET.search(_target_text(n.target))
        ):
            values: list[ast.AST] = [n.value]
            for x in astcache.walk(n.value):
                if isinstance(x, ast.Name):
                    values.extend(defs.get(x.id, []))
            if any(prefix & _slice_bounds(v)[1] for v in values):
                return True
    return False


# ---------------------------------------------------------------------- what is adapted


def _optimizer_params(fn: FunctionInfo) -> list[ast.expr]:
    out: list[ast.expr] = []
    for n in _body_nodes(fn.node):
        if isinstance(n, ast.Call):
            name = astcache.unparse(n.func)
            if _OPTIMIZERS.search(name) and (n.args or n.keywords):
                out.append(n.args[0] if n.args else n.keywords[0].value)
    return out


def _fresh_tensor_names(fn: FunctionInfo) -> set[str]:
    names: set[str] = set()
    for n in _body_nodes(fn.node):
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call):
            text = astcache.unparse(n.value)
            short = astcache.unparse(n.value.func).rsplit(".", 1)[-1]
            fresh = short in _FRESH and "requires_grad" in text
            fresh = fresh or (short == "Parameter" and any(f in text for f in _FRESH))
            if fresh:
                names.update(t.id for t in n.targets if isinstance(t, ast.Name))
    return names


def is_slot(fn: FunctionInfo | None) -> bool:
    """The function optimises freshly created tensors (a SLOT-style delta)."""
    if fn is None:
        return False
    fresh = _fresh_tensor_names(fn)
    if not fresh:
        return False
    for p in _optimizer_params(fn):
        used = {n.id for n in astcache.walk(p) if isinstance(n, ast.Name)}
        if used & fresh:
            return True
    return False


def is_throwaway(fn: FunctionInfo | None, node: ast.AST) -> bool:
    """Adaptation whose result is discarded (compile warm-ups): the adapted object is deleted,
    or the weights are restored with load_state_dict after the update."""
    if fn is None:
        return False
    line = getattr(node, "lineno", 0)
    owners: set[str] = set()
    for p in _optimizer_params(fn):
        for n in astcache.walk(p):
            if isinstance(n, ast.Name):
                owners.add(n.id)
                break
    deleted: set[str] = set()
    restored = False
    nodes = _body_nodes(fn.node)
    # snapshots taken before the update: `initial = {k: v.clone() for k, v in m.state_dict()...}`
    snapshots = {
        t.id
        for n in nodes
        if isinstance(n, ast.Assign)
        and getattr(n, "lineno", 0) < line
        and "state_dict()" in astcache.unparse(n.value)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    for n in nodes:
        if isinstance(n, ast.Delete):
            deleted.update(t.id for t in n.targets if isinstance(t, ast.Name))
        elif (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "load_state_dict"
            and getattr(n, "lineno", 0) > line
            and n.args
            and isinstance(n.args[0], ast.Name)
            and n.args[0].id in snapshots
        ):
            restored = True  # weights put back from the snapshot: a warm-up
    if restored or bool(owners and owners <= deleted):
        return True
    return _diagnostic_probe(fn, owners, line)


_MOVES = frozenset({"to", "cuda", "float", "half", "bfloat16", "requires_grad_", "train"})
_CTOR_LIKE = re.compile(r"(^|\.)(Linear|Embedding|Sequential|Parameter|[A-Z]\w*)$")


def _used_after(fn: FunctionInfo, owners: set[str], line: int) -> bool:
    """An adapted object referenced after the update other than by calling it (saved,
    exported, handed to another function, its weights read)."""
    for n in astcache.walk(fn.node):
        if isinstance(n, ast.Call) and getattr(n, "lineno", 0) > line:
            for a in [*n.args, *(k.value for k in n.keywords)]:
                called = {id(c.func) for c in astcache.walk(a) if isinstance(c, ast.Call)}
                if any(
                    isinstance(x, ast.Name) and x.id in owners and id(x) not in called
                    for x in astcache.walk(a)
                ):
                    return True
            f = n.func
            if (
                isinstance(f, ast.Attribute)
                and isinstance(f.value, ast.Name)
                and f.value.id in owners
                and f.attr not in ("zero_grad", "step", "parameters", "train", "eval")
            ):
                return True
    return False


def _diagnostic_probe(fn: FunctionInfo, owners: set[str], line: int) -> bool:
    """A probe trained on validation features to print a diagnostic: every optimised object
    is created in this function (a fresh module or tensor), is not returned or stored, and
    the function accumulates no score (nothing it trains reaches the reported metric)."""
    if not owners or _direct_scoring(fn.node):
        return False
    fresh: set[str] = set()
    for n in _body_nodes(fn.node):
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call):
            value = n.value
            # nn.Linear(...).to(device).float(): look through device/dtype moves
            while (
                isinstance(value.func, ast.Attribute)
                and value.func.attr in _MOVES
                and isinstance(value.func.value, ast.Call)
            ):
                value = value.func.value
            func = astcache.unparse(value.func)
            if _CTOR_LIKE.search(func) or func.rsplit(".", 1)[-1] in _FRESH:
                fresh.update(t.id for t in n.targets if isinstance(t, ast.Name))
    if not owners <= fresh or owners & set(fn.params):
        return False
    if _used_after(fn, owners, line):
        return False
    for n in _body_nodes(fn.node):
        if isinstance(n, ast.Return) and n.value is not None:
            if any(isinstance(x, ast.Name) and x.id in owners for x in astcache.walk(n.value)):
                return False
        elif isinstance(n, ast.Assign):
            stored = any(isinstance(t, ast.Attribute | ast.Subscript) for t in n.targets)
            if stored and any(
                isinstance(x, ast.Name) and x.id in owners for x in astcache.walk(n.value)
            ):
                return False
    return True


# ---------------------------------------------------------------------- count/statistic updates

_COUNT_CALLS = frozenset({"bincount", "Counter", "histc", "unique"})
_SCATTER_METHODS = frozenset({"index_add_", "scatter_add_", "index_put_", "put_"})


def _count_update_data(node: ast.AST) -> list[ast.expr]:
    """The data a statistics update is driven by: `bincount(x)`, `np.add.at(t, x, 1)`,
    `t.index_add_(0, x, ...)`, `t[x] += 1`."""
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Subscript):
        return [node.target.slice]
    if not isinstance(node, ast.Call):
        return []
    f = node.func
    short = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
    if short in _COUNT_CALLS and node.args:
        return [node.args[0]]
    if short == "at" and isinstance(f, ast.Attribute) and len(node.args) >= 2:
        return [node.args[1]]  # np.add.at(table, idx, 1)
    if short in _SCATTER_METHODS and len(node.args) >= 2:
        return [node.args[1] if short in ("index_add_", "scatter_add_") else node.args[0]]
    return []


@dataclass(frozen=True)
class CountUpdate:
    node: ast.AST
    func: FunctionInfo | None
    file: str
    phases: frozenset[str]
    table: str  # last name component of the updated table ("" for a fresh bincount)


def _table_of(node: ast.AST) -> str:
    """Name of the table an update writes: `T[k] += 1`, `np.add.at(T, ...)`, `T.index_add_`,
    `T = np.bincount(...)`."""
    target: ast.AST | None = None
    if isinstance(node, ast.AugAssign):
        target = node.target
    elif isinstance(node, ast.Call):
        f = node.func
        short = f.attr if isinstance(f, ast.Attribute) else ""
        if short == "at" and node.args:
            target = node.args[0]
        elif short in _SCATTER_METHODS and isinstance(f, ast.Attribute):
            target = f.value
    while isinstance(target, ast.Subscript):
        target = target.value
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def _reads_table(node: ast.AST, table: str, before: tuple[int, int]) -> bool:
    for n in astcache.walk(node):
        pos = (getattr(n, "lineno", 0), getattr(n, "col_offset", 0))
        if pos >= before:
            continue
        if isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Load):
            base = n.value
            while isinstance(base, ast.Subscript):
                base = base.value
            name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
            if name == table:
                return True
    return False


def looked_up_first(pm, upd: CountUpdate, node: ast.AST | None = None, depth: int = 0) -> bool:
    """Some loop enclosing the update reads the same table before updating it (the online,
    score-then-update cache); through val-passing call sites, a call made earlier in the
    caller's loop to a function that reads the table counts as the lookup."""
    node = node if node is not None else upd.node
    if not upd.table:
        return False
    fn = pm.index.function_of(node)
    stop = fn.node if fn else None
    pos = (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
    for loop in _ancestors(pm, node, stop):
        if not isinstance(loop, ast.For | ast.AsyncFor | ast.While):
            continue
        if _reads_table(loop, upd.table, pos):
            return True
        if depth > 0:
            file = fn.file if fn else pm._file_of(node)
            for n in astcache.walk(loop):
                if not isinstance(n, ast.Call) or (n.lineno, n.col_offset) >= pos:
                    continue
                callee = pm.index.resolve_call(n, file, fn)
                if callee is not None and _reads_table(callee.node, upd.table, (10**9, 0)):
                    return True
    if fn is None or depth >= 4:
        return False
    callers = [c for c in pm.val.callers_with_taint(fn) if pm.is_reached(c.call)]
    return any(looked_up_first(pm, upd, c.call, depth + 1) for c in callers)


def val_count_updates(pm) -> list[CountUpdate]:
    """Tables/counts updated from validation tokens (cache, n-gram and PPM statistics)."""
    if "val_counts" in pm.memo:
        return list(pm.memo["val_counts"])
    out: list[CountUpdate] = []
    scopes: list[tuple[ast.AST, FunctionInfo | None, str]] = [
        (tree, None, file) for file, tree in pm.index.trees.items()
    ]
    scopes += [(fn.node, fn, fn.file) for fn in pm.index.iter_functions()]
    for root, fn, file in scopes:
        flow, calls, _ = pm.val._parts(root)
        for node in [*flow, *calls]:
            data = _count_update_data(node)
            if not data or not any(pm.val.tainted_in(d, fn, file) for d in data):
                continue
            if pm.is_reached(node):
                out.append(CountUpdate(node, fn, file, pm.phases_of(node), _table_of(node)))
    pm.memo["val_counts"] = out
    return list(out)

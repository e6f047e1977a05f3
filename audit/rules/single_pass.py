"""C4 rules (PG7xx): each validation token is scored once and that score is reported.

PG701 flags rescoring (a score already accumulated for a chunk is replaced or subtracted
and recomputed, e.g. a second pass with a warm cache) and best-of selection among scores
computed on the validation data.

Best-of selection reads two kinds of score: the scoring taint (losses and target
log-probabilities in code that runs after training) and val scores: a loss computed on
validation data, or the value of a call of the model itself (`model(x, y)`) on validation data
when the model's `forward` returns a loss, followed through returns, including functions
defined inside the caller (`def eval_candidate(state): ...` in `main`).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterable, Iterator

from audit import astcache
from audit.model import Finding, Rule, Severity, register
from audit.pyast import Func, Taint, call_name, dotted, expr_text, target_names, walk_no_defs
from audit.rules._scoring import ScoringModel, analyze

_VAL_SCORES = "single_pass.val_scores"
_LOSS_CALLS = frozenset({"cross_entropy", "nll_loss", "binary_cross_entropy"})
# Library namespaces: a call through them is never the submission's model.
_LIBRARIES = frozenset({"torch", "F", "nn", "np", "numpy", "math", "dist", "functional"})


def _label(f: Func) -> str | None:
    return None if f.name == "<module>" else f.qualname


_LOOP_TYPES = frozenset({ast.For, ast.While})  # no subclasses: a type test is isinstance


def _loops(f: Func) -> list[ast.For | ast.While]:
    """The loops of `f` (listed once per function, kept on it; callers do not mutate it)."""
    hit = f.__dict__.get("_pgolf_loops")
    if hit is None:
        hit = f.__dict__["_pgolf_loops"] = [
            n for n in walk_no_defs(f.node) if type(n) in _LOOP_TYPES
        ]
    return hit


def _inside(node: ast.AST, outer: ast.AST) -> bool:
    return astcache.contains(outer, node)


def _score_writes(loop: ast.AST, model: ScoringModel, f: Func) -> Iterator[tuple[str, ast.stmt]]:
    """(container, statement) for `scores[k] = <score>` / `scores.append(<score>)` in a loop."""
    for sub in astcache.walk(loop):
        if isinstance(sub, ast.Assign) and model.tlp.is_tainted(sub.value, f):
            for t in sub.targets:
                if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
                    yield t.value.id, sub
        elif (
            isinstance(sub, ast.Expr)
            and isinstance(sub.value, ast.Call)
            and isinstance(sub.value.func, ast.Attribute)
            and sub.value.func.attr == "append"
            and isinstance(sub.value.func.value, ast.Name)
            and any(model.tlp.is_tainted(a, f) for a in sub.value.args)
        ):
            yield sub.value.func.value.id, sub


def _rescoring(f: Func, model: ScoringModel) -> Iterator[tuple[ast.stmt, str]]:
    # 1. A later, separate loop overwrites per-chunk scores written by an earlier loop.
    every = _loops(f)
    loops = [lp for lp in every if not any(o is not lp and _inside(lp, o) for o in every)]
    written: dict[str, ast.stmt] = {}
    for lp in sorted(loops, key=lambda n: n.lineno):
        here = list(_score_writes(lp, model, f))
        for name, stmt in here:
            first = written.get(name)
            if first is not None and isinstance(stmt, ast.Assign) and not _inside(first, lp):
                yield stmt, f"scores in `{name}` from the loop at line {first.lineno} are replaced"
        for name, stmt in here:
            written.setdefault(name, stmt)
    # 2. Part of an accumulated score is taken back out and replaced (`total - old + new`).
    for n in walk_no_defs(f.node):
        if isinstance(n, ast.Assign) and (_swap(n.value, model, f) or _self_swap(n, model, f)):
            yield n, "part of a score total is swapped for a rescored part (`total - old + new`)"


def _self_swap(stmt: ast.Assign, model: ScoringModel, f: Func) -> bool:
    """`total = total - old + new` in a loop: a running score total gets parts replaced."""
    expr = stmt.value
    if not (isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add)):
        return False
    left = expr.left
    if not (isinstance(left, ast.BinOp) and isinstance(left.op, ast.Sub)):
        return False
    if not (
        len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
        and isinstance(left.left, ast.Name)
        and left.left.id == stmt.targets[0].id
    ):
        return False
    old, new = left.right, expr.right
    if not all(isinstance(p, ast.Name | ast.Subscript) for p in (old, new)):
        return False
    if not _inside_loop(f, stmt):
        return False
    parts = (left.left, old, new)
    return any(model.tlp.is_tainted(p, f) or model.target.is_tainted(p, f) for p in parts)


def _swap(expr: ast.AST, model: ScoringModel, f: Func) -> bool:
    """`total - old + new` with all three parts scores of the validation data."""
    if not (isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add)):
        return False
    left = expr.left
    if not (isinstance(left, ast.BinOp) and isinstance(left.op, ast.Sub)):
        return False
    parts = [left.left, left.right, expr.right]
    if any(isinstance(p, ast.Constant) for p in parts):
        return False
    return all(model.tlp.is_tainted(p, f) for p in parts)


def _val_scores(ctx: object, model: ScoringModel) -> Taint | None:
    """Scores computed on validation data (see the module docstring), cached per audit."""
    cache = getattr(ctx, "cache", {})
    if _VAL_SCORES in cache:
        return cache[_VAL_SCORES]
    phases = model.phases
    out: Taint | None = None
    if phases is not None:
        program = model.program
        loss_forward = any(
            f.name in {"forward", "__call__"} and f.qualname in model.tlp.returns
            for f in program.funcs
        )
        memo: dict[int, bool] = {}

        def is_val(expr: ast.AST) -> bool:
            try:
                return bool(phases.is_val(expr))
            except Exception:
                return False

        def seed(expr: ast.AST, taint: Taint, f: Func) -> bool:
            if not isinstance(expr, ast.Call):
                return False
            hit = memo.get(id(expr))
            if hit is None:
                hit = memo[id(expr)] = _val_loss_call(expr, program, loss_forward, is_val)
            return hit

        # functions defined inside active ones run where they are called: include them
        only = set(model.active)
        for f in program.funcs:
            p = f.parent
            while p is not None and id(p.node) not in model.active:
                p = p.parent
            if p is not None:
                only.add(id(f.node))
        out = Taint(program, seed, only=only, kinds=(ast.Call,))
    cache[_VAL_SCORES] = out
    return out


def _val_loss_call(call: ast.Call, program: object, loss_forward: bool, is_val: object) -> bool:
    """A loss on validation data: `cross_entropy(...)` or, when a `forward` of the program
    returns a loss, a call of the model itself with inputs and targets (`model(x, y)`)."""
    args = [*call.args, *(k.value for k in call.keywords)]
    name = call_name(call)
    if name in _LOSS_CALLS:
        return any(is_val(a) for a in args)  # type: ignore[operator]
    if not loss_forward or len(call.args) < 2 or program.callees(call):  # type: ignore[attr-defined]
        return False
    # the model object itself: `model(x, y)` or `self.model(x, y)`, not a method of a value
    # (`table.get(key, 0)`), with inputs and targets both read from validation data
    func = call.func
    own = isinstance(func, ast.Name) or (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "self"
    )
    root = dotted(func) or ""
    if not own or root.split(".", 1)[0] in _LIBRARIES:
        return False
    x, y = call.args[0], call.args[1]
    if isinstance(x, ast.Constant) or isinstance(y, ast.Constant):
        return False
    return is_val(x) and is_val(y)  # type: ignore[operator]


def _scores(a: ast.AST, b: ast.AST, f: Func, model: ScoringModel, vs: Taint | None) -> bool:
    """Both sides are scores: val scores, or scores of code that does not run in training."""
    if vs is not None and vs.is_tainted(a, f) and vs.is_tainted(b, f) and _val_context(a, f, model):
        return True
    return model.tlp.is_tainted(a, f) and model.tlp.is_tainted(b, f) and not _training(a, model)


def _producing_calls(expr: ast.AST, f: Func) -> list[ast.Call]:
    """Calls of `f` whose results flow (through a few local assignments) into `expr`."""
    names = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
    calls: list[ast.Call] = [n for n in ast.walk(expr) if isinstance(n, ast.Call)]
    assigns = [n for n in walk_no_defs(f.node) if isinstance(n, ast.Assign | ast.AugAssign)]
    for _ in range(4):
        grown = False
        for n in assigns:
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            if not any(set(target_names(t)) & names for t in targets):
                continue
            for sub in ast.walk(n.value):
                if isinstance(sub, ast.Call) and sub not in calls:
                    calls.append(sub)
                    grown = True
                elif isinstance(sub, ast.Name) and sub.id not in names:
                    names.add(sub.id)
                    grown = True
        if not grown:
            break
    return calls


def _val_context(expr: ast.AST, f: Func, model: ScoringModel) -> bool:
    """The score compared here was computed on validation data in this calling context: a
    producing call takes a val argument, or calls a function defined inside `f` whose body
    reads a name that is val data in `f` (a closure over `val`). The val-score taint alone is
    context-free: a scorer called on val elsewhere and on train tokens here is not enough."""
    phases = model.phases
    if phases is None:
        return True
    calls = _producing_calls(expr, f)
    for call in calls:
        args = [*call.args, *(k.value for k in call.keywords)]
        if any(_is_val(phases, a) for a in args):
            return True
    val_names = {
        n.id
        for n in walk_no_defs(f.node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and _is_val(phases, n)
    }
    if not val_names:
        return False
    return any(_closure_reads(call, f, model, val_names, 0) for call in calls)


def _closure_reads(
    call: ast.Call, f: Func, model: ScoringModel, names: set[str], depth: int
) -> bool:
    """`call` runs a function defined inside `f` that reads one of `names` (f's val data),
    itself or through other functions defined inside `f`."""
    for g in model.program.callees(call):
        if g.parent is None or g.parent.node is not f.node:
            continue
        if any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(g.node)):
            return True
        if depth < 3:
            inner = [n for n in walk_no_defs(g.node) if isinstance(n, ast.Call)]
            if any(_closure_reads(c, f, model, names, depth + 1) for c in inner):
                return True
    return False


def _is_val(phases: object, expr: ast.AST) -> bool:
    try:
        return bool(phases.is_val(expr))  # type: ignore[attr-defined]
    except Exception:
        return False


def _training(node: ast.AST, model: ScoringModel) -> bool:
    """Runs only before the artifact is written (the phase model says so)."""
    if model.phases is None:
        return False
    try:
        return model.phases.phase_of(node) == "train"
    except Exception:
        return False


def _best_of(
    f: Func, model: ScoringModel, vs: Callable[[], Taint | None] = lambda: None
) -> Iterator[tuple[ast.stmt, str]]:
    for n in walk_no_defs(f.node):
        if isinstance(n, ast.If) and isinstance(n.test, ast.Compare) and len(n.test.ops) == 1:
            if not isinstance(n.test.ops[0], ast.Lt | ast.LtE | ast.Gt | ast.GtE):
                continue
            left, right = n.test.left, n.test.comparators[0]
            # `if score < best: best = score` keeps the better of several scorings (the
            # shape first: the val scores are analysed only where it is found)
            kept = {
                t
                for stmt in n.body
                if isinstance(stmt, ast.Assign)
                for tg in stmt.targets
                for t in target_names(tg)
            }
            right_names = {x.id for x in astcache.walk(right) if isinstance(x, ast.Name)}
            if not kept & right_names or not _scores(left, right, f, model, vs()):
                continue
            if _inside_loop(f, n):
                yield n, "the best of several scores is kept"
        elif (
            isinstance(n, ast.Call)
            and call_name(n) in {"min", "max"}
            and isinstance(n.func, ast.Name)
        ):
            one = n.args[0] if len(n.args) == 1 else None
            args = one.elts if isinstance(one, ast.List | ast.Tuple) else n.args
            if (
                len(args) >= 2
                and all(model.tlp.is_tainted(a, f) for a in args)
                and _is_reported(n, f)
            ):
                yield n, "the minimum of several scores is reported"  # type: ignore[misc]
            elif (
                isinstance(one, ast.Name)
                and not n.keywords
                and model.tlp.is_tainted(one, f)
                and _filled_in_loop(f, one.id)
                and _is_reported(n, f)
            ):
                yield n, "the best of scores collected in a loop is reported"  # type: ignore[misc]


def _filled_in_loop(f: Func, name: str) -> bool:
    for lp in _loops(f):
        for sub in astcache.walk(lp):
            if (
                isinstance(sub, ast.Call)
                and isinstance(sub.func, ast.Attribute)
                and sub.func.attr == "append"
                and isinstance(sub.func.value, ast.Name)
                and sub.func.value.id == name
            ):
                return True
    return False


def _inside_loop(f: Func, node: ast.AST) -> bool:
    return any(_inside(node, lp) for lp in _loops(f))


def _is_reported(call: ast.AST, f: Func) -> bool:
    for n in walk_no_defs(f.node):
        if isinstance(n, ast.Return) and n.value is not None and _inside(call, n.value):
            return True
    return False


@register
class MultipleScoringPasses(Rule):
    """Validation tokens scored more than once, keeping a rescored or best score.

    ## What it does
    Flags evaluation code that replaces scores already computed for validation chunks (a
    second pass with a warm cache, `loss - pass1 + pass2`), or keeps the best of several
    scorings (`if bpb < best: best = bpb`, `min(run_a, run_b)`). A score is a loss on
    validation data, including the loss the model's own `forward(x, y)` returns and values
    returned through functions defined inside the caller (candidate checkpoints, temperatures),
    or a loss in code that runs after training; tracking the best training loss is not one.

    ## Why is this bad?
    Each validation token must be scored exactly once and that score reported. Rescoring
    early chunks after the cache has seen the rest of the validation set lets later tokens
    inform earlier scores, and best-of selection picks using the validation scores (C4).

    ## Illegal example
    ```python
    def two_pass(chunks, score_chunk, cache):
        losses = [0.0] * len(chunks)
        for ci, chunk in enumerate(chunks):
            losses[ci] = score_chunk(chunk, cache)
            cache.update(chunk)
        for ci in range(10):
            losses[ci] = score_chunk(chunks[ci], cache)
        return sum(losses)

    def score_chunk(chunk, cache):
        import torch.nn.functional as F
        return F.cross_entropy(chunk[0], chunk[1], reduction="sum").item()

    two_pass([], score_chunk, None)
    ```

    ## Legal example
    ```python
    def one_pass(chunks, score_chunk, cache):
        losses = [0.0] * len(chunks)
        for ci, chunk in enumerate(chunks):
            losses[ci] = score_chunk(chunk, cache)
            cache.update(chunk)
        return sum(losses)

    def score_chunk(chunk, cache):
        import torch.nn.functional as F
        return F.cross_entropy(chunk[0], chunk[1], reduction="sum").item()

    one_pass([], score_chunk, None)
    ```

    ## References
    - RULES.md C4 (docs/rules.md); the two-pass n-gram rescoring rulings (upstream #869, #881).
    """

    id = "PG701"
    name = "multiple-scoring-passes"
    condition = "C4"
    severity = Severity.ERROR
    message = "validation scores rescored or selected: {why}"

    def check(self, ctx: object) -> Iterable[Finding]:
        model = analyze(ctx)  # type: ignore[arg-type]
        vs = functools.partial(_val_scores, ctx, model)  # built on first use (cached)
        seen: set[tuple[str, int]] = set()
        for f in model.functions():
            if f.name == "<module>":
                continue
            src = model.sources.get(f.file, "")
            for node, why in [*_rescoring(f, model), *_best_of(f, model, vs)]:
                spot = (f.file, node.lineno)
                if spot in seen or not model.live(f, node):
                    continue
                seen.add(spot)
                yield self.finding(
                    file=f.file,
                    line=node.lineno,
                    function=_label(f),
                    evidence=expr_text(node, src),
                    why=why,
                )

"""C1 rules (PG4xx): the distribution that scores token t depends only on the artifact and
the tokens before t.

PG401 flags attention explicitly made non-causal in code the evaluation runs; PG402 flags a
prediction for position i chosen under a branch on a property of the token at position i
itself (the realized token).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from audit import astcache
from audit.model import Finding, Rule, Severity, register
from audit.pyast import (
    Func,
    call_name,
    dotted,
    expr_text,
    local_flow,
    mentions,
    target_names,
    walk_no_defs,
)
from audit.rules._scoring import ScoringModel, analyze

_ATTN_CALLS = frozenset(
    {
        "scaled_dot_product_attention",
        "flash_attn_func",
        "flash_attn_varlen_func",
        "flash_attn_3_func",
    }
)


def _label(f: Func) -> str | None:
    return None if f.name == "<module>" else f.qualname


@register
class NonCausalAttention(Rule):
    """Attention made non-causal in the model the evaluation scores with.

    ## What it does
    Flags attention calls that switch causality off (`is_causal=False` / `causal=False`
    with no mask, an explicit `attn_mask=None` included) in code the configuration runs after
    training, when the keys come from the states the function is given (token states), not
    only from learned parameters.

    ## Why is this bad?
    Without a causal mask every position attends to later tokens, including the token it is
    scored on: the score of x_t then depends on x_t and its future (C1). In a model whose
    other attention is causal (scored left to right), such a call pools information across
    positions (a "workspace" of slots reading the whole sequence and writing back) and is an
    error. In a model with no causal attention at all it is a warning for review: a
    bidirectional model scored through a proper bound on masked inputs (a diffusion ELBO) does
    not see the tokens it scores.

    ## Illegal example
    ```python
    import torch.nn.functional as F

    def attend(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=False)

    attend(None, None, None)
    ```

    ## Legal example
    ```python
    import torch.nn.functional as F

    def attend(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    attend(None, None, None)
    ```

    ## References
    - RULES.md C1 (docs/rules.md)
    """

    id = "PG401"
    name = "non-causal-attention"
    condition = "C1"
    # A review, not a verdict, unless the model is otherwise causal: bidirectional models
    # scored through a proper bound on masked inputs (e.g. a diffusion ELBO) never see the
    # tokens they score.
    severity = Severity.WARNING
    message = "attention called without a causal mask: `{expr}`"
    pooled_message = (
        "attention without a causal mask over the token states of a model that is otherwise "
        "causal: every position sees later tokens: `{expr}`"
    )

    def check(self, ctx: object) -> Iterable[Finding]:
        model = analyze(ctx)  # type: ignore[arg-type]
        hits: list[tuple[Func, ast.Call]] = []
        causal: set[str] = set()  # files whose model also attends causally
        for f in model.functions():
            for n in walk_no_defs(f.node):
                if not (isinstance(n, ast.Call) and call_name(n) in _ATTN_CALLS):
                    continue
                flag = _causal_flag(n)
                if isinstance(flag, ast.Constant) and flag.value is True:
                    if model.live(f, n):
                        causal.add(f.file)
                    continue
                if not (isinstance(flag, ast.Constant) and flag.value is False):
                    continue
                if _masked(n) or not _keys_from_inputs(f, n) or not model.live(f, n):
                    continue
                hits.append((f, n))
        for f, n in hits:
            src = model.sources.get(f.file, "")
            expr = expr_text(n, src, 80)
            pooled = f.file in causal
            yield self.finding(
                file=f.file,
                line=n.lineno,
                function=_label(f),
                evidence=expr_text(n, src),
                severity=Severity.ERROR if pooled else None,
                message=self.pooled_message.format(expr=expr) if pooled else None,
                expr=expr,
            )


def _causal_flag(call: ast.Call) -> ast.AST | None:
    kws = {k.arg: k.value for k in call.keywords if k.arg}
    return kws.get("is_causal", kws.get("causal"))


def _is_none(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _masked(call: ast.Call) -> bool:
    """A mask is passed: `attn_mask=` (or SDPA's fourth positional argument) other than a
    literal None. For the flash-attention calls a fourth positional argument is not a mask but
    an unknown signature: treated as masked (not judged)."""
    kws = {k.arg: k.value for k in call.keywords if k.arg}
    if "attn_mask" in kws:
        return not _is_none(kws["attn_mask"])
    if len(call.args) >= 4:
        return call_name(call) != "scaled_dot_product_attention" or not _is_none(call.args[3])
    return False


_SHAPE_ATTRS = frozenset({"shape", "size", "dtype", "device", "ndim", "dim"})


def _data_mentions(node: ast.AST, names: set[str]) -> bool:
    """`node` reads one of `names` for its values, not only for its shape, dtype or device."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Attribute) and n.attr in _SHAPE_ATTRS:
            continue
        if isinstance(n, ast.Call) and call_name(n) == "len":
            continue
        if isinstance(n, ast.Name) and n.id in names:
            return True
        if isinstance(n, ast.Attribute) and dotted(n) in names:
            return True
        stack.extend(ast.iter_child_nodes(n))
    return False


def _keys_from_inputs(f: Func, call: ast.Call) -> bool:
    """The keys or values of `call` derive from the function's inputs (the token states it
    is given), not only from learned parameters of `self`. At module level (no inputs) every
    call counts."""
    if f.name == "<module>":
        return True
    inputs = {p for p in f.params if p not in {"self", "cls"}}
    kws = {k.arg: k.value for k in call.keywords if k.arg}
    kv = [a for a in (*call.args[1:3], kws.get("key"), kws.get("value")) if a is not None]
    if not kv:
        return True
    names = set(inputs)
    assigns = [n for n in walk_no_defs(f.node) if isinstance(n, ast.Assign | ast.AugAssign)]
    for _ in range(8):
        before = len(names)
        for a in assigns:
            if _data_mentions(a.value, names):
                for t in a.targets if isinstance(a, ast.Assign) else [a.target]:
                    names.update(target_names(t))
        if len(names) == before:
            break
    return any(_data_mentions(a, names) for a in kv)


def _loop_vars(loop: ast.For) -> tuple[str | None, str | None]:
    """(index variable, element variable) of `for i, tok in enumerate(seq)` loops."""
    it, tgt = loop.iter, loop.target
    if (
        isinstance(it, ast.Call)
        and isinstance(it.func, ast.Name)
        and it.func.id == "enumerate"
        and isinstance(tgt, ast.Tuple)
        and len(tgt.elts) == 2
        and all(isinstance(e, ast.Name) for e in tgt.elts)
    ):
        return tgt.elts[0].id, tgt.elts[1].id  # type: ignore[attr-defined]
    if isinstance(tgt, ast.Name):
        # for i in range(n): tok = seq[i]
        for stmt in loop.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                val = stmt.value
                if isinstance(val, ast.Call) and call_name(val) == "int" and val.args:
                    val = val.args[0]
                if (
                    isinstance(val, ast.Subscript)
                    and isinstance(val.slice, ast.Name)
                    and val.slice.id == tgt.id
                ):
                    return tgt.id, stmt.targets[0].id
    return None, None


def _sequence_of(loop: ast.For) -> ast.AST:
    it = loop.iter
    if isinstance(it, ast.Call) and call_name(it) == "enumerate" and it.args:
        return it.args[0]
    for stmt in loop.body:
        if isinstance(stmt, ast.Assign):
            val = stmt.value
            if isinstance(val, ast.Call) and call_name(val) == "int" and val.args:
                val = val.args[0]
            if isinstance(val, ast.Subscript):
                return val.value
    return it


def _position_stores(body: list[ast.stmt], index: str, banned: set[str]) -> list[ast.Assign]:
    """`pred[i] = <value not derived from the current token>` statements."""
    out: list[ast.Assign] = []
    for stmt in body:
        for sub in astcache.walk(stmt):
            if not isinstance(sub, ast.Assign) or isinstance(sub.value, ast.Constant):
                continue
            flat = [e for t in sub.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
            for t in flat:
                if (
                    isinstance(t, ast.Subscript)
                    and isinstance(t.slice, ast.Name)
                    and t.slice.id == index
                    and not mentions([sub.value], banned)
                ):
                    out.append(sub)
    return out


def _token_sequence(seq: ast.AST, model: ScoringModel, f: Func) -> bool:
    if model.target.is_tainted(seq, f):
        return True
    if model.phases is not None:
        try:
            return bool(model.phases.is_val(seq))
        except Exception:
            return False
    return False


@register
class RealizedTokenFeatureGate(Rule):
    """Prediction for position i chosen by a property of the token at position i.

    ## What it does
    Flags, in a loop over validation tokens, a branch whose test reads the current token
    (e.g. whether it starts a word, via a lookup table indexed by it) and whose body writes
    the prediction for that same position (`pred[i] = ...`).

    ## Why is this bad?
    Whether and what the evaluator predicts for x_t must not depend on x_t. Gating an
    expert on a feature of the realized token (word start, boundary, byte class) lets the
    realized token choose the distribution it is scored under (C1).

    ## Illegal example
    ```python
    def expert_predictions(tokens, starts_word, table):
        pred = [0] * len(tokens)
        ctx = 0
        for i, tok in enumerate(tokens):
            if starts_word[tok]:
                pred[i] = table.get(ctx, 0)
            ctx = (ctx * 31 + tok) % 1000
        return pred

    def evaluate(val_tokens, starts_word, table):
        return expert_predictions(val_tokens[1:], starts_word, table)

    evaluate(list(range(10)), [True] * 10, {})
    ```

    ## Legal example
    ```python
    def expert_predictions(tokens, starts_word, table):
        pred = [0] * len(tokens)
        ctx = 0
        prev_ends_word = True
        for i, tok in enumerate(tokens):
            if prev_ends_word:
                pred[i] = table.get(ctx, 0)
            ctx = (ctx * 31 + tok) % 1000
            prev_ends_word = starts_word[tok]
        return pred

    def evaluate(val_tokens, starts_word, table):
        return expert_predictions(val_tokens[1:], starts_word, table)

    evaluate(list(range(10)), [True] * 10, {})
    ```

    ## References
    - RULES.md C1 (docs/rules.md); the word-start expert gate ruling on upstream PR #1967.
    """

    id = "PG402"
    name = "realized-token-feature-gate"
    condition = "C1"
    severity = Severity.ERROR
    message = "prediction for a position gated on the token at that position: `{expr}`"

    def check(self, ctx: object) -> Iterable[Finding]:
        model = analyze(ctx)  # type: ignore[arg-type]
        for f in model.functions():
            src = model.sources.get(f.file, "")
            for loop in walk_no_defs(f.node):
                if not isinstance(loop, ast.For):
                    continue
                index, elem = _loop_vars(loop)
                if not index or not elem:
                    continue
                derived = _derived_in_loop(loop, elem)
                for node in _ifs_before_update(loop, derived):
                    stores = _position_stores(node.body, index, derived)
                    if not stores:
                        continue
                    if not _token_sequence(_sequence_of(loop), model, f) or not model.live(f, node):
                        continue
                    if _switched_off(f, model):
                        continue
                    yield self.finding(
                        file=f.file,
                        line=node.lineno,
                        function=_label(f),
                        evidence=f"{expr_text(node.test, src)} -> {expr_text(stores[0], src, 80)}",
                        expr=expr_text(node.test, src, 80),
                    )


def _switched_off(f: Func, model: ScoringModel) -> bool:
    """The gated predictions are only ever used past a threshold the configuration makes
    unreachable (a probability compared with a value above 1, e.g. `TAU=99`)."""
    ev = getattr(model.reach, "evaluator", None)
    if ev is None:
        return False
    uses = 0
    for g in model.program.funcs:
        for call in walk_no_defs(g.node):
            if not (isinstance(call, ast.Call) and call_name(call) == f.name):
                continue
            if not _same_class_receiver(call, f, g):
                continue
            stmt = _assign_of(g, call)
            if stmt is None:
                return False
            outs = {n for t in stmt.targets for n in _names(t)}
            for cmp in walk_no_defs(g.node):
                if not (
                    isinstance(cmp, ast.Compare)
                    and len(cmp.ops) == 1
                    and isinstance(cmp.ops[0], ast.Gt | ast.GtE)
                    and mentions([cmp.left], outs)
                ):
                    continue
                uses += 1
                if not _above_one(cmp.comparators[0], g, model, ev):
                    return False
    return uses > 0


def _same_class_receiver(call: ast.Call, f: Func, g: Func) -> bool:
    """For a method, the call's receiver is an instance of the method's class (`x = Cls()`)."""
    parts = f.qualname.split(".")
    if len(parts) < 2 or not isinstance(call.func, ast.Attribute):
        return True
    cls = parts[-2]
    recv = call.func.value
    if isinstance(recv, ast.Name) and recv.id == "self":
        return True
    if not isinstance(recv, ast.Name):
        return True
    for stmt in walk_no_defs(g.node):
        if (
            isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == recv.id for t in stmt.targets)
            and isinstance(stmt.value, ast.Call)
        ):
            return call_name(stmt.value) == cls
    return True


def _names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Tuple | ast.List):
        return [n for e in target.elts for n in _names(e)]
    return [target.id] if isinstance(target, ast.Name) else []


def _assign_of(g: Func, call: ast.Call) -> ast.Assign | None:
    for stmt in walk_no_defs(g.node):
        if isinstance(stmt, ast.Assign) and any(sub is call for sub in astcache.walk(stmt.value)):
            return stmt
    return None


def _above_one(expr: ast.AST, g: Func, model: ScoringModel, ev: object) -> bool:
    """Every value the threshold takes (through g's call sites) is above 1."""
    if isinstance(expr, ast.Call) and expr.args:  # np.float32(tau)
        expr = expr.args[0]
    values: list[object] = []
    if isinstance(expr, ast.Name) and expr.id in g.params:
        for h in model.program.funcs:
            for call in walk_no_defs(h.node):
                if isinstance(call, ast.Call) and call_name(call) == g.name:
                    kw = next((k.value for k in call.keywords if k.arg == expr.id), None)
                    if kw is None:
                        return False
                    values.append(ev.value_of(kw))  # type: ignore[attr-defined]
    else:
        values.append(ev.value_of(expr))  # type: ignore[attr-defined]
    return bool(values) and all(isinstance(v, int | float) and v > 1.0 for v in values)


def _derived_in_loop(loop: ast.For, elem: str) -> set[str]:
    """Names derived from the current element within one iteration (lookups, casts)."""
    fake = _LoopFunc(loop)
    names = local_flow(fake, {elem})  # type: ignore[arg-type]
    # state fed by the token (histories, counters) is context for later positions
    return {n for n in names if "." not in n and not _is_state(loop, n)}


def _is_state(loop: ast.For, name: str) -> bool:
    """Names that are read before they are written in the loop body carry state across iterations."""
    first_write: int | None = None
    first_read: int | None = None
    for sub in astcache.walk(loop):
        if isinstance(sub, ast.Name) and sub.id == name:
            pos = (sub.lineno, sub.col_offset)
            if isinstance(sub.ctx, ast.Store):
                first_write = pos[0] if first_write is None else min(first_write, pos[0])
            else:
                first_read = pos[0] if first_read is None else min(first_read, pos[0])
    return first_read is not None and first_write is not None and first_read < first_write


class _LoopFunc:
    def __init__(self, loop: ast.For) -> None:
        self.node = ast.Module(body=loop.body, type_ignores=[])


def _ifs_before_update(loop: ast.For, derived: set[str]) -> list[ast.If]:
    out: list[ast.If] = []
    for sub in astcache.walk(ast.Module(body=loop.body, type_ignores=[])):
        if isinstance(sub, ast.If) and mentions([sub.test], derived):
            out.append(sub)
    return out

"""C2 rules (PG5xx): the score of the realized token must come from one full, normalized
distribution committed before the token is revealed.

Each rule follows data flow from the realized target (see `audit.rules._scoring`), never
names of one submission: a hashed count-table key built from the target, a per-byte spread
of the target's token probability, a mixing gate chosen from the target's own probability.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator

from audit import astcache
from audit.model import Finding, Rule, Severity, register
from audit.pyast import (
    Func,
    Taint,
    call_name,
    expr_text,
    local_flow,
    mentions,
    target_names,
    walk_no_defs,
)
from audit.rules._scoring import ScoringModel, analyze
from audit.unpack import classify_lang

_EXP_CALLS = frozenset({"exp", "exp2", "expm1", "logaddexp", "logaddexp2", "pow"})
_RANGE_CALLS = frozenset({"arange", "range", "linspace"})
_HASH_CALLS = frozenset({"hash", "crc32", "adler32", "xxh64", "xxh3_64", "murmurhash3_32"})


def _is_hash_mult(node: ast.BinOp, tables: frozenset[str]) -> bool:
    """`x * 1000003` / `x * PRIMES[k]`: the multiplicative step of a hash."""
    if not isinstance(node.op, ast.Mult):
        return False
    for side in (node.left, node.right):
        if (
            isinstance(side, ast.Constant)
            and isinstance(side.value, int)
            and abs(side.value) >= 1000
        ):
            return True
        if (
            isinstance(side, ast.Call)
            and call_name(side) in {"int", "int64", "uint64", "uint32"}
            and side.args
        ):
            side = side.args[0]
        if isinstance(side, ast.Subscript):
            base = side.value
            name = (
                base.id
                if isinstance(base, ast.Name)
                else base.attr
                if isinstance(base, ast.Attribute)
                else None
            )
            if name in tables:
                return True
    return False


def _over_candidates(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and call_name(n) in _RANGE_CALLS for n in astcache.walk(node)
    )


def _hash_combine(expr: ast.AST, target: Taint, f: Func, tables: frozenset[str]) -> bool:
    """A hash step (XOR, or multiply by a prime) over the realized target, not over every candidate."""
    if isinstance(expr, ast.Call) and call_name(expr) == "bitwise_xor" and len(expr.args) == 2:
        return not _over_candidates(expr) and any(target.is_tainted(a, f) for a in expr.args)
    if isinstance(expr, ast.Call) and call_name(expr) in _HASH_CALLS:
        return any(target.is_tainted(a, f) for a in expr.args) and not _over_candidates(expr)
    if not isinstance(expr, ast.BinOp):
        return False
    if isinstance(expr.op, ast.Mod | ast.BitAnd):
        # `(ctx * P + target) % buckets`: a bucket index computed over the target
        inner = expr.left
        has_step = any(
            isinstance(n, ast.BinOp) and (isinstance(n.op, ast.BitXor) or _is_hash_mult(n, tables))
            for n in astcache.walk(inner)
        )
        return has_step and not _over_candidates(expr) and target.is_tainted(inner, f)
    if isinstance(expr.op, ast.BitXor):
        sides = [expr.left, expr.right]
    elif _is_hash_mult(expr, tables):
        sides = [s for s in (expr.left, expr.right) if not isinstance(s, ast.Constant)]
    else:
        return False
    if _over_candidates(expr):
        return False
    return any(target.is_tainted(s, f) for s in sides)


def _hashkey_taint(model: ScoringModel) -> Taint:
    cached = getattr(model, "_hashkey", None)
    if cached is None:
        # the seed holds the target taint and the tables, not the model that will hold the
        # taint: a cycle would keep the audit's trees alive until the cyclic collector runs
        target, tables = model.target, model.int_tables
        cached = Taint(
            model.program,
            lambda e, t, f: _hash_combine(e, target, f, tables),
            index_propagates=False,
            only=model.active or None,
            kinds=(ast.Call, ast.BinOp),
        )
        model._hashkey = cached  # type: ignore[attr-defined]
    return cached


def _has_hash_step(node: ast.AST, f: Func, model: ScoringModel) -> bool:
    return any(
        _hash_combine(n, model.target, f, model.int_tables)
        for n in astcache.walk(node)
        if isinstance(n, ast.BinOp | ast.Call)
    )


def _walk_no_subscripts(node: ast.AST) -> Iterator[ast.AST]:
    """Nodes of an expression, not entering subscripts (a table read is not a key)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if not isinstance(n, ast.Subscript):
            stack.extend(astcache.children(n))


def _direct_key(
    key: ast.AST, f: Func, model: ScoringModel, seen: set[tuple[int, str]] | None = None
) -> bool:
    """The key itself is a hash over the target: computed here, held in a variable assigned
    from such a hash, or returned by a function that computes one; not merely derived from a
    value that was read with such a key."""
    if _has_hash_step(key, f, model):
        return True
    seen = set() if seen is None else seen
    if len(seen) > 64:
        return False
    for n in _walk_no_subscripts(key):
        if isinstance(n, ast.Call):
            for g in model.program.callees(n):
                mark = (id(g.node), "<return>")
                if mark in seen:
                    continue
                seen.add(mark)
                for r in walk_no_defs(g.node):
                    if (
                        isinstance(r, ast.Return)
                        and r.value is not None
                        and _direct_key(r.value, g, model, seen)
                    ):
                        return True
        elif isinstance(n, ast.Name) and (id(f.node), n.id) not in seen:
            seen.add((id(f.node), n.id))
            for stmt in walk_no_defs(f.node):
                if isinstance(stmt, ast.Assign):
                    targets = stmt.targets
                elif isinstance(stmt, ast.AugAssign):
                    targets = [stmt.target]
                else:
                    continue
                flat = [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
                if any(isinstance(t, ast.Name) and t.id == n.id for t in flat) and _direct_key(
                    stmt.value, f, model, seen
                ):
                    return True
    return False


def _function_label(f: Func) -> str | None:
    return None if f.name == "<module>" else f.qualname


def _stores(f: Func) -> set[int]:
    """ids of subscript nodes that are written (plain or augmented assignment targets)."""
    out: set[int] = set()
    for n in walk_no_defs(f.node):
        if isinstance(n, ast.AugAssign | ast.Assign):
            targets = [n.target] if isinstance(n, ast.AugAssign) else n.targets
            for t in targets:
                for sub in astcache.walk(t):
                    out.add(id(sub))
    return out


@register
class TargetKeyedHashCache(Rule):
    """Count table looked up with a hash of the realized target token.

    ## What it does
    Flags, in evaluation code the configuration runs, a read from a table whose key hashes
    the realized target together with its context (`ctx_hash ^ (target * prime)`, masked
    into a fixed number of buckets), as hashed n-gram caches do to score the token.

    ## Why is this bad?
    The value read is a count for the realized token only. Nothing commits a distribution
    over the other candidates, and colliding buckets make `full/ctx` ratios sum to more
    than 1 over the vocabulary, so the score is not -log of a normalized probability (C2).
    Maintainers ruled hashed n-gram caches of this shape invalid.

    ## Illegal example
    ```python
    import numpy as np
    import torch.nn.functional as F

    def eval_ngram(logits, y, ctx_hash, full_table, ctx_table, mask):
        nll = F.cross_entropy(logits, y, reduction="none")
        full_key = (ctx_hash ^ (y.numpy() * 1000003)) & mask
        p_ng = full_table[full_key] / np.maximum(ctx_table[ctx_hash & mask], 1)
        return -np.log(0.8 * np.exp(-nll.numpy()) + 0.2 * p_ng)

    eval_ngram(None, None, None, None, None, None)
    ```

    ## Legal example
    ```python
    import numpy as np
    import torch.nn.functional as F

    def eval_ngram(logits, y, ctx_hash, full_table, mask, vocab):
        p_nn = F.softmax(logits, dim=-1).numpy()
        keys = (ctx_hash[:, None] ^ (np.arange(vocab)[None, :] * 1000003)) & mask
        counts = full_table[keys] + 0.5
        p_ng = counts / counts.sum(axis=1, keepdims=True)
        p = 0.8 * p_nn + 0.2 * p_ng
        return -np.log(p[np.arange(len(y)), y])

    eval_ngram(None, None, None, None, None, None)
    ```

    ## References
    - RULES.md C2 (docs/rules.md); the hashed n-gram cache ruling on upstream PR #779.
    """

    id = "PG501"
    name = "target-keyed-hash-cache"
    condition = "C2"
    severity = Severity.ERROR
    message = "table read with a key hashed from the realized target: `{expr}`"

    def check(self, ctx: object) -> Iterable[Finding]:
        model = analyze(ctx)  # type: ignore[arg-type]
        keys = _hashkey_taint(model)
        if keys.inert:  # the keys read below are expressions of the analysed functions
            return
        seen: set[tuple[str, int]] = set()
        for f in model.functions():
            if f.name == "<module>":
                continue
            stores = _stores(f)
            src = model.sources.get(f.file, "")
            for n in walk_no_defs(f.node):
                key: ast.AST | None = None
                if (
                    isinstance(n, ast.Subscript)
                    and isinstance(n.ctx, ast.Load)
                    and id(n) not in stores
                ):
                    key = n.slice
                elif isinstance(n, ast.Call) and call_name(n) == "get" and n.args:
                    key = n.args[0]
                if key is None or not keys.is_tainted(key, f) or not model.live(f, n):
                    continue
                if not _direct_key(key, f, model):
                    continue
                spot = (f.file, n.lineno)
                if spot in seen:
                    continue
                seen.add(spot)
                yield self.finding(
                    file=f.file,
                    line=n.lineno,
                    function=_function_label(f),
                    evidence=expr_text(n, src),
                    expr=expr_text(n, src, 80),
                )


def _is_reciprocal(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div)
        and isinstance(node.left, ast.Constant)
    )


def _spread_seed(expr: ast.AST, model: ScoringModel, f: Func) -> bool:
    """log p(target) / n_bytes(target), or p(target) ** (1 / n_bytes(target))."""
    if (
        isinstance(expr, ast.Call)
        and call_name(expr) in {"power", "pow", "float_power"}
        and len(expr.args) == 2
        and _is_reciprocal(expr.args[1])
    ):
        num, den = expr.args[0], expr.args[1].right  # type: ignore[attr-defined]
        return (
            model.tlp.is_tainted(num, f)
            and _target_sized(den, model, f)
            and not model.tlp.is_tainted(den, f)
        )
    if not isinstance(expr, ast.BinOp):
        return False
    if isinstance(expr.op, ast.Div):
        num, den = expr.left, expr.right
    elif (isinstance(expr.op, ast.Pow) and _is_reciprocal(expr.right)) or (
        isinstance(expr.op, ast.Mult) and _is_reciprocal(expr.right)
    ):
        num, den = expr.left, expr.right.right  # type: ignore[attr-defined]
    else:
        return False
    if isinstance(den, ast.Constant):
        return False
    if any(isinstance(n, ast.Call) and call_name(n) in _REDUCTIONS for n in astcache.walk(num)):
        return False  # an average (sum / count), not a per-token spread
    return (
        model.tlp.is_tainted(num, f)
        and _target_sized(den, model, f)
        and not model.tlp.is_tainted(den, f)
    )


def _target_sized(den: ast.AST, model: ScoringModel, f: Func) -> bool:
    """A length derived from the realized token (its byte count), directly or via len(),
    also when the len() is taken at a call site and passed in as a parameter."""
    if model.target.is_tainted(den, f):
        return True
    if any(_len_of_target(n, model, f) for n in astcache.walk(den)):
        return True
    sized = _sized_params(model, f) | _sized_locals(model, f)
    return bool(sized) and mentions([den], local_flow(f, sized))


def _sized_locals(model: ScoringModel, f: Func) -> set[str]:
    """Locals assigned a realized token's length: `n_bytes = len(tb)`, `tb = lut[target]`."""
    memo = model.__dict__.setdefault("_sized_locals", {})
    hit = memo.get(id(f.node))
    if hit is None:
        hit = {
            t.id
            for n in walk_no_defs(f.node)
            if isinstance(n, ast.Assign)
            and any(_len_of_target(c, model, f) for c in astcache.walk(n.value))
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        memo[id(f.node)] = hit
    return hit


def _len_of_target(n: ast.AST, model: ScoringModel, f: Func) -> bool:
    return (
        isinstance(n, ast.Call)
        and call_name(n) == "len"
        and bool(n.args)
        and model.target.is_tainted(n.args[0], f)
    )


def _sized_params(model: ScoringModel, f: Func) -> set[str]:
    """Parameters of `f` bound at some call site to the length of a realized-token value
    (`helper(p, len(tok_bytes))` with `tok_bytes = piece_bytes[target]`)."""
    memo = model.__dict__.setdefault("_sized_params", {})
    hit = memo.get(id(f.node))
    if hit is not None:
        return hit
    out: set[str] = set()
    params = list(f.params)
    offset = 1 if params[:1] in (["self"], ["cls"]) else 0
    for caller in model.program.callers.get(f.name, ()):
        for call in walk_no_defs(caller.node):
            if not isinstance(call, ast.Call) or call_name(call) != f.name:
                continue
            for i, a in enumerate(call.args):
                if i + offset < len(params) and any(
                    _len_of_target(n, model, caller) for n in astcache.walk(a)
                ):
                    out.add(params[i + offset])
            for k in call.keywords:
                if k.arg in params and any(
                    _len_of_target(n, model, caller) for n in astcache.walk(k.value)
                ):
                    out.add(k.arg)
    memo[id(f.node)] = out
    return out


def _statement_of(f: Func, node: ast.AST) -> ast.stmt | None:
    for stmt in walk_no_defs(f.node):
        if isinstance(stmt, ast.Assign | ast.AugAssign | ast.AnnAssign) and any(
            sub is node for sub in astcache.walk(stmt)
        ):
            return stmt
    return None


def _targets(stmt: ast.stmt | None) -> list[ast.AST]:
    if isinstance(stmt, ast.Assign):
        return list(stmt.targets)
    if isinstance(stmt, ast.AugAssign | ast.AnnAssign):
        return [stmt.target]
    return []


def _inside_exp(f: Func, node: ast.AST) -> bool:
    return any(any(sub is node for sub in astcache.walk(a)) for a in _exp_args(f))


def _returns_any(f: Func, names: set[str]) -> bool:
    return any(
        isinstance(n, ast.Return) and n.value is not None and mentions([n.value], names)
        for n in walk_no_defs(f.node)
    )


def _exp_args(f: Func) -> Iterator[ast.AST]:
    for n in walk_no_defs(f.node):
        if isinstance(n, ast.Call) and call_name(n) in _EXP_CALLS:
            yield from n.args
            if isinstance(n.func, ast.Attribute) and call_name(n) == "exp":
                yield n.func.value
        elif isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow):
            yield n.right


@register
class TokenProbabilityByteSpread(Rule):
    """Token probability spread over its bytes as p^(1/n) (log p / n per byte).

    ## What it does
    Flags a per-byte probability made from the model's probability of the realized token
    divided over that token's byte length (`exp(log p / n)`, `p ** (1 / n)`), as byte-level
    mixers (e.g. with a PPM byte model) do before mixing.

    ## Why is this bad?
    `p^(1/n)` for each byte is not a distribution over the 256 byte values: it uses the
    realized token to decide how many bytes there are and which ones, and summed over the
    alternatives it exceeds 1. A mixture built from it is not normalized (C2). The legal
    way to score bytes is to marginalize the full token distribution over every token that
    continues the byte prefix.

    ## Illegal example
    ```python
    import numpy as np
    import torch.nn.functional as F

    def byte_scores(logits, y, byte_len_lut, ppm_byte_logp):
        lp = -F.cross_entropy(logits, y, reduction="none").numpy()
        n = byte_len_lut[y.numpy()]
        per_byte = np.repeat(lp / n, n)
        return -np.log(0.5 * np.exp(per_byte) + 0.5 * np.exp(ppm_byte_logp))

    byte_scores(None, None, None, None)
    ```

    ## Legal example
    ```python
    import math
    import torch.nn.functional as F

    def bpb(logits, y, byte_len_lut):
        nll = F.cross_entropy(logits, y, reduction="sum")
        n_bytes = byte_len_lut[y].sum()
        return nll.item() / math.log(2) / n_bytes.item()

    bpb(None, None, None)
    ```

    ## References
    - RULES.md C2 (docs/rules.md); the byte-PPM mixer rulings (upstream #1872, #1905, #2080).
    """

    id = "PG503"
    name = "token-probability-byte-spread"
    condition = "C2"
    severity = Severity.ERROR
    message = "token probability of the realized token spread over its bytes: `{expr}`"

    def check(self, ctx: object) -> Iterable[Finding]:
        model = analyze(ctx)  # type: ignore[arg-type]
        yield from self._native(model)
        seeds = [
            (f, n)
            for f in model.functions()
            for n in walk_no_defs(f.node)
            if (isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div | ast.Pow | ast.Mult))
            or (isinstance(n, ast.Call) and call_name(n) in {"power", "pow", "float_power"})
            if _spread_seed(n, model, f)
        ]
        if not seeds:
            return
        spread = Taint(
            model.program,
            lambda e, t, f: _spread_seed(e, model, f),
            only=model.active or None,
            kinds=(ast.Call, ast.BinOp),
        )
        exp_in: set[int] = set()
        for f in model.functions():
            if any(spread.is_tainted(a, f) for a in _exp_args(f)):
                exp_in.add(id(f.node))
        if not exp_in and not any(
            isinstance(n, ast.Call) or isinstance(getattr(n, "op", None), ast.Pow) for _, n in seeds
        ):
            return
        for f, n in seeds:
            # The spread must become a probability: exponentiated in this function, or handed
            # on (returned) to code that exponentiates it.
            stmt = _statement_of(f, n)
            start = {t for tg in _targets(stmt) for t in target_names(tg)}
            flowed = local_flow(f, start) if start else set()
            # p ** (1 / n) is already a probability; log p / n becomes one once exponentiated
            is_power = isinstance(n, ast.Call) or (
                isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow)
            )
            local = (
                is_power
                or _inside_exp(f, n)
                or bool(flowed and mentions(list(_exp_args(f)), flowed))
            )
            handed_on = bool(flowed) and _returns_any(f, flowed) and len(exp_in - {id(f.node)}) > 0
            if not (local or handed_on) or not model.live(f, n):
                continue
            src = model.sources.get(f.file, "")
            evidence = expr_text(n, src)
            # point at the mixture the spread feeds, when it is in the same function
            scopes = [f, *model.program.children.get(id(f.node), [])]
            derived = local_flow(f, set(flowed)) if flowed else set()
            mix = next(
                (m for g in scopes for m in _mixtures(g) if derived and mentions([m], derived)),
                None,
            )
            if mix is not None:
                evidence += f" -> mixed at line {mix.lineno}: {expr_text(mix, src, 100)}"
            yield self.finding(
                file=f.file,
                line=n.lineno,
                function=_function_label(f),
                evidence=evidence,
                expr=expr_text(n, src, 80),
            )

    def _native(self, model: ScoringModel) -> Iterator[Finding]:
        """The same spread written in C/CUDA source that the Python side compiles and calls
        with the realized tokens' losses."""
        for rel, tree in model.program.trees.items():
            for node in astcache.walk(tree):
                if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                    continue
                text = node.value
                if len(text) < 200 or classify_lang(text) is None:
                    continue
                for m in _C_SPREAD.finditer(text):
                    divisor = m.group("den")
                    if not re.search(rf"\b{re.escape(divisor)}\s*=[^;]*\blens?\b", text):
                        continue
                    if not _native_called_with_scores(text, model):
                        continue
                    line = node.lineno + text.count("\n", 0, m.start())
                    yield self.finding(
                        file=rel,
                        line=line,
                        function=None,
                        evidence=m.group(0),
                        expr=m.group(0),
                    )


_C_SPREAD = re.compile(
    r"(?P<lhs>\w+)\s*=\s*-?\s*(?P<arr>\w+)\s*\[\s*\w+\s*\]\s*/\s*(?:\(\s*(?:double|float)\s*\)\s*)?(?P<den>\w+)\s*;"
)
_C_FUNC = re.compile(r"\b(?:int|double|float|void|int64_t)\s+(\w+)\s*\(")


def _native_called_with_scores(c_text: str, model: ScoringModel) -> bool:
    """Some reached Python code calls a function the C text defines."""
    names = set(_C_FUNC.findall(c_text))
    for f in model.functions():
        for n in walk_no_defs(f.node):
            # The arrays often travel through files between ranks, so the call itself (by a
            # reached function, under live guards) is the evidence that the C scorer runs.
            if isinstance(n, ast.Call) and call_name(n) in names and model.live(f, n):
                return True
    return False


def _gate_names(model: ScoringModel) -> dict[int, set[str]]:
    """Per function, names assigned under a branch on the realized token's own probability."""
    out: dict[int, set[str]] = {}
    for f in model.program.funcs:
        names: set[str] = set()
        for n in walk_no_defs(f.node):
            if isinstance(n, ast.If) and _realized_test(n.test, model, f):
                for stmt in n.body + n.orelse:
                    for sub in astcache.walk(stmt):
                        if isinstance(sub, ast.Assign):
                            for t in sub.targets:
                                if isinstance(t, ast.Name):
                                    names.add(t.id)
        out[id(f.node)] = names
    return out


def _realized_test(test: ast.AST, model: ScoringModel, f: Func) -> bool:
    """The test compares the realized token's probability (or loss) with something."""
    for cmp in astcache.walk(test):
        if not isinstance(cmp, ast.Compare):
            continue
        if any(isinstance(op, ast.Is | ast.IsNot | ast.In | ast.NotIn) for op in cmp.ops):
            continue
        sides = [cmp.left, *cmp.comparators]
        # bounds checks (`0 <= i < len(t)`), integer ids and sign tests are not thresholds on
        # a probability
        if any(isinstance(x, ast.Constant) and x.value == 0 for x in sides):
            continue
        if any(
            isinstance(n, ast.Call) and call_name(n) in {"len", "int", "isinstance"}
            for x in sides
            for n in astcache.walk(x)
        ):
            continue
        if any(model.tlp.is_tainted(side, f) for side in sides):
            return True
    return _after_realized_loop(test, model, f)


def _after_realized_loop(test: ast.AST, model: ScoringModel, f: Func) -> bool:
    """The test reads a value last set inside a loop over the realized token's own elements
    (`for b in bytes_of_target: ...; conf = ...`), after that loop and in the same iteration
    of the per-token loop: its value depends on which token was realized."""
    exits = _realized_loop_values(model, f)
    if not exits:
        return False
    line = getattr(test, "lineno", 0)
    parents = model.program.parent
    for n in astcache.walk(test):
        if not isinstance(n, ast.Name):
            continue
        for loop in exits.get(n.id, ()):
            if (loop.end_lineno or 0) >= line:
                continue
            outer = parents.get(id(loop))
            while outer is not None and not isinstance(outer, ast.For | ast.While):
                outer = parents.get(id(outer))
            if outer is not None and any(x is test for x in astcache.walk(outer)):
                return True
    return False


def _realized_loop_values(model: ScoringModel, f: Func) -> dict[str, list[ast.For]]:
    memo = model.__dict__.setdefault("_realized_loop_values", {})
    hit = memo.get(id(f.node))
    if hit is None:
        hit = {}
        for loop in walk_no_defs(f.node):
            if (
                not isinstance(loop, ast.For)
                or (isinstance(loop.iter, ast.Call) and call_name(loop.iter) in _RANGE_CALLS)
                or not model.target.is_tainted(loop.iter, f)
            ):
                continue
            own = set(target_names(loop.target))
            for n in astcache.walk(loop):
                if isinstance(n, ast.Assign):
                    for t in n.targets:
                        if isinstance(t, ast.Name) and t.id not in own:
                            hit.setdefault(t.id, []).append(loop)
        memo[id(f.node)] = hit
    return hit


def _gate_seed(expr: ast.AST, model: ScoringModel, f: Func, names: dict[int, set[str]]) -> bool:
    if isinstance(expr, ast.IfExp):
        return _realized_test(expr.test, model, f)
    if isinstance(expr, ast.Call) and call_name(expr) == "where" and len(expr.args) == 3:
        return _realized_test(expr.args[0], model, f)
    if isinstance(expr, ast.Name):
        return expr.id in names.get(id(f.node), ())
    return False


@register
class RealizedTokenGate(Rule):
    """Mixing weight or gate chosen from the realized token's own probability.

    ## What it does
    Flags a value picked by a branch on the model's probability (or loss) of the realized
    token — `lam = 1.0 if nll_target < thr else 0.3`, `np.where(p_target > t, a, b)` — that
    then weights a mixture of probabilities.

    ## Why is this bad?
    The evaluator must commit to its mixture before the token is revealed. A gate that reads
    the realized token's probability picks, per token, whichever component scores that token
    better: the result is not one normalized distribution over the alphabet (C2).

    ## Illegal example
    ```python
    import math
    import torch.nn.functional as F

    def mix(logits, y, p_other):
        nll = F.cross_entropy(logits, y, reduction="none")
        total = 0.0
        for i in range(len(nll)):
            lam = 1.0 if nll[i] < 0.3 else 0.5
            total -= math.log(lam * math.exp(-nll[i]) + (1 - lam) * p_other[i])
        return total

    mix(None, None, None)
    ```

    ## Legal example
    ```python
    import math
    import torch.nn.functional as F

    def mix(logits, y, p_other):
        probs = F.softmax(logits, dim=-1)
        entropy = -(probs * probs.log()).sum(-1)
        nll = F.cross_entropy(logits, y, reduction="none")
        total = 0.0
        for i in range(len(nll)):
            lam = 0.9 if entropy[i] < 2.0 else 0.5
            total -= math.log(lam * math.exp(-nll[i]) + (1 - lam) * p_other[i])
        return total

    mix(None, None, None)
    ```

    ## References
    - RULES.md C2 (docs/rules.md); the byte-PPM mixer rulings (upstream #1872, #1905).
    """

    id = "PG502"
    name = "realized-token-gate"
    condition = "C2"
    severity = Severity.ERROR
    message = "mixing weight chosen from the realized token's own probability: `{expr}`"

    def check(self, ctx: object) -> Iterable[Finding]:
        model = analyze(ctx)  # type: ignore[arg-type]
        names = _gate_names(model)
        if not any(names.values()) and not self._has_candidates(model):
            return
        gate = Taint(
            model.program,
            lambda e, t, f: _gate_seed(e, model, f, names),
            only=model.active or None,
            # a name is a seed only where a gate assigned it
            kinds=(ast.IfExp, ast.Call, ast.Name) if any(names.values()) else (ast.IfExp, ast.Call),
        )
        if gate.inert:  # the operands read below are expressions of the analysed functions
            return
        for f in model.functions():
            src = model.sources.get(f.file, "")
            mixes = [
                n
                for n in walk_no_defs(f.node)
                if isinstance(n, ast.BinOp)
                and isinstance(n.op, ast.Mult | ast.Add)
                and (
                    (gate.is_tainted(n.left, f) and model.tlp.is_tainted(n.right, f))
                    or (gate.is_tainted(n.right, f) and model.tlp.is_tainted(n.left, f))
                )
            ]
            if not mixes:
                continue
            for n in walk_no_defs(f.node):
                test = None
                if isinstance(n, ast.If | ast.IfExp):
                    test = n.test
                elif isinstance(n, ast.Call) and call_name(n) == "where" and len(n.args) == 3:
                    test = n.args[0]
                if test is None or not _realized_test(test, model, f):
                    continue
                if isinstance(n, ast.If) and not _assigns(n, names.get(id(f.node), set())):
                    continue
                if not model.live(f, n):
                    continue
                yield self.finding(
                    file=f.file,
                    line=n.lineno,
                    function=_function_label(f),
                    evidence=expr_text(test, src),
                    expr=expr_text(test, src, 80),
                )

    @staticmethod
    def _has_candidates(model: ScoringModel) -> bool:
        for f in model.program.funcs:
            for n in walk_no_defs(f.node):
                if isinstance(n, ast.IfExp) or (
                    isinstance(n, ast.Call) and call_name(n) == "where"
                ):
                    return True
        return False


def _assigns(node: ast.If, names: set[str]) -> bool:
    for stmt in node.body + node.orelse:
        for sub in astcache.walk(stmt):
            if isinstance(sub, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in names for t in sub.targets
            ):
                return True
    return False


_REDUCTIONS = frozenset({"sum", "mean", "logsumexp", "norm", "amax", "nansum", "cumsum"})


def _remainder_seed(node: ast.AST, model: ScoringModel, f: Func) -> bool:
    """p(realized token) / p(its first bytes): a conditional for the realized token only."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)):
        return False
    for side in (node.left, node.right):
        if isinstance(side, ast.Constant):
            return False
        if any(
            isinstance(n, ast.Call) and call_name(n) in _REDUCTIONS for n in astcache.walk(side)
        ):
            return False
    num, den = astcache.unparse(node.left), astcache.unparse(node.right)
    if num in den:  # a / (1 + a): a sigmoid or a share, not a remainder
        return False
    return model.tlp.is_tainted(node.left, f) and model.tlp.is_tainted(node.right, f)


def _mixtures(f: Func) -> Iterator[ast.BinOp]:
    """`w * a + v * b`: two weighted terms added (a mixture of probabilities)."""
    for n in walk_no_defs(f.node):
        if (
            isinstance(n, ast.BinOp)
            and isinstance(n.op, ast.Add)
            and isinstance(n.left, ast.BinOp)
            and isinstance(n.left.op, ast.Mult)
            and isinstance(n.right, ast.BinOp)
            and isinstance(n.right.op, ast.Mult)
        ):
            yield n


@register
class RealizedTokenRemainder(Rule):
    """Remainder probability of the realized token mixed as if it were a distribution.

    ## What it does
    Flags a ratio of two probabilities of the realized token — e.g. the token's probability
    divided by the probability of its first byte, "the rest of this token" — that is then
    mixed with another model's probability.

    ## Why is this bad?
    `p(token) / p(first byte)` is the conditional of one continuation only, chosen by the
    realized token; the other continuations of that byte prefix get no mass in the mixture,
    and the mass split between "first byte" and "remainder" is counted for the realized
    token alone. The result is not a normalized distribution over the alphabet (C2).

    ## Illegal example
    ```python
    import math
    import torch.nn.functional as F

    def score(logits, y, p_first_byte, p_other_rest, lam=0.5):
        nll = F.cross_entropy(logits, y, reduction="none")
        total = 0.0
        for i in range(len(nll)):
            p_tok = math.exp(-float(nll[i]))
            p_b0 = float(F.softmax(logits[i], -1)[y[i]]) + 1e-9
            rest = p_tok / p_b0
            total -= math.log(lam * rest + (1 - lam) * p_other_rest[i])
        return total

    score(None, None, None, None)
    ```

    ## Legal example
    ```python
    import math
    import torch.nn.functional as F

    def score(logits, y, p_other, lam=0.5):
        probs = F.softmax(logits, -1)
        mix = lam * probs + (1 - lam) * p_other
        total = 0.0
        for i in range(len(y)):
            total -= math.log(float(mix[i, y[i]]))
        return total

    score(None, None, None)
    ```

    ## References
    - RULES.md C2 (docs/rules.md): remainders that count mass twice; the conditional byte-PPM
      mixer ruling (upstream #2039).
    """

    id = "PG504"
    name = "realized-token-remainder"
    condition = "C2"
    severity = Severity.ERROR
    message = "remainder probability of the realized token mixed with another model: `{expr}`"

    def check(self, ctx: object) -> Iterable[Finding]:
        model = analyze(ctx)  # type: ignore[arg-type]
        for f in model.functions():
            if f.name == "<module>":
                continue
            seeds = [n for n in walk_no_defs(f.node) if _remainder_seed(n, model, f)]
            if not seeds:
                continue
            mixes = list(_mixtures(f))
            if not mixes:
                continue
            src = model.sources.get(f.file, "")
            for n in seeds:
                stmt = _statement_of(f, n)
                start = {t for tg in _targets(stmt) for t in target_names(tg)}
                flowed = local_flow(f, start) if start else set()
                if not flowed or not any(mentions([m], flowed) for m in mixes):
                    continue
                if not model.live(f, n):
                    continue
                yield self.finding(
                    file=f.file,
                    line=n.lineno,
                    function=_function_label(f),
                    evidence=expr_text(n, src),
                    expr=expr_text(n, src, 80),
                )

"""C2 rule PG506: a token's loss masked by whether it equals a stored token.

`per_tok *= (stored[pos] != y)` (or `masked_fill`, `where`) zeroes the score of every position
whose realized token matches a token stored for that position: a covered position costs
nothing exactly when the stored guess is right. No distribution over the alphabet was
committed for it; the realized token decides its own score.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator

from audit.model import Finding, Rule, Severity, register
from audit.pyast import Func, call_name, expr_text, local_flow, mentions, walk_no_defs
from audit.rules._scoring import ScoringModel, analyze

_MASK_CALLS = frozenset({"masked_fill", "masked_fill_", "where", "mul", "mul_"})


def _label(f: Func) -> str | None:
    return None if f.name == "<module>" else f.qualname


_VIEWS = frozenset({"to", "long", "int", "cuda", "cpu", "reshape", "view", "flatten", "contiguous"})


def _unview(e: ast.AST) -> ast.AST:
    """`x[a:b].to(device).long()` -> `x[a:b]`."""
    while isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and e.func.attr in _VIEWS:
        e = e.func.value
    return e


def _stored(side: ast.AST, f: Func, model: ScoringModel) -> bool:
    """Tokens stored per position: a slice or element of a sequence that is neither the target
    nor derived from the model's distribution (`prefix[s : s + n]`, `stored[b]`), directly or
    through one local name."""
    side = _unview(side)
    if isinstance(side, ast.Name):
        bound = [
            n.value
            for n in walk_no_defs(f.node)
            if isinstance(n, ast.Assign)
            and len(n.targets) == 1
            and isinstance(n.targets[0], ast.Name)
            and n.targets[0].id == side.id
        ]
        if len(bound) != 1:
            return False
        side = _unview(bound[0])
    if not isinstance(side, ast.Subscript):
        return False
    return not (
        model.target.is_tainted(side, f)
        or model.dist.is_tainted(side, f)
        or model.tlp.is_tainted(side, f)
    )


def _matches(f: Func, model: ScoringModel) -> Iterator[ast.Compare]:
    for n in walk_no_defs(f.node):
        if not (
            isinstance(n, ast.Compare)
            and len(n.ops) == 1
            and isinstance(n.ops[0], ast.Eq | ast.NotEq)
        ):
            continue
        a, b = n.left, n.comparators[0]
        for t, s in ((a, b), (b, a)):
            if model.target.is_tainted(t, f) and _stored(s, f, model):
                yield n
                break


def _masks_score(f: Func, model: ScoringModel, cmp: ast.Compare) -> ast.AST | None:
    """The statement or call where the comparison's value multiplies or masks a score."""
    names: set[str] = set()
    for n in walk_no_defs(f.node):
        if isinstance(n, ast.Assign) and any(s is cmp for s in ast.walk(n.value)):
            names |= {t.id for t in n.targets if isinstance(t, ast.Name)}
    flow = local_flow(f, names) if names else set()

    def carries(e: ast.AST) -> bool:
        return any(s is cmp for s in ast.walk(e)) or (bool(flow) and mentions([e], flow))

    for n in walk_no_defs(f.node):
        if isinstance(n, ast.AugAssign) and isinstance(n.op, ast.Mult):
            if model.tlp.is_tainted(n.target, f) and carries(n.value):
                return n
        elif isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult):
            for s, o in ((n.left, n.right), (n.right, n.left)):
                if model.tlp.is_tainted(s, f) and carries(o) and not model.tlp.is_tainted(o, f):
                    return n
        elif isinstance(n, ast.Call) and call_name(n) in _MASK_CALLS:
            parts = [*n.args, *(k.value for k in n.keywords)]
            if isinstance(n.func, ast.Attribute):
                parts.append(n.func.value)
            if any(carries(p) for p in parts) and any(model.tlp.is_tainted(p, f) for p in parts):
                return n
    return None


@register
class StoredTokenMatchMask(Rule):
    """Score of a position masked by whether its realized token equals a stored token.

    ## What it does
    Flags a per-token loss multiplied or masked (`*=`, `*`, `masked_fill`, `where`) by a
    comparison between the realized target and tokens stored per position (`prefix[s:e] == y`),
    in code the evaluation runs.

    ## Why is this bad?
    A position then costs nothing exactly when the stored token is the realized one: the
    realized token decides its own score, and no distribution over the alphabet summing to 1
    was committed for it (C2). Storing validation targets in the artifact is R4's business too.

    ## Illegal example
    ```python
    import torch.nn.functional as F

    def score(logits, y, stored):
        per_tok = F.cross_entropy(logits, y, reduction="none")
        match = stored[: y.numel()] == y
        per_tok *= (~match).float()
        return per_tok.sum()

    score(None, None, None)
    ```

    ## Legal example
    ```python
    import torch.nn.functional as F

    def score(logits, y):
        per_tok = F.cross_entropy(logits, y, reduction="none")
        correct = (logits.argmax(-1) == y).float().sum()
        return per_tok.sum(), correct

    score(None, None)
    ```

    ## References
    - RULES.md C2 and R4 (docs/rules.md); docs/auditor-heldout.md (fresh set, F2).
    """

    id = "PG506"
    name = "stored-token-match-mask"
    condition = "C2"
    severity = Severity.ERROR
    message = "score masked by a match of the realized token with a stored token: `{expr}`"

    def check(self, ctx: object) -> Iterable[Finding]:
        model = analyze(ctx)  # type: ignore[arg-type]
        for f in model.functions():
            src = model.sources.get(f.file, "")
            for cmp in _matches(f, model):
                use = _masks_score(f, model, cmp)
                if use is None or not model.live(f, use):
                    continue
                yield self.finding(
                    file=f.file,
                    line=use.lineno,  # type: ignore[attr-defined]
                    function=_label(f),
                    evidence=f"{expr_text(cmp, src)} -> {expr_text(use, src, 80)}",
                    expr=expr_text(cmp, src, 80),
                )

"""C2 rule PG505: a mixture "expert" whose score does not depend on the candidate token.

A log-domain mixture `logsumexp(log_w - expert_nll)` over experts stacked with
`torch.stack([...])` is a distribution only if every expert is one: each expert's NLL must be
`-log p(target)` of a distribution over the alphabet. A per-position quantity of the model's
distribution reduced over the vocabulary (its entropy `-(p * log p).sum(-1)`) is the same for
every candidate token, so exp(-it) summed over the alphabet is V * exp(-H), not 1.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator

from audit.model import Finding, Rule, Severity, register
from audit.pyast import Func, call_name, expr_text, local_flow, mentions, walk_no_defs
from audit.rules._scoring import ScoringModel, analyze

_STACKS = frozenset({"stack"})


def _label(f: Func) -> str | None:
    return None if f.name == "<module>" else f.qualname


def _defs(f: Func) -> dict[str, ast.expr]:
    """Last simple assignment of each local name (enough for straight-line expert code)."""
    out: dict[str, ast.expr] = {}
    for n in walk_no_defs(f.node):
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            out[n.targets[0].id] = n.value
    return out


def _vocab_reduction(expr: ast.AST, f: Func, model: ScoringModel) -> bool:
    """`(p * log p).sum(-1)`: the model's distribution summed over the vocabulary axis."""
    for n in ast.walk(expr):
        if not (
            isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "sum"
        ):
            continue
        axis = n.args[0] if n.args else next((k.value for k in n.keywords if k.arg == "dim"), None)
        last = (
            isinstance(axis, ast.UnaryOp)
            and isinstance(axis.op, ast.USub)
            and isinstance(axis.operand, ast.Constant)
            and axis.operand.value == 1
        )
        if last and model.dist.is_tainted(n.func.value, f):
            return True
    return False


def _candidate_free(elt: ast.AST, f: Func, model: ScoringModel, defs: dict[str, ast.expr]):
    """The element is a vocabulary reduction of the model's distribution, with no target."""
    value = defs.get(elt.id, elt) if isinstance(elt, ast.Name) else elt
    if model.target.is_tainted(value, f) or model.tlp.is_tainted(value, f):
        return False
    return _vocab_reduction(value, f, model)


def _target_dependent(elt: ast.AST, f: Func, model: ScoringModel) -> bool:
    return model.target.is_tainted(elt, f) or model.tlp.is_tainted(elt, f)


def _logsumexp_over(g: Func, names: set[str]) -> bool:
    flow = local_flow(g, names)
    for n in walk_no_defs(g.node):
        if isinstance(n, ast.Call) and call_name(n) == "logsumexp":
            parts = [*n.args, *(k.value for k in n.keywords)]
            if isinstance(n.func, ast.Attribute):
                parts.append(n.func.value)
            if mentions(parts, flow):
                return True
    return False


def _mixed(stack: ast.Call, f: Func, model: ScoringModel) -> bool:
    """The stacked experts reach a logsumexp: here, or in a caller of a function returning them."""
    names: set[str] = set()
    returned = False
    for n in walk_no_defs(f.node):
        if isinstance(n, ast.Assign) and any(s is stack for s in ast.walk(n.value)):
            names |= {t.id for t in n.targets if isinstance(t, ast.Name)}
        if (
            isinstance(n, ast.Return)
            and n.value is not None
            and (any(s is stack for s in ast.walk(n.value)) or mentions([n.value], names))
        ):
            returned = True
    if names and _logsumexp_over(f, names):
        return True
    if not returned:
        return False
    for g in model.program.callers.get(f.name, ()):
        outs: set[str] = set()
        for n in walk_no_defs(g.node):
            if (
                isinstance(n, ast.Assign)
                and isinstance(n.value, ast.Call)
                and call_name(n.value) == f.name
            ):
                outs |= {t.id for t in n.targets if isinstance(t, ast.Name)}
        if outs and _logsumexp_over(g, outs):
            return True
    return False


def _findings(f: Func, model: ScoringModel) -> Iterator[tuple[ast.Call, ast.AST]]:
    defs: dict[str, ast.expr] | None = None
    for n in walk_no_defs(f.node):
        if not (isinstance(n, ast.Call) and call_name(n) in _STACKS and n.args):
            continue
        seq = n.args[0]
        if not isinstance(seq, ast.List | ast.Tuple) or len(seq.elts) < 2:
            continue
        if defs is None:
            defs = _defs(f)
        free = [e for e in seq.elts if _candidate_free(e, f, model, defs)]
        if not free or not any(_target_dependent(e, f, model) for e in seq.elts):
            continue
        if _mixed(n, f, model) and model.live(f, n):
            yield n, free[0]


@register
class CandidateFreeExpert(Rule):
    """A mixture expert whose score is the same for every candidate token.

    ## What it does
    Flags expert scores stacked for a log-domain mixture (`torch.stack([...])` reaching a
    `logsumexp`) where one expert is a reduction of the model's distribution over the
    vocabulary (its entropy, `-(p * log p).sum(-1)`) while the others are NLLs of the
    realized token.

    ## Why is this bad?
    Every expert of a mixture must be a distribution over the alphabet: the mixture is then
    one. An expert whose "NLL" does not depend on the candidate token gives every candidate
    the probability exp(-H); summed over the alphabet that is V * exp(-H), far above 1, so
    the mixed scores are not -log of a normalized distribution (C2).

    ## Illegal example
    ```python
    import torch
    import torch.nn.functional as F

    def mixed_nll(logits, y, log_w):
        lp = F.log_softmax(logits, dim=-1)
        neural_nll = -lp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        entropy_nll = -(lp.exp() * lp).sum(-1)
        experts = torch.stack([neural_nll, entropy_nll], dim=-1)
        return -(log_w.log_softmax(0) - experts).logsumexp(dim=-1)

    mixed_nll(None, None, None)
    ```

    ## Legal example
    ```python
    import math
    import torch
    import torch.nn.functional as F

    def mixed_nll(logits, y, log_w):
        lp = F.log_softmax(logits, dim=-1)
        neural_nll = -lp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        uniform_nll = torch.full_like(neural_nll, math.log(logits.size(-1)))
        experts = torch.stack([neural_nll, uniform_nll], dim=-1)
        return -(log_w.log_softmax(0) - experts).logsumexp(dim=-1)

    mixed_nll(None, None, None)
    ```

    ## References
    - RULES.md C2 (docs/rules.md): the sum over every candidate of exp(-score) must be 1.
    """

    id = "PG505"
    name = "candidate-free-expert"
    condition = "C2"
    severity = Severity.ERROR
    message = "mixture expert that does not depend on the candidate token: `{expr}`"

    def check(self, ctx: object) -> Iterable[Finding]:
        model = analyze(ctx)  # type: ignore[arg-type]
        for f in model.functions():
            src = model.sources.get(f.file, "")
            for stack, free in _findings(f, model):
                yield self.finding(
                    file=f.file,
                    line=stack.lineno,
                    function=_label(f),
                    evidence=expr_text(stack, src),
                    expr=expr_text(free, src, 80),
                )

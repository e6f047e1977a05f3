"""PG307 (R4, warning): a data-preparation script whose validation/training split is not the
challenge's.

The validation split is the first 50,000 documents of the FineWeb document stream; the
challenge's own preparation script writes documents before that count to `fineweb_val_*` and
the rest to `fineweb_train_*`. A submission that ships its own preparation script with a smaller
count (`if n_docs < args.val_docs:` with `--val-docs` defaulting to 10,000) puts the documents
between that count and 50,000 — validation documents — into its training shards, if its shards
were built with that setting. Which build trained a model is not in the code, so this is a
warning with the split line and where its count comes from.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import TYPE_CHECKING

from audit import astcache
from audit.model import Finding, Rule, Severity, register
from audit.pyast import walk_no_defs

if TYPE_CHECKING:
    from audit.context import AuditContext, SourceFile

VAL_DOCS = 50_000  # documents in the validation split (RULES.md: the task)


# none of these node types has subclasses: a type test is isinstance
_SCOPES = frozenset({ast.FunctionDef, ast.Module})
_BRANCHES = frozenset({ast.If, ast.IfExp})


def _strings(nodes: list[ast.AST] | ast.AST) -> str:
    """Every string literal (and literal part of an f-string) under `nodes`, joined."""
    roots = nodes if isinstance(nodes, list) else [nodes]
    return " ".join(
        n.value
        for root in roots
        for n in astcache.walk(root)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def _role(text: str) -> str | None:
    """Which shards a branch writes: `fineweb_val_...` / `"val"` or `fineweb_train_...`."""
    val = "fineweb_val_" in text or text.strip() == "val"
    train = "fineweb_train_" in text or text.strip() == "train"
    return "val" if val and not train else "train" if train and not val else None


def _filled(nodes: list[ast.AST]) -> set[str]:
    """Names a branch adds documents to: `buf.extend(...)`, `buf.append(...)`, `buf += ...`."""
    out: set[str] = set()
    for root in nodes:
        for n in astcache.walk(root):
            if (
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr in ("extend", "append", "write")
                and isinstance(n.func.value, ast.Name)
            ):
                out.add(n.func.value.id)
            elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
                out.add(n.target.id)
    return out


def _branch_role(nodes: list[ast.AST], scope: ast.AST) -> str | None:
    """Which shards a branch feeds: by the shard names it writes, or else by those of the
    writes elsewhere in the function that take the buffers it fills."""
    role = _role(_strings(nodes))
    if role is not None:
        return role
    names = _filled(nodes)
    roles = set()
    for n in astcache.walk(scope):
        if not isinstance(n, ast.Call):
            continue
        used = {a.id for a in astcache.walk(n) if isinstance(a, ast.Name)}
        if used & names:
            r = _role(_strings(n))
            if r is not None:
                roles.add(r)
    return roles.pop() if len(roles) == 1 else None


def _int_defaults(
    tree: ast.Module,
) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """(module constants, argparse defaults): name -> (value, line) for ints."""
    consts: dict[str, tuple[int, int]] = {}
    options: dict[str, tuple[int, int]] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and type(node.value.value) is int
        ):
            consts[node.targets[0].id] = (node.value.value, node.lineno)
    for node in astcache.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
        ):
            continue
        flags = [
            a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
        default = next((k.value for k in node.keywords if k.arg == "default"), None)
        value = None
        if isinstance(default, ast.Constant) and type(default.value) is int:
            value = default.value
        elif isinstance(default, ast.Name) and default.id in consts:
            value = consts[default.id][0]
        long = [f for f in flags if f.startswith("--")]
        if value is not None and long:
            options[long[0][2:].replace("-", "_")] = (value, node.lineno)
    return consts, options


def _count(
    e: ast.AST, consts: dict[str, tuple[int, int]], options: dict[str, tuple[int, int]]
) -> tuple[int, int | None] | None:
    """The document count `e` stands for: a literal, a module constant or an option default."""
    if isinstance(e, ast.Constant) and type(e.value) is int:
        return e.value, None
    if isinstance(e, ast.Name) and e.id in consts:
        return consts[e.id]
    if isinstance(e, ast.Attribute) and e.attr in options:
        return options[e.attr]
    return None


def _split(
    test: ast.AST, consts: dict[str, tuple[int, int]], options: dict[str, tuple[int, int]]
) -> tuple[ast.AST, tuple[int, int | None], bool] | None:
    """`n < K` / `K > n` -> (K, its count, True: the true branch gets the first K documents);
    `n >= K` / `K <= n` -> (..., False)."""
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return None
    op, left, right = test.ops[0], test.left, test.comparators[0]
    below = isinstance(op, ast.Lt | ast.LtE)
    if not below and not isinstance(op, ast.Gt | ast.GtE):
        return None
    count = _count(right, consts, options)
    if count is not None:
        return right, count, below
    count = _count(left, consts, options)
    if count is not None:
        return left, count, not below
    return None


@register
class ShortValidationSplitInPrep(Rule):
    """A shipped data-preparation script splits validation from training at fewer than 50,000
    documents.

    ## What it does
    Finds a branch on a document counter (`if n_docs < K:` or `"val" if i < K else "train"`)
    whose one side writes validation shards (`fineweb_val_*`) and whose other side writes
    training shards (`fineweb_train_*`), resolves `K` (a literal, a module constant, or the
    default of a command-line option such as `--val-docs`), and warns when it is below 50,000.

    ## Why is this bad?
    The validation split is the first 50,000 documents. Shards prepared with a smaller split
    put the documents from `K` to 50,000 into training: the model trains on validation
    documents (R4). Which build of the shards trained the model is not in the code (the same
    script can be run with `--val-docs 50000`, or the shards downloaded ready-made), so this is
    a warning to check against the folder's data notes.

    ## Illegal example
    ```python
    import argparse

    def main():
        ap = argparse.ArgumentParser()
        ap.add_argument("--val-docs", type=int, default=10_000)
        args = ap.parse_args()
        for n_docs, doc in enumerate(open("docs_selected.jsonl")):
            if n_docs < args.val_docs:
                write("fineweb_val_000000.bin", doc)
            else:
                write("fineweb_train_000000.bin", doc)
    ```

    ## Legal example
    ```python
    import argparse

    def main():
        ap = argparse.ArgumentParser()
        ap.add_argument("--val-docs", type=int, default=50_000)
        args = ap.parse_args()
        for n_docs, doc in enumerate(open("docs_selected.jsonl")):
            if n_docs < args.val_docs:
                write("fineweb_val_000000.bin", doc)
            else:
                write("fineweb_train_000000.bin", doc)
    ```

    ## References
    - RULES.md R4 and "The task" (the first 50,000 documents are the validation split).
    """

    id = "PG307"
    name = "short-validation-split-in-prep"
    condition = "R4"
    severity = Severity.WARNING
    message = (
        "data preparation writes the first {k:,} documents to validation shards and the rest "
        "to training shards ({source}); the validation split is the first 50,000 documents, so "
        "training shards built this way hold {overlap:,} validation documents"
    )

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        for rel, src in sorted(ctx.sources.items()):
            if src.tree is None or "fineweb_" not in src.text:
                continue
            consts, options = _int_defaults(src.tree)
            scopes = [n for n in astcache.walk(src.tree) if type(n) in _SCOPES]
            for scope in scopes:
                yield from self._splits(rel, src, scope, consts, options)

    def _splits(
        self,
        rel: str,
        src: SourceFile,
        scope: ast.AST,
        consts: dict[str, tuple[int, int]],
        options: dict[str, tuple[int, int]],
    ) -> Iterator[Finding]:
        for node in walk_no_defs(scope):
            if type(node) not in _BRANCHES:
                continue
            split = _split(node.test, consts, options)
            if split is None or not 0 < split[1][0] < VAL_DOCS:
                continue
            bound, (k, where), first = split
            if isinstance(node, ast.If):
                yes = _branch_role(list(node.body), scope)
                no = _branch_role(list(node.orelse), scope)
            else:
                yes, no = _role(_strings(node.body)), _role(_strings(node.orelse))
            if (yes, no) != (("val", "train") if first else ("train", "val")):
                continue
            source = f"`{ast.unparse(bound)}`" + (f", set at line {where}" if where else "")
            yield self.finding(
                file=rel,
                line=node.lineno,
                evidence=src.excerpt(node.lineno, 0),
                k=k,
                source=source,
                overlap=VAL_DOCS - k,
            )

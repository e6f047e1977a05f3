"""R4/R5 data-separation rules (PG3xx): validation data must not shape the artifact, and
training data used at evaluation must be inside it.

The rules rest on the phase model (`audit.phases`): val/train taint followed through
assignments, calls and returns, and the phase of each use (before the artifact is written:
training; after it is loaded: evaluation). Monitoring a validation loss during training is
tolerated by R4 and is not flagged (no gradient, no stored value, no selection).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from audit import astcache
from audit.flow.index import FunctionInfo
from audit.folder import read_text
from audit.model import Finding, Rule, Severity, register
from audit.phases import EVAL, TRAIN, PhaseModel, analyze
from audit.rules._phase_rule import PhaseRule, before_artifact_updates, func_name, site_finding

if TYPE_CHECKING:
    from audit.context import AuditContext

_HOOKS = frozenset({"register_forward_hook", "register_forward_pre_hook", "register_hook"})
_SAVE = re.compile(r"(^|\.)(save|dump|savez|savez_compressed|write|compress)$")
_READERS = re.compile(
    r"(^|\.)(open|fromfile|memmap|load|glob|iglob|read_bytes|load_data_shard|load_tokens)$"
)
_SELECT_CALLS = re.compile(r"state_dict|deepcopy|clone|save|copy_")


def _note(pm: PhaseModel, node: ast.AST) -> str:
    n = pm.reach(node).note
    return f" ({n})" if n else ""


@register
class ValGradientInTraining(PhaseRule):
    """Validation data feeds a gradient step before the artifact is written.

    ## What it does
    Follows validation data (`fineweb_val_*` shards, byte sidecars, tensors and loaders built
    from them) through assignments and calls, and flags `loss.backward()` on a loss computed
    from it in code that runs before the artifact is serialized: training on the val shard,
    warmup on val, fitting temperatures or mixing weights by gradient on val, pre-quant TTT.

    ## Why is this bad?
    R4: validation data must feed no gradient of anything that ends up in the artifact.

    ## Illegal example
    ```python
    import glob
    import torch

    def main():
        files = sorted(glob.glob("data/fineweb_val_*.bin"))
        tokens = torch.cat([torch.load(f) for f in files])
        model = torch.nn.Linear(4, 4)
        opt = torch.optim.AdamW(model.parameters())
        for step in range(100):
            loss = model(tokens[step:step + 64], tokens[step + 1:step + 65])
            loss.backward()
            opt.step()
        torch.save(model.state_dict(), "final_model.ptz")

    if __name__ == "__main__":
        main()
    ```

    ## Legal example
    ```python
    import glob
    import torch

    def main():
        tokens = torch.cat([torch.load(f) for f in sorted(glob.glob("data/fineweb_train_*.bin"))])
        val = torch.cat([torch.load(f) for f in sorted(glob.glob("data/fineweb_val_*.bin"))])
        model = torch.nn.Linear(4, 4)
        opt = torch.optim.AdamW(model.parameters())
        for step in range(100):
            loss = model(tokens[step:step + 64], tokens[step + 1:step + 65])
            loss.backward()
            opt.step()
            if step % 50 == 0:
                with torch.no_grad():
                    print("val_loss", model(val[:-1], val[1:]).item())
        torch.save(model.state_dict(), "final_model.ptz")

    if __name__ == "__main__":
        main()
    ```

    ## References
    - RULES.md R4 (docs/rules.md); docs/audit-phases.md
    """

    id = "PG301"
    name = "val-gradient-in-training"
    condition = "R4"
    severity = Severity.ERROR
    message = "validation data reaches a gradient step before serialization in `{func}`{note}"

    def _check(self, ctx: AuditContext) -> Iterator[Finding]:
        pm = analyze(ctx)
        for upd in before_artifact_updates(pm):
            yield site_finding(self, pm, upd.file, upd.node, upd.func, note=_note(pm, upd.node))


def _calibration_functions(pm: PhaseModel) -> list[FunctionInfo]:
    """Functions that collect activation statistics: forward hooks or X^T X accumulations."""
    if "calibration_functions" in pm.memo:
        return pm.memo["calibration_functions"]
    out = []
    registrars: set[str] = set()
    for fn in pm.index.iter_functions():
        _, calls, _, mats = pm.val.parts(fn.node)
        hooks = any(isinstance(c.func, ast.Attribute) and c.func.attr in _HOOKS for c in calls)
        if hooks:
            registrars.add(fn.qualname)
        if hooks or any(_is_gram(c) for c in calls) or any(_is_gram(m) for m in mats):
            out.append(fn)
    # functions that install hooks through a helper (`hooks = _register_hooks(model, H)`) and
    # then run the model are calibration too
    for fn in pm.index.iter_functions():
        if fn in out:
            continue
        for c in pm.val.parts(fn.node)[1]:
            callee = pm.index.resolve_call(c, fn.file, fn)
            if callee is not None and callee.qualname in registrars:
                out.append(fn)
                break
    pm.memo["calibration_functions"] = out
    return out


def _transposed(e: ast.AST) -> bool:
    text = astcache.unparse(e)
    return text.endswith((".T", ".t()", ".mT")) or "transpose(" in text


def _is_gram(n: ast.AST) -> bool:
    """Second-moment statistics: `x.T @ x`, `torch.matmul(x.T, x)`, `torch.mm(x.t(), x)`,
    `H.addmm_(x.T, x)`, `torch.einsum("bi,bj->ij", x, x)`."""
    if isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult):
        return _transposed(n.left)
    if not isinstance(n, ast.Call):
        return False
    f = n.func
    short = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
    if short in ("addmm_", "addmm", "mm", "matmul", "bmm") and n.args:
        first = n.args[1] if short.startswith("addmm") and len(n.args) > 1 else n.args[0]
        if short == "addmm_":
            first = n.args[0]
        return _transposed(first)
    if short == "einsum" and len(n.args) >= 3:
        return astcache.unparse(n.args[1]) == astcache.unparse(n.args[2])
    return False


@register
class ValCalibration(PhaseRule):
    """Validation data reaches calibration (GPTQ/Hessian statistics, quantization scales).

    ## What it does
    Finds functions that gather activation statistics (forward hooks, `X.T @ X` Hessians)
    and flags every call that hands them validation data, whatever the names involved (a
    val loader passed as `train_loader`, a `calib` variable holding val tokens), in code that
    runs before the artifact is written.

    ## Why is this bad?
    R4: calibration decides what is stored in the artifact (quantized weights, scales); it
    must not see validation data.

    ## Illegal example
    ```python
    import torch

    def collect_hessians(model, loader, n):
        H = {}
        for _ in range(n):
            x = loader.next_batch()
            H["w"] = H.get("w", 0) + x.T @ x
        return H

    def main():
        model = torch.nn.Linear(4, 4)
        calib = TokenLoader("data/fineweb_val_*.bin")
        hessians = collect_hessians(model, calib, 64)
        torch.save({"h": hessians, "m": model.state_dict()}, "final_model.ptz")

    if __name__ == "__main__":
        main()
    ```

    ## Legal example
    ```python
    import torch

    def collect_hessians(model, loader, n):
        H = {}
        for _ in range(n):
            x = loader.next_batch()
            H["w"] = H.get("w", 0) + x.T @ x
        return H

    def main():
        model = torch.nn.Linear(4, 4)
        calib = TokenLoader("data/fineweb_train_*.bin")
        hessians = collect_hessians(model, calib, 64)
        torch.save({"h": hessians, "m": model.state_dict()}, "final_model.ptz")

    if __name__ == "__main__":
        main()
    ```

    ## References
    - RULES.md R4 (docs/rules.md); docs/audit-phases.md
    """

    id = "PG302"
    name = "val-calibration"
    condition = "R4"
    severity = Severity.ERROR
    message = "validation data passed to calibration `{callee}` before serialization{note}"

    def _check(self, ctx: AuditContext) -> Iterator[Finding]:
        pm = analyze(ctx)
        yield from (f for f, _ in _calibration_findings(self, pm))


def _calibration_findings(rule: Rule, pm: PhaseModel) -> list[tuple[Finding, ast.AST]]:
    out: list[tuple[Finding, ast.AST]] = []
    seen: set[tuple[str, int]] = set()
    for cal in _calibration_functions(pm):
        for edge in pm.val.callers_with_taint(cal):
            call = edge.call
            phases = pm.phases_of(call)
            if not pm.is_reached(call) or (EVAL in phases and TRAIN not in phases):
                continue
            file = edge.caller.file if edge.caller else pm._file_of(call)
            key = (file, call.lineno)
            if key in seen:
                continue
            seen.add(key)
            f = rule.finding(
                file=file,
                line=call.lineno,
                function=func_name(edge.caller),
                evidence=pm.line_text(file, call.lineno),
                callee=cal.name,
                note=_note(pm, call),
            )
            out.append((f, call))
    return out


@register
class ValStoredInArtifact(PhaseRule):
    """Validation tokens or values computed from them are written into the artifact.

    ## What it does
    Flags a serialization call (`torch.save`, `pickle.dump`, `np.save`, `.write`,
    compression) before the artifact is loaded whose payload carries validation data: a
    "paid prefix" of val tokens, n-gram tables or statistics built from the val shard.

    ## Why is this bad?
    R4: no stored token and no fitted value may come from validation data.

    ## Illegal example
    ```python
    import torch

    def main():
        val_tokens = torch.load("data/fineweb_val_000000.bin")
        model = torch.nn.Linear(4, 4)
        blob = {"model": model.state_dict(), "prefix": val_tokens[:4096]}
        torch.save(blob, "final_model.ptz")

    if __name__ == "__main__":
        main()
    ```

    ## Legal example
    ```python
    import torch

    def main():
        train_tokens = torch.load("data/fineweb_train_000000.bin")
        model = torch.nn.Linear(4, 4)
        blob = {"model": model.state_dict(), "bigram": torch.bincount(train_tokens)}
        torch.save(blob, "final_model.ptz")

    if __name__ == "__main__":
        main()
    ```

    ## References
    - RULES.md R4 (docs/rules.md); docs/audit-phases.md
    """

    id = "PG303"
    name = "val-stored-in-artifact"
    condition = "R4"
    severity = Severity.ERROR
    message = "serialized payload carries validation data (`{expr}`){note}"

    def _check(self, ctx: AuditContext) -> Iterator[Finding]:
        pm = analyze(ctx)
        if _calibration_findings(ValCalibration(), pm):
            return  # the calibrated weights carry the taint; PG302 already says why
        if pm.trace.serialize is None:
            return
        seen: set[tuple[str, int]] = set()
        for occ in pm.trace.occurrences:
            if pm.phase_of_occurrence(occ) != TRAIN:
                continue
            if isinstance(occ.stmt, ast.If | ast.For | ast.While | ast.With | ast.Try):
                continue
            for n in astcache.walk(occ.stmt):
                if not isinstance(n, ast.Call) or not _SAVE.search(astcache.unparse(n.func)):
                    continue
                if not n.args or not pm.val.tainted_in(n.args[0], occ.func, occ.file):
                    continue
                key = (occ.file, n.lineno)
                if key in seen:
                    continue
                seen.add(key)
                yield self.finding(
                    file=occ.file,
                    line=n.lineno,
                    function=func_name(occ.func),
                    evidence=pm.line_text(occ.file, n.lineno),
                    expr=astcache.unparse(n.args[0])[:80],
                    note=_note(pm, n),
                )


_SCORE_CALL = re.compile(r"cross_entropy|nll|loss|eval|score|bpb|perplex|bits", re.I)
_SCORE_ATTR = re.compile(r"loss|bpb|score|nll|ppl|perplex|bits", re.I)


def _defs(fn: FunctionInfo | None) -> dict[str, list[ast.expr]]:
    out: dict[str, list[ast.expr]] = {}
    if fn is None:
        return out
    for n in astcache.walk(fn.node):
        if isinstance(n, ast.Assign):
            for t in n.targets:
                elts = t.elts if isinstance(t, ast.Tuple) else [t]
                vals = (
                    n.value.elts
                    if isinstance(t, ast.Tuple)
                    and isinstance(n.value, ast.Tuple)
                    and len(n.value.elts) == len(elts)
                    else [n.value] * len(elts)
                )
                for e, v in zip(elts, vals):
                    if isinstance(e, ast.Name):
                        out.setdefault(e.id, []).append(v)
        elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
            out.setdefault(n.target.id, []).append(n.value)
    return out


def _score_like(e: ast.AST, defs: dict[str, list[ast.expr]], depth: int = 0) -> bool:
    """Is `e` an evaluation score (computed by a loss/eval call, or a loss/bpb field)
    rather than some other val-derived quantity such as a count?"""
    for n in astcache.walk(e):
        if isinstance(n, ast.Call):
            f = n.func
            short = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if _SCORE_CALL.search(short):
                return True
        elif isinstance(n, ast.Attribute | ast.Name):
            name = n.attr if isinstance(n, ast.Attribute) else n.id
            if _SCORE_ATTR.search(name):
                return True
            chase = isinstance(n, ast.Name) and depth < 3
            if chase and any(_score_like(v, defs, depth + 1) for v in defs.get(name, [])):
                return True
    return False


def _selects(pm: PhaseModel, body: list[ast.stmt], occ_func: FunctionInfo | None) -> bool:
    """The branch stops training, keeps a checkpoint, or records a choice (a value that is
    not itself the val score: `best_w = w`, `best_step = step`)."""
    file = pm._file_of(body[0]) if body else ""
    for s in body:
        for n in astcache.walk(s):
            if isinstance(n, ast.Break):
                return True
            if isinstance(n, ast.Call) and _SELECT_CALLS.search(astcache.unparse(n.func)):
                return True
            if isinstance(n, ast.Assign):
                values = (
                    n.value.elts
                    if isinstance(n.value, ast.Tuple) and isinstance(n.targets[0], ast.Tuple)
                    else [n.value]
                )
                for v in values:
                    if isinstance(v, ast.Constant):
                        continue
                    if not pm.val.tainted_in(v, occ_func, file):
                        return True
    return False


@register
class ValSelection(PhaseRule):
    """A choice made during training depends on a validation score (early stopping, pick).

    ## What it does
    Flags an `if` in the training phase whose test carries validation data and whose body
    stops training, keeps a checkpoint (`state_dict`, `deepcopy`, `save`) or returns, i.e.
    early stopping or checkpoint / hyperparameter selection by validation score.

    ## Why is this bad?
    R4: validation data must not drive the choices behind the artifact. Printing a
    validation loss while training is tolerated; acting on it is not.

    ## Illegal example
    ```python
    import copy
    import torch

    def main():
        val = torch.load("data/fineweb_val_000000.bin")
        model = torch.nn.Linear(4, 4)
        best, best_state = 1e9, None
        for step in range(1000):
            train_step(model)
            with torch.no_grad():
                val_loss = model(val[:-1], val[1:]).item()
            if val_loss < best:
                best, best_state = val_loss, copy.deepcopy(model.state_dict())
        torch.save(best_state, "final_model.ptz")

    if __name__ == "__main__":
        main()
    ```

    ## Legal example
    ```python
    import torch

    def main():
        val = torch.load("data/fineweb_val_000000.bin")
        model = torch.nn.Linear(4, 4)
        for step in range(1000):
            train_step(model)
            if step % 100 == 0:
                with torch.no_grad():
                    print("val_loss", model(val[:-1], val[1:]).item())
        torch.save(model.state_dict(), "final_model.ptz")

    if __name__ == "__main__":
        main()
    ```

    ## References
    - RULES.md R4 (docs/rules.md); docs/audit-phases.md
    """

    id = "PG304"
    name = "val-selection"
    condition = "R4"
    severity = Severity.ERROR
    message = "training-phase decision depends on a validation score: `{expr}`{note}"

    def _check(self, ctx: AuditContext) -> Iterator[Finding]:
        pm = analyze(ctx)
        if pm.trace.serialize is None:
            return
        seen: set[int] = set()
        for occ in pm.trace.occurrences:
            if pm.phase_of_occurrence(occ) != TRAIN:
                continue
            s = occ.stmt
            if not isinstance(s, ast.If) or id(s) in seen:
                continue
            seen.add(id(s))
            compares = [c for c in astcache.walk(s.test) if isinstance(c, ast.Compare)]
            tainted = [c for c in compares if pm.val.tainted_in(c, occ.func, occ.file)]
            if not tainted:
                continue
            key = f"defs:{occ.func.qualname if occ.func else occ.file}"
            if key not in pm.memo:
                pm.memo[key] = _defs(occ.func)
            if not any(_score_like(c, pm.memo[key]) for c in tainted):
                continue
            if not _selects(pm, s.body, occ.func):
                continue
            yield self.finding(
                file=occ.file,
                line=s.lineno,
                function=func_name(occ.func),
                evidence=pm.line_text(occ.file, s.lineno),
                expr=astcache.unparse(s.test)[:80],
                note=_note(pm, s),
            )


@register
class TrainDataAtEval(PhaseRule):
    """Training shards are read after the artifact is loaded (evaluation-time train data).

    ## What it does
    Follows training-data paths (`fineweb_train_*`) and flags reads of them (opening,
    loading, globbing, building a loader) in code that runs after the artifact is written,
    e.g. n-gram tables rebuilt from train shards at evaluation.

    ## Why is this bad?
    R5: training data used at evaluation must be inside the artifact and counted by R1;
    reading the shards at evaluation smuggles unbounded data past the 16 MB cap.

    ## Illegal example
    ```python
    import glob
    import numpy as np
    import torch

    def main():
        model = torch.nn.Linear(4, 4)
        torch.save(model.state_dict(), "final_model.ptz")
        model.load_state_dict(torch.load("final_model.ptz"))
        table = np.zeros(1024)
        for f in glob.glob("data/fineweb_train_*.bin"):
            table += np.bincount(np.fromfile(f, dtype=np.uint16), minlength=1024)
        print(table.sum())

    if __name__ == "__main__":
        main()
    ```

    ## Legal example
    ```python
    import glob
    import numpy as np
    import torch

    def main():
        table = np.zeros(1024)
        for f in glob.glob("data/fineweb_train_*.bin"):
            table += np.bincount(np.fromfile(f, dtype=np.uint16), minlength=1024)
        torch.save({"table": table}, "final_model.ptz")
        print(torch.load("final_model.ptz")["table"].sum())

    if __name__ == "__main__":
        main()
    ```

    ## References
    - RULES.md R5 (docs/rules.md); docs/audit-phases.md
    """

    id = "PG305"
    name = "train-data-at-eval"
    condition = "R5"
    # A warning: whether the data read at eval is inside the artifact's byte count is a
    # judgement on the whole submission (e.g. a small calibration fit), not a proof here.
    severity = Severity.WARNING
    message = "training data read after the artifact is written: `{expr}`{note}"

    def _check(self, ctx: AuditContext) -> Iterator[Finding]:
        pm = analyze(ctx)
        if pm.trace.serialize is None:
            return
        seen: set[tuple[str, str]] = set()
        for occ in pm.trace.occurrences:
            if pm.phase_of_occurrence(occ) != EVAL:
                continue
            if isinstance(occ.stmt, ast.If | ast.While | ast.With | ast.Try):
                nodes: list[ast.AST] = [
                    getattr(occ.stmt, "test", None) or occ.stmt  # type: ignore[list-item]
                ]
                if isinstance(occ.stmt, ast.With):
                    nodes = [i.context_expr for i in occ.stmt.items]
            elif isinstance(occ.stmt, ast.For):
                nodes = [occ.stmt.iter]
            else:
                nodes = [occ.stmt]
            for root in nodes:
                for n in astcache.walk(root):
                    if not isinstance(n, ast.Call):
                        continue
                    name = astcache.unparse(n.func)
                    local = pm.index.resolve_call(n, occ.file, occ.func)
                    if not (_READERS.search(name) or local is not None):
                        continue
                    args = list(n.args) + [k.value for k in n.keywords]
                    if not any(
                        _intrinsic(pm, a, occ.func, occ.file)
                        and not _unread_settings(pm, n, a, occ.func, local)
                        for a in args
                    ):
                        continue
                    key = (occ.file, occ.func.qualname if occ.func else "")
                    if key in seen:
                        continue
                    seen.add(key)
                    yield self.finding(
                        file=occ.file,
                        line=n.lineno,
                        function=func_name(occ.func),
                        evidence=pm.line_text(occ.file, n.lineno),
                        expr=astcache.unparse(n)[:80],
                        note=_note(pm, n),
                    )


def _unread_settings(
    pm: PhaseModel,
    call: ast.Call,
    arg: ast.AST,
    fn: FunctionInfo | None,
    callee: FunctionInfo | None,
) -> bool:
    """`evaluate(args, ...)` where `args` carries train taint only through fields stored on it
    (`args.train_files = ...`) and the called function never reads those fields."""
    if fn is None or callee is None or not isinstance(arg, ast.Name):
        return False
    fields: set[str] = set()
    for n in astcache.walk(fn.node):
        if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id == arg.id and not _constructed(pm, n.value):
                    return False  # the name itself is bound to data
                if (
                    isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                    and t.value.id == arg.id
                ):
                    fields.add(t.attr)
    if not fields:
        return False
    pos = [i for i, a in enumerate(call.args) if a is arg]
    kw = [k.arg for k in call.keywords if k.value is arg and k.arg]
    params = [p for p in callee.params if p not in ("self", "cls")]
    names = {params[i] for i in pos if i < len(params)} | set(kw)
    return bool(names) and not _reads_fields(pm, callee, names, fields, 0)


def _constructed(pm: PhaseModel, value: ast.AST | None) -> bool:
    """`Hyperparameters()`: an instance of a class of the submission."""
    if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Name):
        return False
    return value.func.id in getattr(pm.index, "classes", {})


def _reads_fields(
    pm: PhaseModel, fn: FunctionInfo, params: set[str], fields: set[str], depth: int
) -> bool:
    """`fn` reads one of `fields` of a parameter in `params`, itself or through the functions
    it passes that parameter to (a few calls deep; a call we cannot resolve counts as a read)."""
    for n in astcache.walk(fn.node):
        if (
            isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name)
            and n.value.id in params
            and n.attr in fields
        ):
            return True
        if not isinstance(n, ast.Call):
            continue
        passed = [i for i, a in enumerate(n.args) if isinstance(a, ast.Name) and a.id in params]
        passed_kw = [
            k.arg for k in n.keywords if isinstance(k.value, ast.Name) and k.value.id in params
        ]
        if not passed and not passed_kw:
            continue
        callee = pm.index.resolve_call(n, fn.file, fn)
        if callee is None or depth >= 3:
            return True  # handed to code we cannot follow: it may read the field
        inner = [p for p in callee.params if p not in ("self", "cls")]
        sub = {inner[i] for i in passed if i < len(inner)} | {k for k in passed_kw if k}
        if sub and _reads_fields(pm, callee, sub, fields, depth + 1):
            return True
    return False


def _intrinsic(pm: PhaseModel, e: ast.AST, fn: FunctionInfo | None, file: str) -> bool:
    """Train taint that originates in this function itself (not via a parameter), so that a
    shard reader shared by the train loader and the val loader is not blamed at eval."""
    ta = pm.train_data
    if fn is None:
        return ta.tainted_in(e, None, file)
    names = ta.analyse(fn, frozenset(), False).names
    return ta.expr(e, names.copy() if hasattr(names, "sites") else set(names), fn, file)


_ALIAS = re.compile(r"\b(ln|cp|mv|rsync|install)\b[^\n]*fineweb_val_[^\n]*fineweb_train_")


@register
class ValAliasedAsTrain(PhaseRule):
    """The run command or a setup script makes the validation shard the training data.

    ## What it does
    Reads the README, shell scripts and the effective configuration for a validation shard
    linked or copied to a training-shard name (`ln -s .../fineweb_val_000000.bin
    .../fineweb_train_000000.bin`) or a training-file setting that points at val shards.

    ## Why is this bad?
    R4: training on the validation split (and then scoring it) is the plainest violation;
    the code can be the untouched baseline while the data layout does it.

    ## Illegal example
    ```python
    # pgolf-env: TRAIN_FILES=./data/fineweb_val_*.bin
    import os
    train_files = os.environ.get("TRAIN_FILES", "./data/fineweb_train_*.bin")
    ```

    ```text
    ln -s data/fineweb_val_000000.bin data_valonly/fineweb_train_000000.bin
    DATA_PATH=data_valonly torchrun --nproc_per_node=8 train_gpt.py
    ```

    ## Legal example
    ```python
    # pgolf-env: TRAIN_FILES=./data/fineweb_train_*.bin
    import os
    train_files = os.environ.get("TRAIN_FILES", "./data/fineweb_train_*.bin")
    ```

    ## References
    - RULES.md R4 (docs/rules.md); docs/audit-phases.md
    """

    id = "PG306"
    name = "val-aliased-as-train"
    condition = "R4"
    severity = Severity.ERROR
    message = "validation shard used as training data: `{expr}`"

    def _check(self, ctx: AuditContext) -> Iterator[Finding]:
        texts: list[tuple[str, str]] = []
        if ctx.readme:
            texts.append(("README.md", ctx.readme))
        for rel, f in sorted(ctx.files.items()):
            if rel.endswith(".sh") and not f.binary:
                try:
                    texts.append((rel, read_text(f, 200_000)[0]))
                except OSError:
                    continue
        for rel, text in texts:
            for i, line in enumerate(text.splitlines(), 1):
                m = _ALIAS.search(line)
                if m:
                    yield self.finding(
                        file=rel, line=i, evidence=line.strip()[:200], expr=m.group(0)[:120]
                    )
        for key, value in ctx.config.items():
            if "TRAIN" in key and ("fineweb_val" in value or re.search(r"(^|[/_])val_\*", value)):
                yield self.finding(expr=f"{key}={value}"[:120])

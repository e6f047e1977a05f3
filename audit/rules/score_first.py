"""C3 score-before-update rules (PG6xx): adaptation on validation tokens before they are scored.

All three rules rest on the phase model (`audit.phases`): validation taint reaching a
`backward()`, the phase of that update (before the artifact is written, or after it is
loaded), and the score-first test of `audit.flow.adapt`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from audit.flow.adapt import (
    Update,
    is_slot,
    is_throwaway,
    looked_up_first,
    scored_first,
    val_count_updates,
    val_updates,
)
from audit.model import Finding, Severity, register
from audit.phases import EVAL, UNKNOWN, PhaseModel, analyze
from audit.rules._phase_rule import PhaseRule, before_artifact_updates, site_finding

if TYPE_CHECKING:
    from audit.context import AuditContext


_OFF = " (switched off in the logged configuration: not counted, review if it ever runs)"


def _suffix(pm: PhaseModel, upd: Update) -> str:
    if not upd.reached:
        return _OFF
    note = pm.reach(upd.node).note
    return f" ({note})" if note else ""


def _severity(upd: Update) -> Severity | None:
    return None if upd.reached else Severity.WARNING


def _eval_side(ctx: AuditContext) -> Iterator[tuple[PhaseModel, Update, str]]:
    """Validation-driven updates after the artifact (or with no artifact write found)."""
    pm = analyze(ctx)
    for upd in val_updates(pm, include_off=True):
        if upd.reached and not (upd.phases & {EVAL, UNKNOWN}) and upd.phases:
            continue
        if is_throwaway(upd.func, upd.node):
            continue
        verdict = scored_first(pm, upd.node, upd.func)
        if verdict != "legal":
            yield pm, upd, verdict


@register
class AdaptBeforeScore(PhaseRule):
    """Test-time training on validation tokens before those tokens are scored.

    ## What it does
    Finds gradient updates (`loss.backward()`) whose loss is computed from validation data
    after the artifact is loaded, and checks the score-first shape: some loop enclosing the
    update (or enclosing a call that passes the validation data in) must score the chunk,
    accumulating its loss, *before* training on it. Scoring only on the last of several
    epochs over the same chunks does not count.

    ## Why is this bad?
    C3: adaptation may use a chunk only after every token of it was scored. Training on
    `val_tokens` for some epochs and then evaluating them reports a score on data the model
    has just fitted.

    ## Illegal example
    ```python
    import torch
    val_tokens = torch.load("fineweb_val_000000.pt")

    def ttt_adapt(model, tokens, epochs):
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        for _ in range(epochs):
            for i in range(0, tokens.numel() - 1, 1024):
                loss = model(tokens[i:i + 1024], tokens[i + 1:i + 1025])
                opt.zero_grad()
                loss.backward()
                opt.step()

    def main():
        model = torch.load("final_model.pt")
        ttt_adapt(model, val_tokens, 3)
        with torch.no_grad():
            print(model(val_tokens[:-1], val_tokens[1:]))

    if __name__ == "__main__":
        main()
    ```

    ## Legal example
    ```python
    import torch
    val_tokens = torch.load("fineweb_val_000000.pt")

    def eval_score_first(model, tokens):
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        loss_sum = 0.0
        for i in range(0, tokens.numel() - 1, 1024):
            x, y = tokens[i:i + 1024], tokens[i + 1:i + 1025]
            with torch.no_grad():
                loss_sum += model(x, y).item()
            loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss_sum

    if __name__ == "__main__":
        print(eval_score_first(torch.load("final_model.pt"), val_tokens))
    ```

    ## References
    - RULES.md C3 (docs/rules.md); docs/audit-phases.md
    """

    id = "PG601"
    name = "adapt-before-score"
    condition = "C3"
    severity = Severity.ERROR
    message = "model adapted on validation tokens {how} in `{func}`{note}"

    def _check(self, ctx: AuditContext) -> Iterator[Finding]:
        for problem in analyze(ctx).problems:
            yield self.finding(severity=Severity.INFO, message=f"C3 not checked: {problem}")
        for pm, upd, verdict in _eval_side(ctx):
            if is_slot(upd.func):
                continue
            how = (
                "over several epochs, scoring chunks already trained on"
                if verdict == "epochs"
                else "before they are scored (no score-first loop)"
            )
            yield site_finding(
                self,
                pm,
                upd.file,
                upd.node,
                upd.func,
                how=how,
                note=_suffix(pm, upd),
                severity=_severity(upd),
            )


@register
class PreQuantValAdaptation(PhaseRule):
    """Gradient steps on validation data before the artifact is written (pre-quant TTT).

    ## What it does
    Finds `loss.backward()` on a loss computed from validation data in code that runs before
    the compressed artifact is serialized (the phase model orders `main()` and the functions
    it calls), e.g. AdamW fine-tuning on `val_tokens` before GPTQ and saving.

    ## Why is this bad?
    C3 (and R4): the validation tokens are trained on and then scored by the saved model;
    nothing about it is score-first. The adapted weights also end up in the artifact.

    ## Illegal example
    ```python
    import torch
    val_tokens = torch.load("fineweb_val_000000.pt")

    def prequant_ttt(model, tokens):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for epoch in range(6):
            loss = model(tokens[:-1], tokens[1:])
            opt.zero_grad()
            loss.backward()
            opt.step()

    def main():
        model = torch.nn.Linear(4, 4)
        prequant_ttt(model, val_tokens)
        torch.save(model.state_dict(), "final_model.ptz")

    if __name__ == "__main__":
        main()
    ```

    ## Legal example
    ```python
    import torch
    train_tokens = torch.load("fineweb_train_000000.pt")

    def finetune(model, tokens):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loss = model(tokens[:-1], tokens[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()

    def main():
        model = torch.nn.Linear(4, 4)
        finetune(model, train_tokens)
        torch.save(model.state_dict(), "final_model.ptz")

    if __name__ == "__main__":
        main()
    ```

    ## References
    - RULES.md C3 and R4 (docs/rules.md); docs/audit-phases.md
    """

    id = "PG602"
    name = "prequant-val-adaptation"
    condition = "C3"
    severity = Severity.ERROR
    message = "gradient step on validation data before the artifact is written, in `{func}`{note}"

    def _check(self, ctx: AuditContext) -> Iterator[Finding]:
        pm = analyze(ctx)
        for upd in before_artifact_updates(pm):
            yield site_finding(self, pm, upd.file, upd.node, upd.func, note=_suffix(pm, upd))


@register
class SlotOnScoredPositions(PhaseRule):
    """SLOT-style delta optimised on the very positions it then scores.

    ## What it does
    Finds a freshly created tensor (`delta = torch.zeros(..., requires_grad=True)`) optimised
    with a loss on validation targets, where the optimisation comes before those targets are
    scored (no score-first loop around it).

    ## Why is this bad?
    C3: the delta is fitted to the realized tokens of the batch and then used to score the
    same tokens; the reported loss measures the fit, not prediction.

    ## Illegal example
    ```python
    import torch
    import torch.nn.functional as F
    val_tokens = torch.load("fineweb_val_000000.pt")

    def eval_slot(model, tokens):
        loss_sum = 0.0
        for i in range(0, tokens.numel() - 1, 1024):
            x, y = tokens[i:i + 1024], tokens[i + 1:i + 1025]
            h = model.hidden(x).detach()
            delta = torch.zeros(1, h.shape[-1], requires_grad=True)
            opt = torch.optim.AdamW([delta], lr=1e-2)
            for _ in range(8):
                loss = F.cross_entropy(model.head(h + delta), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                loss_sum += F.cross_entropy(model.head(h + delta), y).item()
        return loss_sum

    if __name__ == "__main__":
        print(eval_slot(torch.load("final_model.pt"), val_tokens))
    ```

    ## Legal example
    ```python
    import torch
    import torch.nn.functional as F
    val_tokens = torch.load("fineweb_val_000000.pt")

    def eval_slot_score_first(model, tokens):
        loss_sum = 0.0
        delta = torch.zeros(1, 512, requires_grad=True)
        opt = torch.optim.AdamW([delta], lr=1e-2)
        for i in range(0, tokens.numel() - 1, 1024):
            x, y = tokens[i:i + 1024], tokens[i + 1:i + 1025]
            h = model.hidden(x).detach()
            with torch.no_grad():
                loss_sum += F.cross_entropy(model.head(h + delta), y).item()
            loss = F.cross_entropy(model.head(h + delta), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss_sum

    if __name__ == "__main__":
        print(eval_slot_score_first(torch.load("final_model.pt"), val_tokens))
    ```

    ## References
    - RULES.md C3 (docs/rules.md); docs/audit-phases.md
    """

    id = "PG603"
    name = "slot-on-scored-positions"
    condition = "C3"
    severity = Severity.ERROR
    message = "delta optimised on validation targets before they are scored, in `{func}`{note}"

    def _check(self, ctx: AuditContext) -> Iterator[Finding]:
        for pm, upd, _verdict in _eval_side(ctx):
            if not is_slot(upd.func):
                continue
            yield site_finding(
                self,
                pm,
                upd.file,
                upd.node,
                upd.func,
                note=_suffix(pm, upd),
                severity=_severity(upd),
            )


@register
class CountsBeforeScore(PhaseRule):
    """Cache or count statistics built from validation tokens before those tokens are scored.

    ## What it does
    Finds count/table updates driven by validation tokens at evaluation (`np.bincount(val)`,
    `np.add.at(table, keys, 1)`, `table.index_add_(0, keys, ...)`, `table[keys] += 1`) and
    applies the score-first test: an online cache updated inside the scoring loop *after* the
    chunk's loss is accumulated passes; tables filled from the whole validation set (or from
    a chunk before it is scored) fail.

    ## Why is this bad?
    C3: statistics, like weights, may only learn from tokens already scored. Counting the
    validation set first and then scoring it with those counts lets every token see itself.

    ## Illegal example
    ```python
    import numpy as np
    val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)

    def eval_unigram(tokens):
        counts = np.bincount(tokens, minlength=1024) + 1.0
        probs = counts / counts.sum()
        return float(-np.log(probs[tokens]).sum())

    if __name__ == "__main__":
        print(eval_unigram(val))
    ```

    ## Legal example
    ```python
    import numpy as np
    val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)

    def eval_unigram_online(tokens):
        counts = np.ones(1024)
        nll_sum = 0.0
        for t in tokens:
            nll_sum += -np.log(counts[t] / counts.sum())
            counts[t] += 1
        return nll_sum

    if __name__ == "__main__":
        print(eval_unigram_online(val))
    ```

    ## References
    - RULES.md C3 (docs/rules.md); docs/audit-phases.md
    """

    id = "PG604"
    name = "counts-before-score"
    condition = "C3"
    # A warning: prefilling a cache with tokens that earlier ranks or windows already scored
    # (distributed evaluation) is legal and looks the same statically.
    severity = Severity.WARNING
    message = "statistics updated from validation tokens before they are scored, in `{func}`"

    def _check(self, ctx: AuditContext) -> Iterator[Finding]:
        pm = analyze(ctx)
        for upd in val_count_updates(pm):
            if upd.phases and not (upd.phases & {EVAL, UNKNOWN}):
                continue  # training-phase tables are R4's business (PG303)
            if looked_up_first(pm, upd) or scored_first(pm, upd.node, upd.func) == "legal":
                continue
            yield site_finding(self, pm, upd.file, upd.node, upd.func)

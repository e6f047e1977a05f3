"""PG115 (C2, read from the logs): the reported bits per byte divide the loss by the
validation split's bytes.

`val_bpb = val_loss / ln 2 * tokens / bytes`, and `bytes` is a fact of the split (its UTF-8
bytes), not of the submission: any tokenizer, byte table or sidecar that counts it right gives
the same number. A log's own (val_loss, val_bpb, validation token count) therefore tells how
many bytes its scorer divided by; a count far from the split's means the reported bits are
not -log2 of the probability of the text's bytes (a wrong byte table, a tokenizer other than
the one the data was made with, another validation set, or a val_bpb computed from another
loss than the one reported).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from audit import facts
from audit.claims import num
from audit.context import AuditContext
from audit.model import Finding, Rule, Severity, register

_TOKEN_LINES = (facts.VAL_TOKENS_LINE,)


def _tokens(ctx: AuditContext, log: Any) -> int | None:
    """The validation token count the log states, if it does."""
    m = facts.VAL_TOKENS_LINE.search(ctx.log_line(log, _TOKEN_LINES)[1] or "")
    return int(m.group(1) or m.group(2)) if m else None


def _score_line(log: Any) -> int | None:
    bpb, loss = num(log.val_bpb), num(log.val_loss)
    for m in reversed(getattr(log, "metrics", None) or []):
        if m.val_bpb == bpb and m.val_loss == loss:
            return int(m.line)
    return None


def implied_bytes(tokens: int, val_loss: float, val_bpb: float) -> float:
    """Bytes a scorer divided by: bpb = loss / ln 2 * tokens / bytes."""
    return tokens * val_loss / (val_bpb * math.log(2))


@register
class ScoreBytesOffSplit(Rule):
    """The reported val_bpb divides the loss by a byte count that is not the validation split's.

    ## What it does
    For every run, takes the reported score line (`val_loss` and `val_bpb` on the same line)
    and the validation token count the log states (`val_tokens: N`, `val_loader: ...
    tokens:N`), and computes the bytes the scorer divided by: `tokens * val_loss / (val_bpb *
    ln 2)`. The FineWeb validation split has 151.08 M UTF-8 bytes (155.77 M in the first data
    release); a count more than 1% away is reported. An error for a claimed run on the
    record track, a warning on the non-record track, a note for logs outside the claim.

    ## Why is this bad?
    The score is bits per byte of the validation text (C2: -log2 of the probability of what
    is scored, normalized over the alphabet). The byte count does not depend on the
    tokenizer, so a scorer that counts more bytes than the text has reports fewer bits per
    byte than its model assigns: per byte, the implied probabilities sum to more than one.
    Causes seen: a byte table built from another tokenizer than the data's, another
    validation set, a val_bpb taken from another loss than the one reported.

    ## Illegal example
    ```text
    val_loader:shards pattern=./data/fineweb_val_*.bin tokens:45514752
    final_sliding_window_exact val_loss:2.56688477 val_bpb:0.87520879
    (45,514,752 * 2.5669 / (0.8752 * ln 2) = 192.6 M bytes: 27% more than the split)
    ```

    ## Legal example
    ```text
    val_loader:shards pattern=./data/fineweb_val_*.bin tokens:45514752
    final_sliding_window_exact val_loss:2.50909980 val_bpb:1.09056680
    (45,514,752 * 2.5091 / (1.0906 * ln 2) = 151.07 M bytes)
    ```

    ## References
    - RULES.md "The task" (byte accounting decides the score) and C2 (docs/rules.md).
    """

    id = "PG115"
    name = "score-bytes-off-split"
    condition = "C2"
    message = (
        "{where}: val_loss {loss} and val_bpb {bpb} over {tokens:,} validation tokens divide by "
        "{implied:,.0f} bytes; the validation split has {split:,} ({off:+.1%}), so the reported "
        "score is not bits per byte of the validation text"
    )

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        claimed = {id(lg) for lg in ctx.claim_runs(headline=True)}
        for log in ctx.runs():
            loss, bpb = num(log.val_loss), num(log.val_bpb)
            if not loss or not bpb or loss <= 0 or bpb <= 0:
                continue
            tokens = _tokens(ctx, log)
            if not tokens or tokens < 1_000_000:
                continue  # no count, or a count that is not the split's
            implied = implied_bytes(tokens, loss, bpb)
            if any(
                abs(implied / b - 1) <= facts.VAL_BYTES_TOLERANCE for b in facts.VAL_SPLIT_BYTES
            ):
                continue
            split = facts.VAL_SPLIT_BYTES[0]
            off = implied / split - 1
            in_claim = id(log) in claimed
            if not in_claim:
                sev = Severity.INFO
            else:
                sev = Severity.ERROR if ctx.is_record_track else Severity.WARNING
            rel = ctx.relpath(log.path)
            line = _score_line(log)
            tline, ttext = ctx.log_line(log, _TOKEN_LINES)
            name = getattr(log, "metric_name", None) or "score"
            evidence = f"{rel}:{tline}: {ttext}\n{rel}:{line}: {name} val_loss:{loss} val_bpb:{bpb}"
            yield self.finding(
                file=rel,
                line=line,
                evidence=evidence,
                severity=sev,
                where=rel + ("" if in_claim else " (a log outside the claim)"),
                loss=log.val_loss,
                bpb=log.val_bpb,
                tokens=tokens,
                implied=implied,
                split=split,
                off=off,
            )

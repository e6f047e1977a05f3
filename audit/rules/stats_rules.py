"""PG8xx: statistics of a claim over its seeds (R6): enough seeds, claimed mean and std
match the logs, and every seed ran the same code and configuration."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from audit import facts
from audit.claims import claimed_std, num
from audit.context import AuditContext
from audit.model import Finding, Rule, Severity, register


def _mean_std(values: list[float]) -> tuple[float, float]:
    try:
        from pgolf.stats import mean_std

        m, s = mean_std(values)
        return float(m), float(s)
    except ImportError:
        m = sum(values) / len(values)
        if len(values) < 2:
            return m, math.nan
        return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _scores(ctx: AuditContext) -> list[tuple[Any, float]]:
    return [(lg, float(lg.val_bpb)) for lg in ctx.claim_runs()]


@register
class TooFewSeeds(Rule):
    """A record claim rests on fewer than 3 seeds.

    ## What it does
    Counts the runs with a final score (one per seed; a log shipped twice counts once) on
    the record track.

    ## Why is this bad?
    A record must beat the previous one with significance p < 0.01 over several seeds
    (customarily 42, 314, 999); one or two runs cannot show that (R6).

    ## Illegal example
    ```text
    track_10min_16mb claim with train_seed42.log only
    ```

    ## Legal example
    ```text
    track_10min_16mb claim with train_seed42.log, train_seed314.log, train_seed999.log
    ```

    ## References
    - RULES.md R6 (docs/rules.md).
    """

    id = "PG801"
    name = "too-few-seeds"
    condition = "R6"
    severity = Severity.WARNING
    message = "record claim with {n} scored run(s); at least {k} seeds are needed"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        n = len(_scores(ctx))
        if ctx.is_record_track and 0 < n < facts.MIN_SEEDS and ctx.submission is not None:
            yield self.finding(file="submission.json", n=n, k=facts.MIN_SEEDS)


@register
class ClaimedMeanMismatch(Rule):
    """The claimed val_bpb is not the mean of the logged runs.

    ## What it does
    Compares `val_bpb` of `submission.json` with the mean of the final val_bpb of every
    logged run (tolerance 1e-4). A claim better than every one of at least 3 logged runs, that
    no metric line of any log reports, is an error; any other mismatch a warning.

    ## Why is this bad?
    The headline number is the mean over the seeds (R6); a better number than the logs show
    is not supported, and a best-of-k number is a selection (C4).

    ## Illegal example
    ```text
    submission.json: "val_bpb": 1.0100
    logs: 1.0300, 1.0310, 1.0290 (mean 1.0300)
    ```

    ## Legal example
    ```text
    submission.json: "val_bpb": 1.0300
    logs: 1.0300, 1.0310, 1.0290 (mean 1.0300)
    ```

    ## References
    - RULES.md R6 (docs/rules.md).
    """

    id = "PG802"
    name = "claimed-mean-mismatch"
    condition = "R6"
    severity = Severity.WARNING
    message = "claimed val_bpb {claimed:.8f} but the mean of {n} logged runs is {mean:.8f}{tail}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        claimed = num((ctx.submission or {}).get("val_bpb"))
        scores = [v for _, v in _scores(ctx)]
        if claimed is None or not scores:
            return
        mean, _ = _mean_std(scores)
        if abs(claimed - mean) <= facts.MEAN_TOLERANCE:
            return
        better = claimed < min(scores) - facts.MEAN_TOLERANCE
        # A claim that some other metric line reports (e.g. a sliding-window score printed
        # before the roundtrip score) is a choice of metric to review, not an unsupported one.
        elsewhere = any(
            abs(float(m.val_bpb) - claimed) <= facts.MEAN_TOLERANCE
            for lg in ctx.logs
            for m in getattr(lg, "metrics", []) or []
            if num(getattr(m, "val_bpb", None)) is not None
        )
        # With fewer logs than seeds the folder may just not ship every run: review only.
        error = better and not elsewhere and len(scores) >= facts.MIN_SEEDS
        tail = " (better than every logged run" + (
            ", and no metric line of any log reports it)" if error else ")"
        )
        yield self.finding(
            file="submission.json",
            severity=Severity.ERROR if error else Severity.WARNING,
            claimed=claimed,
            n=len(scores),
            mean=mean,
            tail=tail if better else "",
        )


@register
class ClaimedStdMismatch(Rule):
    """The claimed standard deviation is not the sample std (ddof=1) of the logged runs.

    ## What it does
    Compares `val_bpb_std` of `submission.json` with the sample standard deviation of the
    logged scores (tolerance 1e-4); a population std (ddof=0) is named as such.

    ## Why is this bad?
    The significance test uses the sample std (R6); a smaller std overstates significance.

    ## Illegal example
    ```text
    submission.json: "val_bpb_std": 0.0001
    logs: 1.0300, 1.0310, 1.0290 (sample std 0.0010)
    ```

    ## Legal example
    ```text
    submission.json: "val_bpb_std": 0.0010
    logs: 1.0300, 1.0310, 1.0290 (sample std 0.0010)
    ```

    ## References
    - RULES.md R6 (docs/rules.md): mean and sample std (ddof=1).
    """

    id = "PG803"
    name = "claimed-std-mismatch"
    condition = "R6"
    severity = Severity.WARNING
    message = "claimed val_bpb_std {claimed:.8f} but the sample std of {n} runs is {std:.8f}{tail}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        claimed = claimed_std(ctx.submission)
        scores = [v for _, v in _scores(ctx)]
        if claimed is None or len(scores) < 2:
            return
        mean, std = _mean_std(scores)
        if abs(claimed - std) <= facts.STD_TOLERANCE:
            return
        pop = math.sqrt(sum((v - mean) ** 2 for v in scores) / len(scores))
        tail = " (the claim is the population std, ddof=0)" if abs(claimed - pop) <= 1e-6 else ""
        yield self.finding(
            file="submission.json", claimed=claimed, n=len(scores), std=std, tail=tail
        )


def _is_per_seed_key(key: str, value: str = "") -> bool:
    k = key.upper()
    if k in facts.PER_SEED_KEYS or any(part in k for part in facts.PER_SEED_KEY_PARTS):
        return True
    return bool(facts.MEASURED_VALUE.match(value.strip()))


@register
class MixedConfigurations(Rule):
    """The seeds of one claim ran different code or a different configuration.

    ## What it does
    Compares the hyperparameter dumps of the logged runs (every key except per-run ones such
    as the seed, run id and paths) and their embedded sources.

    ## Why is this bad?
    A headline mean that mixes runs of different configurations is not a valid claim (R6):
    it is a selection among configurations after seeing validation scores.

    ## Illegal example
    ```text
    train_seed42.log: seed:42 matrix_lr:0.04
    train_seed314.log: seed:314 matrix_lr:0.05
    ```

    ## Legal example
    ```text
    train_seed42.log: seed:42 matrix_lr:0.04
    train_seed314.log: seed:314 matrix_lr:0.04
    ```

    ## References
    - RULES.md R6 (docs/rules.md): same code and configuration except the seed.
    """

    id = "PG804"
    name = "mixed-configurations"
    condition = "R6"
    # A warning: logs also dump measurements and ablations ship next to the claimed seeds,
    # so a difference needs a maintainer's eye before it voids a claim.
    severity = Severity.WARNING
    message = "{what}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        runs = [lg for lg, _ in _scores(ctx)]
        if len(runs) < 2:
            return
        # The reference is the configuration most runs share (the odd ones are reported).
        ref = _majority(runs, _config)
        ref_rel = ctx.relpath(ref.path)
        ref_hp = _config(ref)
        src_ref = _majority(runs, _src)
        ref_src = _src(src_ref)
        for log in runs:
            if log is ref:
                continue
            rel = ctx.relpath(log.path)
            hp = _config(log)
            diffs = [
                f"{k}: {ref_hp[k]} vs {hp[k]}"
                for k in sorted(set(ref_hp) & set(hp))
                if ref_hp[k] != hp[k]
            ]
            if diffs:
                yield self.finding(
                    file=rel,
                    what=f"{rel} ran a different configuration than {ref_rel}: "
                    + "; ".join(diffs[:5])
                    + (f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else ""),
                    evidence="\n".join(diffs[:40]),
                )
        for log in runs:
            src = _src(log)
            if log is not src_ref and ref_src is not None and src is not None and src != ref_src:
                rel = ctx.relpath(log.path)
                yield self.finding(
                    file=rel,
                    what=f"{rel} embeds different source code than {ctx.relpath(src_ref.path)}",
                )


def _config(log: Any) -> dict[str, str]:
    return {
        str(k).upper(): str(v).strip()
        for k, v in (getattr(log, "hyperparams", None) or {}).items()
        if not _is_per_seed_key(str(k), str(v))
    }


def _majority(runs: list[Any], key: Any) -> Any:
    groups: dict[str, list[Any]] = {}
    for log in runs:
        groups.setdefault(repr(key(log)), []).append(log)
    best = max(groups.values(), key=len)  # ties: the first group in log order
    return best[0]


def _src(log: Any) -> str | None:
    emb = getattr(log, "embedded_source", None)
    if not emb or not emb.strip():
        return None
    return "\n".join(ln.rstrip() for ln in emb.strip().splitlines())


@register
class DuplicateSeeds(Rule):
    """Two runs of one claim used the same seed with different results.

    ## What it does
    Reports seeds that appear in more than one scored run with different final val_bpb
    (the same log shipped twice is not a duplicate).

    ## Why is this bad?
    Re-running a seed and keeping the better result is a selection; the seeds of a claim must
    be distinct runs (R6).

    ## Illegal example
    ```text
    train_seed42.log: val_bpb:1.0300     train_seed42_rerun.log: val_bpb:1.0280
    ```

    ## Legal example
    ```text
    train_seed42.log: val_bpb:1.0300     train_seed314.log: val_bpb:1.0280
    ```

    ## References
    - RULES.md R6 (docs/rules.md).
    """

    id = "PG805"
    name = "duplicate-seeds"
    condition = "R6"
    severity = Severity.WARNING
    message = "seed {seed} has {n} runs with different scores: {values}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        by_seed: dict[int, list[tuple[Any, float]]] = {}
        for lg, v in _scores(ctx):
            if lg.seed is not None:
                by_seed.setdefault(int(lg.seed), []).append((lg, v))
        for seed, items in sorted(by_seed.items()):
            if len(items) > 1:
                yield self.finding(
                    file=ctx.relpath(items[1][0].path),
                    seed=seed,
                    n=len(items),
                    values=", ".join(f"{v:.8f} ({ctx.relpath(lg.path)})" for lg, v in items),
                )

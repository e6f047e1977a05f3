"""Record statistics (R6): mean and sample std, one-sided Welch t-test, nats<->bpb, seeds needed.

A record must beat the reference by at least `min_delta_nats` per token with p < alpha under a
one-sided Welch t-test of its per-seed scores against the reference's per-seed scores. The
margin is converted between nats and bits per byte with the measured tokens-per-byte ratio
(`bpb = nats / ln 2 * tokens / bytes`). Pure Python: the Student t CDF comes from a regularized
incomplete beta function evaluated by continued fraction (no scipy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

LN2 = math.log(2.0)
MAX_SEEDS_SEARCHED = 1000


@dataclass(frozen=True)
class WelchResult:
    """One-sided Welch test of H1: mean(new) < mean(ref)."""

    t: float
    df: float
    p_value: float


@dataclass(frozen=True)
class SignificanceResult:
    """Verdict of a claim against a reference (R6)."""

    n_new: int
    n_ref: int
    mean_new: float
    std_new: float
    mean_ref: float
    std_ref: float
    tokens_per_byte: float
    margin_bpb: float
    margin_nats: float
    min_delta_nats: float
    min_delta_bpb: float
    alpha: float
    t: float
    df: float
    p_value: float
    passed: bool
    seeds_needed: int | None
    reason: str


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1); std is nan for fewer than 2 values."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan
    variance = math.fsum((value - mean) ** 2 for value in values) / (n - 1)
    return mean, math.sqrt(variance)


def nats_to_bpb(nats: float, tokens_per_byte: float) -> float:
    """Per-token loss in nats to bits per byte: nats / ln 2 * tokens / bytes."""
    return nats / LN2 * tokens_per_byte


def bpb_to_nats(bpb: float, tokens_per_byte: float) -> float:
    """Bits per byte to per-token nats (inverse of `nats_to_bpb`)."""
    return bpb * LN2 / tokens_per_byte


def tokens_per_byte(val_loss: float, val_bpb: float) -> float:
    """Tokens per byte implied by one run's (val_loss nats, val_bpb)."""
    return val_bpb * LN2 / val_loss


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom (df may be fractional)."""
    if math.isnan(t) or math.isnan(df) or df <= 0:
        return math.nan
    if math.isinf(t):
        return 0.0 if t < 0 else 1.0
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return tail if t < 0 else 1.0 - tail


def welch_from_stats(
    mean_new: float, var_new: float, n_new: int, mean_ref: float, var_ref: float, n_ref: int
) -> WelchResult:
    """Welch test from summary statistics; a sample of size 1 is a known constant (variance 0)."""
    term_new = var_new / n_new if n_new >= 2 else 0.0
    term_ref = var_ref / n_ref if n_ref >= 2 else 0.0
    diff = mean_new - mean_ref
    se2 = term_new + term_ref
    if n_new < 2 and n_ref < 2:
        return WelchResult(t=math.nan, df=math.nan, p_value=math.nan)
    if se2 <= 0.0:
        # Identical values within each sample: the sign of the difference is certain.
        if diff < 0:
            return WelchResult(t=-math.inf, df=math.inf, p_value=0.0)
        if diff > 0:
            return WelchResult(t=math.inf, df=math.inf, p_value=1.0)
        return WelchResult(t=0.0, df=math.inf, p_value=0.5)
    # Welch-Satterthwaite, with each term scaled by se2 so tiny variances cannot underflow.
    denominator = 0.0
    if n_new >= 2:
        denominator += (term_new / se2) ** 2 / (n_new - 1)
    if n_ref >= 2:
        denominator += (term_ref / se2) ** 2 / (n_ref - 1)
    df = 1.0 / denominator
    t = diff / math.sqrt(se2)
    return WelchResult(t=t, df=df, p_value=t_cdf(t, df))


def welch_one_sided(new: Sequence[float], ref: Sequence[float]) -> WelchResult:
    """One-sided Welch t-test of H1: mean(new) < mean(ref) (lower bpb is better)."""
    if not new or not ref:
        return WelchResult(t=math.nan, df=math.nan, p_value=math.nan)
    mean_new, std_new = mean_std(new)
    mean_ref, std_ref = mean_std(ref)
    return welch_from_stats(
        mean_new,
        std_new**2 if len(new) >= 2 else 0.0,
        len(new),
        mean_ref,
        std_ref**2 if len(ref) >= 2 else 0.0,
        len(ref),
    )


def seeds_needed(
    mean_new: float,
    std_new: float,
    mean_ref: float,
    std_ref: float,
    n_ref: int,
    *,
    alpha: float,
    delta_bpb: float,
) -> int | None:
    """Smallest number of new seeds for p < alpha at the observed mean and std, else None."""
    if not (mean_new < mean_ref - delta_bpb):
        return None
    std = std_new if math.isfinite(std_new) else std_ref
    if not math.isfinite(std):
        return None
    var_ref = std_ref**2 if n_ref >= 2 and math.isfinite(std_ref) else 0.0
    for n in range(2, MAX_SEEDS_SEARCHED + 1):
        result = welch_from_stats(mean_new, std**2, n, mean_ref - delta_bpb, var_ref, n_ref)
        if result.p_value < alpha:
            return n
    return None


def significance(
    new_bpb: Sequence[float],
    ref_bpb: Sequence[float],
    tokens_per_byte: float,
    alpha: float = 0.01,
    min_delta_nats: float = 0.005,
) -> SignificanceResult:
    """Judge a claim (R6): margin >= min_delta_nats and p < alpha that it beats ref by that much.

    The test is shifted by the required margin: H0 is mean(new) >= mean(ref) - delta, so a
    pass means the improvement of at least `min_delta_nats` is itself significant.
    """
    mean_new, std_new = mean_std(new_bpb)
    mean_ref, std_ref = mean_std(ref_bpb)
    delta_bpb = nats_to_bpb(min_delta_nats, tokens_per_byte)
    margin_bpb = mean_ref - mean_new
    margin_nats = bpb_to_nats(margin_bpb, tokens_per_byte)
    shifted = [value - delta_bpb for value in ref_bpb]
    welch = welch_one_sided(new_bpb, shifted)
    needed = seeds_needed(
        mean_new, std_new, mean_ref, std_ref, len(ref_bpb), alpha=alpha, delta_bpb=delta_bpb
    )
    if not new_bpb or not ref_bpb:
        passed, reason = False, "no scores to compare"
    elif math.isnan(welch.p_value):
        passed, reason = False, "need at least 2 seeds on one side for a t-test"
    elif margin_nats < min_delta_nats:
        passed = False
        reason = f"margin {margin_nats:.5f} nats is below the required {min_delta_nats:g} nats"
    elif welch.p_value >= alpha:
        passed = False
        reason = f"p = {welch.p_value:.4g} is not below alpha = {alpha:g}"
    else:
        passed = True
        reason = f"margin {margin_nats:.5f} nats >= {min_delta_nats:g}, p = {welch.p_value:.3g} < {alpha:g}"
    return SignificanceResult(
        n_new=len(new_bpb),
        n_ref=len(ref_bpb),
        mean_new=mean_new,
        std_new=std_new,
        mean_ref=mean_ref,
        std_ref=std_ref,
        tokens_per_byte=tokens_per_byte,
        margin_bpb=margin_bpb,
        margin_nats=margin_nats,
        min_delta_nats=min_delta_nats,
        min_delta_bpb=delta_bpb,
        alpha=alpha,
        t=welch.t,
        df=welch.df,
        p_value=welch.p_value,
        passed=passed,
        seeds_needed=needed,
        reason=reason,
    )

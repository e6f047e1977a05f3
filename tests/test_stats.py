"""pgolf.stats: hand-computed values, closed forms of the t CDF, and hypothesis properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pgolf.stats import (
    bpb_to_nats,
    mean_std,
    nats_to_bpb,
    regularized_beta,
    seeds_needed,
    significance,
    t_cdf,
    tokens_per_byte,
    welch_one_sided,
)

PR2080_SEEDS = [0.97234287, 0.97206308, 0.97373767]


def test_mean_and_sample_std_of_the_pr2080_seeds() -> None:
    mean, std = mean_std(PR2080_SEEDS)
    assert mean == pytest.approx(0.97271454, abs=5e-9)
    assert std == pytest.approx(0.00089703, abs=5e-9)


def test_mean_std_small_samples() -> None:
    assert math.isnan(mean_std([])[0])
    mean, std = mean_std([1.5])
    assert mean == 1.5 and math.isnan(std)
    assert mean_std([1.0, 3.0]) == (2.0, math.sqrt(2.0))


def _t4_cdf(t: float) -> float:
    return 0.5 + t * (t * t + 6) / (2 * (t * t + 4) ** 1.5)


def _t_density_integral(t: float, df: float) -> float:
    """P(T <= t) by Simpson integration of the density from t to 0 (independent check)."""
    norm = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    n = 20000
    h = (0 - t) / n
    total = 0.0
    for i in range(n + 1):
        x = t + i * h
        weight = 1 if i in (0, n) else (4 if i % 2 else 2)
        total += weight * norm * (1 + x * x / df) ** (-(df + 1) / 2)
    return 0.5 - total * h / 3


@pytest.mark.parametrize("t", [-30.0, -4.0, -1.0, -0.2, 0.0, 0.7, 2.5, 12.0])
def test_t_cdf_matches_closed_forms(t: float) -> None:
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert t_cdf(t, 4) == pytest.approx(_t4_cdf(t), abs=1e-12)


def test_t_cdf_critical_values() -> None:
    # Table values of the t distribution: t_{0.99, 10} = 2.763769, t_{0.975, 30} = 2.042272.
    assert t_cdf(-2.763769, 10) == pytest.approx(0.01, abs=1e-6)
    assert t_cdf(2.042272, 30) == pytest.approx(0.975, abs=1e-6)


def test_regularized_beta_edges_and_symmetry() -> None:
    assert regularized_beta(2.0, 3.0, 0.0) == 0.0
    assert regularized_beta(2.0, 3.0, 1.0) == 1.0
    # I_x(1, 1) = x and I_x(a, b) = 1 - I_{1-x}(b, a).
    assert regularized_beta(1.0, 1.0, 0.37) == pytest.approx(0.37, abs=1e-13)
    assert regularized_beta(2.5, 0.5, 0.3) == pytest.approx(
        1 - regularized_beta(0.5, 2.5, 0.7), abs=1e-13
    )


def test_welch_equal_variances_hand_computed() -> None:
    # means 1.12 and 1.22, both variances 0.0004, n = 3: se = sqrt(0.0008/3), df = 4.
    result = welch_one_sided([1.10, 1.12, 1.14], [1.20, 1.22, 1.24])
    t = -0.1 / math.sqrt(0.0008 / 3)
    assert result.t == pytest.approx(t, rel=1e-9)
    assert result.t == pytest.approx(-6.1237244, abs=1e-6)
    assert result.df == pytest.approx(4.0, rel=1e-9)
    assert result.p_value == pytest.approx(_t4_cdf(t), rel=1e-9)
    assert result.p_value == pytest.approx(0.0018011, abs=2e-7)


def test_welch_unequal_variances_hand_computed() -> None:
    # new: mean 2.5, var 5/3, n 4 -> 5/12; ref: mean 4, var 4, n 3 -> 4/3; se2 = 1.75.
    result = welch_one_sided([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0])
    assert result.t == pytest.approx(-1.5 / math.sqrt(1.75), rel=1e-12)
    df = 1.75**2 / ((5 / 12) ** 2 / 3 + (4 / 3) ** 2 / 2)
    assert result.df == pytest.approx(df, rel=1e-12)
    assert result.df == pytest.approx(3.234718, abs=1e-6)
    assert result.p_value == pytest.approx(_t_density_integral(result.t, result.df), abs=1e-7)


def test_welch_against_a_single_baseline_value_is_a_one_sample_test() -> None:
    result = welch_one_sided([1.0, 2.0, 3.0], [3.0])
    assert result.df == pytest.approx(2.0)
    assert result.t == pytest.approx(-1.0 / (1.0 / math.sqrt(3)))


def test_welch_degenerate_inputs() -> None:
    assert math.isnan(welch_one_sided([1.0], [2.0]).p_value)
    assert math.isnan(welch_one_sided([], [2.0, 3.0]).p_value)
    assert welch_one_sided([1.0, 1.0], [2.0, 2.0]).p_value == 0.0
    assert welch_one_sided([2.0, 2.0], [1.0, 1.0]).p_value == 1.0


def test_nats_bpb_conversion() -> None:
    # NaiveBaseline: val_loss 2.07269931 nats, val_bpb 1.22436570 -> tokens/byte ~ 0.4094.
    tpb = tokens_per_byte(2.07269931, 1.22436570)
    assert tpb == pytest.approx(0.40944, abs=1e-4)
    assert nats_to_bpb(2.07269931, tpb) == pytest.approx(1.22436570, rel=1e-12)
    # RULES.md: 0.005 nats is about 0.0030 bpb at vocab 1024.
    assert nats_to_bpb(0.005, tpb) == pytest.approx(0.0030, abs=1e-4)
    assert bpb_to_nats(nats_to_bpb(0.123, 0.3), 0.3) == pytest.approx(0.123)


def test_significance_pass_and_fail() -> None:
    tpb = 0.3
    reference = [1.1000, 1.1010, 1.0990]
    strong = significance([1.0800, 1.0805, 1.0795], reference, tpb)
    assert strong.passed
    assert strong.margin_bpb == pytest.approx(0.02)
    assert strong.margin_nats == pytest.approx(bpb_to_nats(0.02, tpb))
    assert strong.p_value < 0.01
    assert strong.seeds_needed is not None and strong.seeds_needed <= 3
    small = significance([1.0990, 1.0995, 1.0985], reference, tpb)
    assert not small.passed
    assert "below the required" in small.reason
    assert small.seeds_needed is None


def test_significance_noisy_claim_reports_seeds_needed() -> None:
    tpb = 0.3
    delta = nats_to_bpb(0.005, tpb)
    reference = [1.1, 1.1, 1.1]
    new = [1.1 - 2 * delta + d for d in (-0.004, 0.0, 0.004)]
    result = significance(new, reference, tpb)
    assert not result.passed
    assert result.seeds_needed is not None and result.seeds_needed > 3
    more = [1.1 - 2 * delta + 0.004 * (i % 3 - 1) for i in range(result.seeds_needed)]
    assert significance(more, reference, tpb).p_value < 0.01 + 1e-3


values = st.floats(min_value=0.5, max_value=2.0, allow_nan=False)
samples = st.lists(values, min_size=2, max_size=8)


@settings(max_examples=200, deadline=None)
@given(new=samples, ref=samples)
def test_p_value_is_a_probability(new: list[float], ref: list[float]) -> None:
    p = welch_one_sided(new, ref).p_value
    assert 0.0 <= p <= 1.0


@settings(max_examples=200, deadline=None)
@given(new=samples, ref=samples, shift=st.floats(min_value=-0.5, max_value=0.5))
def test_shift_invariance(new: list[float], ref: list[float], shift: float) -> None:
    assume(mean_std(new)[1] > 1e-6 or mean_std(ref)[1] > 1e-6)
    base = welch_one_sided(new, ref)
    moved = welch_one_sided([v + shift for v in new], [v + shift for v in ref])
    assert moved.p_value == pytest.approx(base.p_value, abs=1e-6)
    assert moved.df == pytest.approx(base.df, rel=1e-5)


@settings(max_examples=100, deadline=None)
@given(
    gap=st.floats(min_value=0.001, max_value=0.05),
    spread=st.floats(min_value=0.0005, max_value=0.01),
    n=st.integers(min_value=2, max_value=10),
)
def test_more_seeds_with_the_same_gap_give_a_smaller_p(gap: float, spread: float, n: int) -> None:
    # Welch's df shrinks toward n_ref - 1 when only one side grows, so the property holds
    # for claims and references that grow together (same mean, same spread each).
    def sample(center: float, k: int) -> list[float]:
        return [center + spread * (1 if i % 2 else -1) for i in range(2 * k)]

    fewer = welch_one_sided(sample(1.1 - gap, n), sample(1.1, n)).p_value
    more = welch_one_sided(sample(1.1 - gap, n + 1), sample(1.1, n + 1)).p_value
    assert more <= fewer


@settings(max_examples=100, deadline=None)
@given(
    gap=st.floats(min_value=0.0005, max_value=0.05),
    std=st.floats(min_value=0.0001, max_value=0.02),
    alpha_small=st.floats(min_value=0.001, max_value=0.05),
)
def test_seeds_needed_is_monotone(gap: float, std: float, alpha_small: float) -> None:
    kwargs = {"mean_ref": 1.1, "std_ref": 0.001, "n_ref": 3, "delta_bpb": 0.0}
    tight = seeds_needed(1.1 - gap, std, alpha=alpha_small, **kwargs)
    loose = seeds_needed(1.1 - gap, std, alpha=alpha_small * 2, **kwargs)
    noisier = seeds_needed(1.1 - gap, std * 2, alpha=alpha_small, **kwargs)
    if tight is not None:
        assert loose is not None and loose <= tight
        assert noisier is None or noisier >= tight


def test_tiny_variances_do_not_underflow() -> None:
    # Variances of 1e-300: squaring the Welch terms directly would underflow to 0.
    result = welch_one_sided([1e-150, 2e-150, 3e-150], [5e-150, 6e-150, 7e-150])
    assert result.df == pytest.approx(4.0)
    assert result.t == pytest.approx(-4 / math.sqrt(2 / 3))

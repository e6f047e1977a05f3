"""Shared measurements: comparing two score vectors position by position, and tolerances."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# C1/C3: a score that may not depend on a change must stay equal up to float noise.
# |a - b| <= SCORE_RTOL * max(1, |a|): about 8 float32 ulps of a score of a few nats.
SCORE_RTOL = 1e-6
# C2: |sum_v exp(-score(v)) - 1| <= MASS_TOL. float32 log-softmax over 1024 symbols is
# off by ~1e-6; the illegal patterns seen in the wild are off by 1e-2 and more.
MASS_TOL = 1e-3
# score_batch rows versus score(): batched float32 kernels may round differently.
BATCH_RTOL = 1e-4


def score_tolerance_text(rtol: float = SCORE_RTOL) -> str:
    # No "|" in the text: it is rendered inside Markdown tables.
    return f"abs(delta) <= {rtol:g} x max(1, abs(score))"


def short(x: float) -> float:
    """3 significant digits, for per-check numbers listed in reports."""
    return float(f"{x:.3g}") if np.isfinite(x) else x


@dataclass(frozen=True)
class Comparison:
    max_abs: float  # largest |a - b| over the compared positions (inf where one is nan)
    max_scaled: float  # largest |a - b| / max(1, |a|)
    worst: int  # position of max_scaled (-1 if nothing compared)
    compared: int  # number of positions compared

    def within(self, rtol: float = SCORE_RTOL) -> bool:
        return self.max_scaled <= rtol


def compare(base: np.ndarray, other: np.ndarray, positions: np.ndarray) -> Comparison:
    """Compare two score vectors at `positions`; nan equals nan, nan against a number is inf."""
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size == 0:
        return Comparison(0.0, 0.0, -1, 0)
    a = base[positions]
    b = other[positions]
    both_nan = np.isnan(a) & np.isnan(b)
    one_nan = np.isnan(a) ^ np.isnan(b)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b)
    diff = np.where(both_nan, 0.0, diff)
    diff = np.where(one_nan, np.inf, diff)
    # Equal infinities (probability 0 on both sides) are equal.
    diff = np.where(np.isnan(diff), 0.0, diff)
    scale = np.maximum(1.0, np.nan_to_num(np.abs(a), nan=1.0, posinf=1.0))
    scaled = diff / scale
    worst = int(np.argmax(scaled))
    return Comparison(
        float(diff.max()), float(scaled.max()), int(positions[worst]), int(positions.size)
    )


def fmt(x: float) -> str:
    """Compact number for messages: 0, 3.2e-07, 0.0123, inf."""
    if x == 0:
        return "0"
    if not np.isfinite(x):
        return str(x)
    return f"{x:.3g}"

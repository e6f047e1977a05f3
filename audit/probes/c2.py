"""C2 probe (normalization): at sampled positions, the implied probabilities must sum to 1.

At each sampled position t, every symbol v of the alphabet (every vocabulary token, or every
byte value for a byte-level scorer) is put in place of x_t, and the scorer scores the row
`x_{t-W..t-1}, v` with a fresh state; only the prefix matters for the score at t. The mass
sum_v exp(-score_t(v)) must be 1. A realized-token gate, a hash(context, target) boost, a
p^(1/n) byte spread or a renormalisation over a subset all give a mass away from 1.

Rows go through `score_batch` when the scorer has it. Because score_batch is a second code
path, the probe cross-checks it: at a few positions the realized symbol and one other symbol
are scored through `score()` too and must agree.
"""

from __future__ import annotations

import numpy as np

from audit.probes.client import ScorerClient
from audit.probes.measure import BATCH_RTOL, MASS_TOL, fmt
from audit.probes.result import ProbeResult
from audit.probes.slices import TokenSlice

NAME = "c2-normalization"
DEFAULT_POSITIONS = 32
DEFAULT_CONTEXT = 6
BATCH_CHECK_POSITIONS = 4


def sample_positions(length: int, count: int) -> list[int]:
    """`count` positions spread evenly over 1..length-1 (deterministic)."""
    count = max(1, min(count, length - 1))
    return sorted({round(x) for x in np.linspace(1, length - 1, count)})


def mass(scores: np.ndarray) -> float:
    """sum_v exp(-score(v)); nan if any score is nan (the scorer committed to nothing)."""
    if np.isnan(scores).any():
        return float("nan")
    with np.errstate(over="ignore"):
        return float(np.exp(-scores).sum())


def run(
    client: ScorerClient,
    piece: TokenSlice,
    *,
    positions: int = DEFAULT_POSITIONS,
    context: int = DEFAULT_CONTEXT,
    mass_tol: float = MASS_TOL,
) -> ProbeResult:
    tokens = piece.tokens
    sampled = sample_positions(len(tokens), positions)
    masses: list[float] = []
    batch_dev = 0.0
    check_every = max(1, len(sampled) // BATCH_CHECK_POSITIONS)
    rng = np.random.default_rng(2)
    for i, t in enumerate(sampled):
        prefix = tokens[max(0, t - context) : t]
        scores = client.candidates(prefix)
        masses.append(mass(scores))
        if client.has_batch and i % check_every == 0:
            for v in (int(tokens[t]), int(rng.integers(0, client.alphabet))):
                row = np.concatenate([prefix, [v]]).astype(np.int64)
                single = client.score(row)[-1]
                a, b = float(scores[v]), float(single)
                if (np.isnan(a) and np.isnan(b)) or a == b:
                    continue
                dev = abs(a - b) / max(1.0, abs(b)) if np.isfinite(a - b) else float("inf")
                batch_dev = max(batch_dev, dev)
    arr = np.array(masses)
    errors = np.abs(arr - 1.0)
    errors = np.where(np.isnan(errors), np.inf, errors)
    bad = int((errors > mass_tol).sum())
    worst = int(np.argmax(errors))
    measured = {
        "positions": len(sampled),
        "alphabet": client.alphabet,
        "context_tokens": context,
        "mass_min": float(np.nanmin(arr)) if not np.isnan(arr).all() else float("nan"),
        "mass_max": float(np.nanmax(arr)) if not np.isnan(arr).all() else float("nan"),
        "max_abs_mass_error": float(errors.max()),
        "positions_out_of_tolerance": bad,
        "worst_position": sampled[worst],
        # 6 decimals: three orders below the tolerance, and short enough for a report.
        "mass_per_position": {
            str(t): round(m, 6) if np.isfinite(m) else m
            for t, m in zip(sampled, masses, strict=True)
        },
        "batched": client.has_batch,
        "batch_vs_score_max_rel_deviation": batch_dev if client.has_batch else None,
    }
    tolerance = f"abs(mass - 1) <= {mass_tol:g}"
    if bad:
        status = "fail"
        detail = (
            f"probability mass over all {client.alphabet} symbols was "
            f"{fmt(measured['mass_min'])}..{fmt(measured['mass_max'])} "
            f"({bad}/{len(sampled)} positions off by more than {mass_tol:g}; worst "
            f"{fmt(arr[worst])} at position {sampled[worst]}): the scores are not one "
            f"normalized distribution committed before the symbol is seen"
        )
    else:
        status = "pass"
        detail = (
            f"mass 1 ± {fmt(measured['max_abs_mass_error'])} at {len(sampled)} positions "
            f"over all {client.alphabet} symbols"
        )
    if client.has_batch and batch_dev > BATCH_RTOL:
        status = "error" if status == "pass" else status
        detail += (
            f"; score_batch disagrees with score() by up to {fmt(batch_dev)} (relative), "
            f"so the batched measurement does not describe score()"
        )
    return ProbeResult("C2", NAME, status, measured, tolerance, detail)

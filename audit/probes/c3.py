"""C3 probe (score before update): no score may depend on adaptation on its own or later tokens.

For a few cut points m (chosen off power-of-two boundaries, so that a cut falls inside the
scorer's own adaptation chunk whatever its size), the slice is scored again with `adapt_mask`
False from m on: the scorer may not adapt on [m, T). Scores at positions 1..m, m included,
must be identical to the normal run: a score-first scorer computed them before it could adapt
on x_m or anything after. A TTT that fine-tunes on a chunk and then scores it, or a cache that
counts x_t before scoring x_t, changes them.

Masking a chunk [s, e) in the middle and demanding that all of [s, e) stay equal would wrongly
fail a legal scorer whose own chunks are smaller than [s, e) (it may adapt on x_s before
scoring x_{s+1}); masking the whole suffix from m avoids that.

A scorer that ignores `adapt_mask` cannot be measured here, but adapting on a chunk before
scoring it makes earlier scores depend on later tokens, which the C1 probe catches (its suffix
changes start at these same cut points).
"""

from __future__ import annotations

import numpy as np

from audit.probes.client import ScorerClient
from audit.probes.measure import SCORE_RTOL, compare, fmt, score_tolerance_text, short
from audit.probes.result import ProbeResult
from audit.probes.slices import TokenSlice

NAME = "c3-score-before-update"


def cut_points(length: int) -> list[int]:
    """Three odd cut points: an odd m is never the start of a power-of-two-sized chunk."""
    cuts = {(m | 1) for m in (length // 3 + 5, length // 2 + 11, 3 * length // 4 - 3)}
    return sorted(m for m in cuts if 2 <= m < length)


def run(
    client: ScorerClient, piece: TokenSlice, base: np.ndarray, *, accepts_mask: bool = True
) -> ProbeResult:
    tokens = piece.tokens
    length = len(tokens)
    tolerance = score_tolerance_text(SCORE_RTOL)
    if not accepts_mask:
        detail = (
            "score() takes no adapt_mask argument (docs/scorer-protocol.md), so adaptation "
            "could not be switched off; a scorer adapting before scoring still fails C1"
        )
        return ProbeResult("C3", NAME, "error", {"adapt_mask_supported": False}, tolerance, detail)
    checks: list[dict[str, object]] = []
    worst = (0.0, 0.0, -1, -1)  # scaled, abs, cut, position
    mask_effect = False
    for m in cut_points(length):
        mask = np.ones(length, dtype=bool)
        mask[m:] = False
        masked = client.score(tokens, mask)
        own = compare(base, masked, np.arange(1, m + 1))
        later = compare(base, masked, np.arange(m + 1, length))
        mask_effect = mask_effect or later.max_abs > 0
        checks.append(
            {
                "cut": m,
                "max_abs_deviation_up_to_cut": short(own.max_abs),
                "max_abs_change_after_cut": short(later.max_abs),
            }
        )
        if own.max_scaled > worst[0] or worst[2] < 0:
            worst = (own.max_scaled, own.max_abs, m, own.worst)
    measured = {
        "cuts": cut_points(length),
        "max_abs_deviation": worst[1],
        "max_rel_deviation": worst[0],
        "worst_cut": worst[2],
        "worst_position": worst[3],
        "adapt_mask_supported": True,
        "adapt_mask_changes_later_scores": mask_effect,
        "checks": checks,
    }
    if worst[0] > SCORE_RTOL:
        status = "fail"
        detail = (
            f"not adapting on tokens {worst[2]}.. changed the score at position {worst[3]} by "
            f"{fmt(worst[1])} nats: the scorer adapts on tokens before scoring them"
        )
    else:
        status = "pass"
        note = "adapt_mask honored" if mask_effect else "no adaptation observed"
        detail = (
            f"scores up to each cut unchanged when adaptation from the cut on is switched off "
            f"(max deviation {fmt(worst[1])} nats; {note})"
        )
    return ProbeResult("C3", NAME, status, measured, tolerance, detail)

"""C1 probe (causality): changing later tokens must leave every earlier score unchanged.

Scores the slice once, then again with one token changed at several positions j (a quarter,
half, three quarters of the way, and the last token) and with every token from a cut point on
replaced (the second half, and the C3 cut points, which sit inside any adaptation chunk). Every score at a position before the change is compared with the original one.
A non-causal window, a bidirectional model or adaptation on tokens not yet scored all move
earlier scores; a causal scorer leaves them bit-for-bit (or float-noise) equal.
"""

from __future__ import annotations

import numpy as np

from audit.probes.c3 import cut_points
from audit.probes.client import ScorerClient
from audit.probes.measure import SCORE_RTOL, compare, fmt, score_tolerance_text, short
from audit.probes.result import ProbeResult
from audit.probes.slices import TokenSlice

NAME = "c1-causality"


def change_positions(length: int) -> list[int]:
    return sorted({max(2, length // 4), max(2, length // 2), max(2, 3 * length // 4), length - 1})


def replacement(token: int, alphabet: int, rng: np.random.Generator) -> int:
    """A different symbol than `token`."""
    return int((token + 1 + rng.integers(0, alphabet - 1)) % alphabet)


def run(client: ScorerClient, piece: TokenSlice, base: np.ndarray) -> ProbeResult:
    tokens = piece.tokens
    length = len(tokens)
    alphabet = client.alphabet
    rng = np.random.default_rng(1)
    worst = None  # (scaled deviation, max abs, changed position, deviating position, kind)
    checks: list[dict[str, object]] = []
    variants: list[tuple[str, int, np.ndarray]] = []
    for j in change_positions(length):
        changed = tokens.copy()
        changed[j] = replacement(int(tokens[j]), alphabet, rng)
        variants.append((f"token {j}", j, changed))
    for cut in sorted({length // 2, *cut_points(length)}):
        suffix = tokens.copy()
        suffix[cut:] = [replacement(int(t), alphabet, rng) for t in tokens[cut:]]
        variants.append((f"tokens {cut}..{length - 1}", cut, suffix))
    for label, j, changed in variants:
        scores = client.score(changed)
        result = compare(base, scores, np.arange(1, j))
        checks.append(
            {
                "changed": label,
                "compared": result.compared,
                "max_abs_deviation": short(result.max_abs),
            }
        )
        if worst is None or result.max_scaled > worst[0]:
            worst = (result.max_scaled, result.max_abs, label, result.worst)
    assert worst is not None
    measured = {
        "max_abs_deviation": worst[1],
        "max_rel_deviation": worst[0],
        "worst_change": worst[2],
        "worst_position": worst[3],
        "checks": checks,
        "slice_tokens": length,
    }
    if worst[0] <= SCORE_RTOL:
        detail = (
            f"earlier scores unchanged after {len(variants)} later changes "
            f"(max deviation {fmt(worst[1])} nats)"
        )
        status = "pass"
    else:
        detail = (
            f"changing {worst[2]} moved the score at earlier position {worst[3]} by "
            f"{fmt(worst[1])} nats: scores depend on tokens after the scored one"
        )
        status = "fail"
    return ProbeResult("C1", NAME, status, measured, score_tolerance_text(), detail)

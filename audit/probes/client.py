"""Typed client over a sandboxed scorer: numpy arrays in, numpy arrays out, failures as ScorerFailed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from audit.probes.result import ScorerFailed
from audit.probes.sandbox import SandboxError, SandboxTimeout, ScorerProcess

# Rows of C2 candidates are sent to score_batch in slices of at most this many tokens.
MAX_BATCH_TOKENS = 1 << 16


class ScorerClient:
    """Asks a started ScorerProcess for scores; counts calls for the report."""

    def __init__(self, process: ScorerProcess, info: dict[str, Any]) -> None:
        self.process = process
        self.vocab_size = int(info["vocab_size"])
        self.level = str(info.get("level", "token"))
        self.has_batch = bool(info.get("has_batch"))
        self.calls = 0
        self.tokens_scored = 0
        self.on_call: Callable[[], None] | None = None

    @property
    def alphabet(self) -> int:
        return 256 if self.level == "byte" else self.vocab_size

    def _ask(self, op: str, **payload: Any) -> list[float | None]:
        try:
            answer = self.process.request(op, **payload)
        except SandboxTimeout as exc:
            raise ScorerFailed(str(exc), fatal=True) from exc
        except SandboxError as exc:
            raise ScorerFailed(str(exc), fatal=True) from exc
        if not answer.get("ok"):
            raise ScorerFailed(str(answer.get("message", "the scorer failed")))
        self.calls += 1
        if self.on_call is not None:
            self.on_call()
        return answer["scores"]

    @staticmethod
    def _array(values: list[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    def score(self, tokens: np.ndarray, adapt_mask: np.ndarray | None = None) -> np.ndarray:
        """`Scorer.score(tokens, adapt_mask)` in the sandbox: per-position nats, shape (T,)."""
        mask = None if adapt_mask is None else [bool(x) for x in adapt_mask]
        self.tokens_scored += len(tokens)
        return self._array(self._ask("score", tokens=[int(x) for x in tokens], mask=mask))

    def candidates(self, prefix: np.ndarray) -> np.ndarray:
        """Score of every alphabet symbol v right after `prefix`, one fresh-state row per v."""
        self.tokens_scored += self.alphabet * (len(prefix) + 1)
        values = self._ask(
            "candidates",
            prefix=[int(x) for x in prefix],
            alphabet=self.alphabet,
            max_batch_tokens=MAX_BATCH_TOKENS,
        )
        return self._array(values)

"""Mechanisms the fresh held-out set showed missing: severities and folder-level cases that
the one-file rule fixtures cannot express (marks carry no severity, a README is a folder)."""

from __future__ import annotations

from pathlib import Path

from audit.engine import audit_source
from audit.model import Severity

FIXTURES = Path(__file__).parent / "fixtures" / "rules"


def _severities(text: str, rule: str) -> set[Severity]:
    return {f.severity for f in audit_source(text) if f.rule == rule}


def test_non_causal_pooling_in_a_causal_model_is_an_error() -> None:
    text = (FIXTURES / "PG401_illegal.py").read_text()
    causal = text.replace(
        "y = F.scaled_dot_product_attention(q, k, v, is_causal=False)  # [PG401]",
        "y = F.scaled_dot_product_attention(q, k, v, is_causal=True)",
    )
    assert causal != text
    assert _severities(causal, "PG401") == {Severity.ERROR}


def test_bidirectional_model_alone_stays_a_warning() -> None:
    # no causal attention anywhere: a masked-input (diffusion) scorer is possible, so review
    text = (FIXTURES / "PG401_illegal.py").read_text()
    assert _severities(text, "PG401") == {Severity.WARNING}

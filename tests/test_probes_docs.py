"""The paste-in example of docs/scorer-protocol.md works: a probe of it passes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audit.probes import run_probes

DOC = Path(__file__).resolve().parents[1] / "docs" / "scorer-protocol.md"

# A stand-in for the rest of an upstream-style train_gpt.py: the names the example uses.
PREAMBLE = """
import os
import torch
import torch.nn.functional as F
from torch import nn


class Hyperparameters:
    vocab_size = int(os.environ.get("VOCAB_SIZE", 48))
    train_seq_len = int(os.environ.get("TRAIN_SEQ_LEN", 40))
    seed = 1


class GPT(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.emb = nn.Embedding(args.vocab_size, 16)
        self.att = nn.MultiheadAttention(16, 2, batch_first=True)
        self.out = nn.Linear(16, args.vocab_size)

    def logits(self, x):
        h = self.emb(x)
        T = x.shape[1]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        h = h + self.att(h, h, h, attn_mask=causal, need_weights=False)[0]
        return self.out(h)
"""


def _example() -> str:
    text = DOC.read_text()
    section = text[text.index("## Minimal example") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


@pytest.mark.slow
def test_scorer_protocol_example_passes_every_probe(tmp_path: Path) -> None:
    script = tmp_path / "train_gpt.py"
    script.write_text(PREAMBLE + _example())
    report = run_probes(script, timeout_s=300, slice_len=100, positions=6)
    assert [(r.condition, r.status) for r in report.results] == [
        ("C1", "pass"),
        ("C2", "pass"),
        ("C3", "pass"),
    ], [r.detail for r in report.results]
    assert report.info["vocab_size"] == 48 and report.info["batched"] is True

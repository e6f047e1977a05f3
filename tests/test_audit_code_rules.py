"""C1/C2/C4 code rules: packed code, effective configuration, and the seed case's shape."""

from __future__ import annotations

import base64
import lzma
import re
from pathlib import Path

from audit.engine import audit_source

FIXTURES = Path(__file__).parent / "fixtures" / "rules"
MARKER = re.compile(r"#\s*\[(PG\d{3}(?:\s*,\s*PG\d{3})*)\]")


def _marked(text: str, family: str) -> set[tuple[int, str]]:
    out = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = MARKER.search(line)
        if m:
            out |= {(lineno, r.strip()) for r in m.group(1).split(",") if r.strip()[2] == family}
    return out


def _pack(src: str) -> str:
    payload = base64.b85encode(
        lzma.compress(src.encode(), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
    )
    return (
        "import lzma as L,base64 as B\n"
        f'exec(L.decompress(B.b85decode("{payload.decode()}"),format=L.FORMAT_RAW,filters=[{{"id":L.FILTER_LZMA2}}]))\n'
    )


def _pairs(findings, family: str) -> set[tuple[int | None, str]]:
    return {(f.line, f.rule) for f in findings if f.rule[2] == family}


def test_packed_illegal_fixtures_still_fail_with_unpacked_line_numbers() -> None:
    for name, family in (
        ("PG501_illegal.py", "5"),
        ("PG503_illegal.py", "5"),
        ("PG701_illegal.py", "7"),
    ):
        text = (FIXTURES / name).read_text()
        got = _pairs(audit_source(_pack(text)), family)
        assert got == _marked(text, family), name


def test_packed_legal_fixture_still_passes() -> None:
    text = (FIXTURES / "PG503_legal.py").read_text()
    assert _pairs(audit_source(_pack(text)), "5") == set()


def test_optional_path_off_by_default_is_not_judged() -> None:
    body = (FIXTURES / "PG501_illegal.py").read_text()
    guarded = body.replace(
        'if __name__ == "__main__":',
        'import os\nNGRAM = bool(int(os.environ.get("NGRAM_ENABLED", "0")))\nif __name__ == "__main__" and NGRAM:',
    )
    assert _pairs(audit_source(guarded), "5") == set()
    on = audit_source(guarded, config={"NGRAM_ENABLED": "1"})
    assert {r for _, r in _pairs(on, "5")} == {"PG501"}


SEED_SHAPE = """
import math
import numpy as np
import torch.nn.functional as F


def ppm_mixture_bpb(tgt_np, lp_np, piece_lens, piece_bytes, lam_hi=0.9, lam_lo=0.05, thr=0.9):
    per_tok_len = piece_lens[tgt_np]
    bs = b"".join(piece_bytes[int(t)] for t in tgt_np)
    rep_lp = np.repeat(lp_np.astype(np.float64), per_tok_len)
    rep_len = np.repeat(per_tok_len.astype(np.float64), per_tok_len)
    nlp = np.where(rep_len > 0, rep_lp / rep_len, 0.0)
    plp = np.log(np.full(len(bs), 1 / 256))
    cf = np.zeros(len(bs))
    lam = np.where(cf > thr, lam_lo, lam_hi)
    pm = lam * np.exp(nlp) + (1 - lam) * np.exp(plp)
    return float(-np.log2(pm).sum() / len(bs))


def eval_val(model, val_tokens, piece_lens, piece_bytes):
    x, y = val_tokens[:-1], val_tokens[1:]
    nll = F.cross_entropy(model(x[None])[0], y, reduction="none")
    return ppm_mixture_bpb(y.numpy(), (-nll).numpy(), piece_lens, piece_bytes)


eval_val(None, None, None, None)
"""


def test_seed_case_shape_fails_c2_at_the_spread() -> None:
    findings = [f for f in audit_source(SEED_SHAPE) if f.condition == "C2"]
    assert findings, "byte-spread PPM mixer must fail C2"
    spread = [f for f in findings if f.rule == "PG503"]
    assert spread and spread[0].function == "ppm_mixture_bpb"
    assert "rep_lp / rep_len" in (spread[0].evidence or "")
    assert "mixed at line 16: lam * np.exp(nlp)" in (spread[0].evidence or "")


def test_legal_sliding_window_softmax_gather_passes() -> None:
    src = """
import math
import torch
import torch.nn.functional as F


def eval_sliding(model, val_tokens, byte_lut, seq_len=128, stride=64):
    loss_sum, byte_sum = 0.0, 0.0
    for ws in range(0, len(val_tokens) - seq_len - 1, stride):
        chunk = val_tokens[ws : ws + seq_len + 1]
        x, y = chunk[:-1], chunk[1:]
        logp = F.log_softmax(model(x[None])[0].float(), dim=-1)
        nll = -logp.gather(-1, y[:, None]).squeeze(-1)
        s = 0 if ws == 0 else seq_len - stride
        loss_sum += nll[s:].sum().item()
        byte_sum += byte_lut[y[s:]].sum().item()
    return loss_sum / math.log(2) / byte_sum


eval_sliding(None, None, None)
"""
    findings = [f for f in audit_source(src) if f.condition in {"C1", "C2", "C4"}]
    assert findings == []


def test_polynomial_and_builtin_hash_keys_are_target_keyed() -> None:
    src = """
import numpy as np
import torch.nn.functional as F


def score(logits, y, ctx, table, totals, buckets):
    nll = F.cross_entropy(logits, y, reduction="none")
    out = 0.0
    for t in range(len(y)):
        key = (int(ctx[t]) * 1000003 + int(y[t])) % buckets
        p = table[key] / max(totals[int(ctx[t]) % buckets], 1)
        k2 = hash((int(ctx[t]), int(y[t]))) % buckets
        q = table[k2]
        out -= np.log(0.5 * np.exp(-float(nll[t])) + 0.4 * p + 0.1 * q)
    return out


score(None, None, None, None, None, 7)
"""
    got = {(f.line, f.rule) for f in audit_source(src) if f.rule.startswith("PG5")}
    assert got == {(11, "PG501"), (13, "PG501")}


def test_power_forms_of_the_byte_spread() -> None:
    src = """
import numpy as np
import torch.nn.functional as F


def spread(logits, y, lens, ppm):
    p = np.exp(-F.cross_entropy(logits, y, reduction="none").numpy())
    n = lens[y.numpy()]
    pb = np.power(p, 1.0 / n)
    pc = p ** (1 / n)
    return -np.log(0.5 * pb + 0.5 * ppm).sum() - np.log(pc).sum()


spread(None, None, None, None)
"""
    got = {(f.line, f.rule) for f in audit_source(src) if f.rule.startswith("PG5")}
    assert got == {(9, "PG503"), (10, "PG503")}


def test_best_of_runs_collected_in_a_loop_fails_c4() -> None:
    src = """
import torch.nn.functional as F


def eval_at(model, tokens, temp):
    x, y = tokens[:-1], tokens[1:]
    return F.cross_entropy(model(x[None])[0] / temp, y).item()


def pick(model, tokens):
    results = []
    for temp in (0.9, 1.0, 1.1):
        results.append(eval_at(model, tokens, temp))
    return min(results)


pick(None, None)
"""
    got = {(f.line, f.rule) for f in audit_source(src) if f.rule.startswith("PG7")}
    assert got == {(14, "PG701")}


def test_torch_bitwise_xor_key_is_target_keyed() -> None:
    src = """
import torch
import torch.nn.functional as F


def score(logits, y, ctx_hash, table, mask):
    nll = F.cross_entropy(logits, y, reduction="none")
    key = torch.bitwise_xor(ctx_hash, y * 1000003) & mask
    p = table[key]
    return -torch.log(0.5 * torch.exp(-nll) + 0.5 * p).sum()


score(None, None, None, None, 7)
"""
    got = {(f.line, f.rule) for f in audit_source(src) if f.rule.startswith("PG5")}
    assert got == {(9, "PG501")}

"""Rules that judge the logs' own numbers: evaluation work on validation data placed before the
artifact (PG214 vs PG213) and the byte count behind the reported score (PG115)."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest

from audit.engine import audit_folder
from audit.rules.score_bytes import implied_bytes

# A pre-quant TTT that prints per-epoch lines under a prefix chosen at run time; its caller
# prints the elapsed time again right after the call.
CODE = """
import glob, time
import torch
import torch.nn.functional as F

def load(pattern):
    return torch.cat([torch.load(f) for f in sorted(glob.glob(pattern))])

def adapt(model, tokens, discriminative):
    tag = "ttt_disc" if discriminative else "ttt_plain"
    t0 = time.perf_counter()
    opt = torch.optim.AdamW(model.parameters())
    for epoch in range(3):
        loss = F.cross_entropy(model(tokens[:-1]), tokens[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"{tag}:epoch {epoch + 1}/3 time:{time.perf_counter() - t0:.1f}s")

def main():
    model = torch.nn.Embedding(8, 8)
    train = load("data/fineweb_train_*.bin")
    opt = torch.optim.AdamW(model.parameters())
    loss = F.cross_entropy(model(train[:-1]), train[1:])
    loss.backward()
    opt.step()
    val = load("data/fineweb_val_*.bin")
    t_ttt = time.perf_counter()
    adapt(model, val, True)
    print(f"ttt:elapsed={time.perf_counter() - t_ttt:.1f}s")
    print(f"calib:collected 8 Hessians in {1.0:.1f}s")
    torch.save(model.state_dict(), "final_model.pt")
    model.load_state_dict(torch.load("final_model.pt"))
    print(F.cross_entropy(model(val[:-1]), val[1:]).item())

if __name__ == "__main__":
    main()
"""

LOG_TAIL = """\
step:200/200 train_loss:3.1000 train_time:{train_ms}ms step_avg:2950.00ms
stopping_early: wallclock_cap train_time:{train_ms}ms
ttt_disc:epoch 1/3 time:60.0s
ttt_disc:epoch 2/3 time:120.0s
ttt_disc:epoch 3/3 time:180.0s
ttt:elapsed=180.0s
calib:collected 8 Hessians in 20.0s
Serialized model int8: 15000000 bytes
Total submission size int8: {total} bytes
final_sliding_window val_loss:2.3000 val_bpb:1.0300 eval_time:{eval_ms}ms
final_sliding_window_exact val_loss:2.30000000 val_bpb:{bpb}
"""


def _folder(tmp_path: Path, *, train_ms: int, eval_ms: int, tail: str = LOG_TAIL) -> Path:
    d = tmp_path / "record"
    d.mkdir(parents=True)
    code = textwrap.dedent(CODE)
    (d / "train_gpt.py").write_text(code)
    total = 15_000_000 + len(code.encode())
    for seed, bpb in ((42, "1.03000000"), (314, "1.03100000"), (999, "1.02900000")):
        head = f"{code}\n{'=' * 100}\nseed:{seed}\n"
        body = tail.format(train_ms=train_ms, eval_ms=eval_ms, total=total, bpb=bpb)
        (d / f"train_seed{seed}.log").write_text(head + body)
    sub = {
        "author": "a",
        "github_id": "a",
        "name": "n",
        "date": "2026-05-01",
        "track": "track_10min_16mb",
        "val_bpb": 1.03,
        "val_bpb_std": 0.001,
        "bytes_total": total,
        "val_bpb_by_seed": {"42": 1.03, "314": 1.031, "999": 1.029},
    }
    (d / "submission.json").write_text(json.dumps(sub))
    return d


def _findings(folder: Path, rule: str):
    return [f for f in audit_folder(folder).findings if f.rule == rule]


def test_val_work_counts_once_towards_evaluation_and_not_towards_training(tmp_path: Path) -> None:
    # 580 s of training + 20 s of calibration: R2 holds without the 180 s of TTT on val.
    # 430 s of evaluation + 180 s of TTT (cumulative per-epoch clock and the caller's
    # restatement are one phase, not 60+120+180+180) = 610 s: over R3.
    folder = _folder(tmp_path, train_ms=580_000, eval_ms=430_000)
    pg214 = _findings(folder, "PG214")
    assert len(pg214) == 3
    assert all(f.severity.value == "error" and f.condition == "R3" for f in pg214)
    assert "= 610.0 s of evaluation" in pg214[0].message
    assert "`adapt` 180.0 s" in pg214[0].message
    assert pg214[0].evidence and "ttt_disc:epoch 3/3" in pg214[0].evidence
    assert _findings(folder, "PG213") == []


def test_val_work_within_the_evaluation_budget_passes(tmp_path: Path) -> None:
    folder = _folder(tmp_path, train_ms=580_000, eval_ms=400_000)  # 400 + 180 = 580 s
    assert _findings(folder, "PG214") == []


def test_training_side_work_still_counts_towards_training(tmp_path: Path) -> None:
    folder = _folder(tmp_path, train_ms=590_000, eval_ms=100_000)  # 590 + 20 s calibration
    pg213 = _findings(folder, "PG213")
    assert pg213 and "20.0 s of timed work" in pg213[0].message


def _bytes_folder(tmp_path: Path, tokens: int, loss: float, bpb: float) -> Path:
    tail = LOG_TAIL.replace(
        "final_sliding_window val_loss:2.3000 val_bpb:1.0300 eval_time:{eval_ms}ms\n"
        "final_sliding_window_exact val_loss:2.30000000 val_bpb:{bpb}\n",
        f"val_tokens: {tokens}\nfinal_sliding_window_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}\n",
    )
    return _folder(tmp_path, train_ms=500_000, eval_ms=100_000, tail=tail)


def test_implied_bytes_is_the_bpb_formula_inverted() -> None:
    loss, tokens, n_bytes = 2.5, 40_540_160, 151_078_000
    bpb = loss / math.log(2) * tokens / n_bytes
    assert implied_bytes(tokens, loss, bpb) == pytest.approx(n_bytes)


def test_score_over_too_many_bytes_fails_and_the_split_passes(tmp_path: Path) -> None:
    tokens, loss = 45_514_752, 2.56688477
    wrong = loss / math.log(2) * tokens / 192_585_000
    right = loss / math.log(2) * tokens / 151_075_000
    bad = _findings(_bytes_folder(tmp_path / "bad", tokens, loss, wrong), "PG115")
    assert bad and bad[0].severity.value == "error" and "+27.5%" in bad[0].message
    assert _findings(_bytes_folder(tmp_path / "ok", tokens, loss, right), "PG115") == []
    # the first data release (63.78 M sp1024 tokens, 155.77 M bytes) is a validation split too
    first = 2.0727 / math.log(2) * 63_779_840 / 155_770_000
    assert _findings(_bytes_folder(tmp_path / "v0", 63_779_840, 2.0727, first), "PG115") == []

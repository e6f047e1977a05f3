"""pgolf.caps: R1 bytes from real files vs the log's claim, R2/R3 times vs caps."""

from __future__ import annotations

from pathlib import Path

from pgolf.caps import Caps, check_bytes, check_seed, check_time, code_bytes, code_files
from pgolf.logs import parse_log_text


def _log(total: int | None = None, train_ms: int = 599_000, eval_ms: int = 500_000):
    lines = [f"train_time_total:{train_ms}ms", f"eval_time_total:{eval_ms}ms"]
    if total is not None:
        lines.append(f"Total submission size int8+zstd: {total} bytes")
    lines.append("final_x_exact val_loss:2.0 val_bpb:1.0")
    return parse_log_text("\n".join(lines))


def test_code_files_count_shipped_sizes(tmp_path: Path) -> None:
    (tmp_path / "train_gpt.py").write_bytes(b"x" * 1000)
    (tmp_path / "helper.py").write_bytes(b"y" * 24)
    (tmp_path / "README.md").write_text("not code")
    (tmp_path / "seed1").mkdir()
    files = code_files(tmp_path)
    assert [path.name for path in files] == ["helper.py", "train_gpt.py"]
    assert code_bytes(files) == 1024


def test_bytes_measured_from_files_and_compared_with_the_claim(tmp_path: Path) -> None:
    artifact = tmp_path / "final_model.int8.ptz"
    artifact.write_bytes(b"z" * 5000)
    same = check_bytes(1000, artifact, _log(total=6000), cap=16_000_000)
    assert (same.status, same.measured, same.claimed) == ("pass", 6000.0, 6000.0)
    assert "claims" not in same.detail
    lying = check_bytes(1000, artifact, _log(total=5500), cap=16_000_000)
    assert lying.measured == 6000.0
    assert "the log claims 5,500" in lying.detail
    over = check_bytes(1000, artifact, _log(total=6000), cap=5999)
    assert over.status == "fail"


def test_bytes_fall_back_to_the_claim_without_an_artifact(tmp_path: Path) -> None:
    check = check_bytes(1000, tmp_path / "missing.ptz", _log(total=16_000_001))
    assert check.status == "fail"
    assert "artifact file not available" in check.detail
    unknown = check_bytes(None, None, _log())
    assert unknown.status == "unknown"


def test_time_caps() -> None:
    assert check_time("R2", "train_time", 600.0, 600.0).status == "pass"
    assert check_time("R2", "train_time", 600.5, 600.0).status == "fail"
    assert check_time("R3", "eval_time", None, 600.0).status == "unknown"


def test_check_seed_combines_the_three_caps(tmp_path: Path) -> None:
    artifact = tmp_path / "a.ptz"
    artifact.write_bytes(b"z" * 10)
    ok = check_seed(_log(total=20), code=10, artifact=artifact, seed=42)
    assert ok.status == "pass" and ok.seed == 42
    slow = check_seed(_log(total=20, eval_ms=601_000), code=10, artifact=artifact)
    assert slow.status == "fail" and slow.eval.status == "fail"
    tight = check_seed(_log(total=20), code=10, artifact=artifact, caps=Caps(train_s=100))
    assert tight.train.status == "fail"
    assert check_seed(None, code=10, artifact=None).status == "unknown"
    assert set(ok.to_dict()) == {"seed", "status", "bytes", "train", "eval"}

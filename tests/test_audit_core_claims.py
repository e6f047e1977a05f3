"""Reading claims out of submission.json's many historical shapes."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from audit.claims import claimed_bytes, claimed_std, claimed_times, num, per_seed

SEEDS = st.dictionaries(
    st.integers(min_value=0, max_value=100_000),
    st.floats(min_value=0.5, max_value=5.0, allow_nan=False),
    min_size=1,
    max_size=5,
)


@given(SEEDS)
def test_per_seed_reads_every_shape(scores: dict[int, float]) -> None:
    shapes = [
        {"val_bpb_by_seed": {str(s): v for s, v in scores.items()}},
        {"seed_results": {str(s): {"val_bpb": v} for s, v in scores.items()}},
        {"seed_results": [{"seed": s, "val_bpb": v} for s, v in scores.items()]},
        {"results": [{"seed": str(s), "bpb": str(v)} for s, v in scores.items()]},
    ]
    for sub in shapes:
        assert per_seed(sub, "val_bpb") == scores


def test_per_seed_times_in_ms_and_bytes() -> None:
    sub = {
        "seed_results": {"42": {"train_time_ms": 599843, "artifact_bytes": 15997180}},
        "train_time_ms_by_seed": {"314": 599586},
        "bytes_total_max": 15999539,
    }
    assert per_seed(sub, "train_time_s") == {42: 599.843}
    assert ("seed 314", 599.586) in claimed_times(sub, "train_time_s")
    assert claimed_bytes(sub) == [("bytes_total_max", 15999539.0), ("seed 42", 15997180.0)]


@given(st.one_of(st.none(), st.booleans(), st.text(max_size=10), st.floats(), st.integers()))
def test_num_is_total(x: object) -> None:
    v = num(x)
    assert v is None or (isinstance(v, float) and math.isfinite(v))
    if isinstance(x, bool) or x is None:
        assert v is None


def test_num_reads_strings_with_separators() -> None:
    assert num("15,999,539") == 15999539.0
    assert num(" 1.0e-3 ") == 0.001
    assert num("nan") is None and num("fast") is None


def test_claimed_std_aliases() -> None:
    assert claimed_std({"val_bpb_std": 0.0009}) == 0.0009
    assert claimed_std({"std": "0.001"}) == 0.001
    assert claimed_std({}) is None and claimed_std(None) is None

"""Pure parts of the probes: comparisons, masses, positions, slices, rules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from audit.model import REGISTRY
from audit.probes import c1, c2, c3
from audit.probes.measure import SCORE_RTOL, compare
from audit.probes.result import jsonable
from audit.probes.slices import resolve_slice
from pgolf.errors import InputError

scores = arrays(
    np.float64,
    st.integers(2, 64),
    elements=st.one_of(st.floats(0, 30), st.just(math.nan), st.just(math.inf)),
)


@given(scores)
def test_compare_with_itself_is_zero(a: np.ndarray) -> None:
    result = compare(a, a.copy(), np.arange(1, len(a)))
    assert result.max_abs == 0 and result.within()


@given(scores, st.data())
def test_compare_finds_the_changed_position(a: np.ndarray, data: st.DataObject) -> None:
    a = np.nan_to_num(a, nan=1.0, posinf=5.0)
    i = data.draw(st.integers(1, len(a) - 1))
    b = a.copy()
    b[i] += 0.5
    result = compare(a, b, np.arange(1, len(a)))
    assert result.worst == i and math.isclose(result.max_abs, 0.5, rel_tol=1e-9)
    assert not result.within()


def test_compare_treats_nan_against_number_as_infinite() -> None:
    a = np.array([np.nan, 1.0, np.nan, np.inf])
    b = np.array([np.nan, 1.0, 2.0, np.inf])
    result = compare(a, b, np.arange(1, 4))
    assert result.max_abs == math.inf and result.worst == 2


def test_float_noise_is_within_tolerance() -> None:
    a = np.array([np.nan, 7.25, 0.5])
    b = a * (1 + SCORE_RTOL / 10)
    assert compare(a, b, np.arange(1, 3)).within()


@given(st.integers(2, 300), st.integers(1, 64))
def test_sampled_positions_are_valid_and_distinct(length: int, count: int) -> None:
    positions = c2.sample_positions(length, count)
    assert positions == sorted(set(positions))
    assert all(1 <= t <= length - 1 for t in positions)
    assert len(positions) == min(count, length - 1)


@given(st.integers(16, 5000))
def test_cut_points_and_change_positions_fit_the_slice(length: int) -> None:
    assert all(2 <= m < length for m in c3.cut_points(length))
    # odd cuts avoid power-of-two chunk starts, so they fall inside adaptation chunks
    assert all(m % 2 == 1 for m in c3.cut_points(length))
    assert len(c3.cut_points(length)) >= (3 if length >= 128 else 1)
    assert all(2 <= j < length for j in c1.change_positions(length))


def test_mass_of_a_distribution_is_one_and_of_a_gate_is_not() -> None:
    p = np.random.default_rng(0).dirichlet(np.ones(1024))
    assert abs(c2.mass(-np.log(p)) - 1) < 1e-12
    boosted = p.copy()
    boosted[7] *= 3
    assert c2.mass(-np.log(boosted)) > 1 + 1e-3
    assert math.isnan(c2.mass(np.array([np.nan, 1.0])))
    assert c2.mass(np.array([np.inf, 0.0])) == 1.0


def test_replacement_always_differs() -> None:
    rng = np.random.default_rng(0)
    for token in range(5):
        assert all(c1.replacement(token, 5, rng) != token for _ in range(50))


def _write_shard(path: Path, tokens: np.ndarray) -> None:
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(tokens))
    path.write_bytes(header.tobytes() + tokens.astype("<u2").tobytes())


def test_slice_from_val_shards_excludes_byte_sidecars(tmp_path: Path) -> None:
    _write_shard(tmp_path / "fineweb_val_000000.bin", np.arange(100) % 50)
    _write_shard(tmp_path / "fineweb_val_bytes_000000.bin", np.full(100, 60))
    _write_shard(tmp_path / "fineweb_train_000000.bin", np.full(100, 49))
    piece = resolve_slice(50, "token", length=64, data_dir=tmp_path)
    assert piece.real and list(piece.tokens[:3]) == [0, 1, 2] and len(piece.tokens) == 64
    assert "fineweb_val_000000.bin" in piece.source


def test_slice_errors_name_the_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no fineweb_val"):
        resolve_slice(50, "token", length=64, data_dir=tmp_path)
    _write_shard(tmp_path / "fineweb_val_000000.bin", np.arange(100))
    with pytest.raises(InputError, match="does not fit the scorer's vocabulary of 50"):
        resolve_slice(50, "token", length=64, data_dir=tmp_path)


def test_slice_falls_back_to_deterministic_pseudo_random(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGOLF_CACHE_DIR", str(tmp_path))
    a = resolve_slice(300, "token", length=128)
    b = resolve_slice(300, "token", length=128)
    assert not a.real and "pseudo-random" in a.source
    assert np.array_equal(a.tokens, b.tokens) and a.tokens.max() < 300


def test_byte_slice_is_real_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOLF_CACHE_DIR", str(tmp_path))
    piece = resolve_slice(256, "byte", length=200)
    assert piece.real and len(piece.tokens) == 200 and piece.tokens.max() < 256
    text = bytes(int(b) for b in piece.tokens)
    assert sum(32 <= b < 127 or b == 10 for b in text) > 0.95 * len(text)
    assert text.count(b" ") > 10


def test_probe_rules_are_registered_with_docs() -> None:
    ids = {"PG490", "PG491", "PG499", "PG590", "PG591", "PG690", "PG691"}
    for rule_id in ids:
        rule = REGISTRY.get(rule_id)
        assert rule is not None and rule.probe  # type: ignore[attr-defined]
        doc = rule.__doc__ or ""
        for heading in ("## What it does", "## Why is this bad?", "## Illegal example"):
            assert heading in doc, (rule_id, heading)
        assert list(rule().check(None)) == []  # type: ignore[arg-type]
    assert REGISTRY.get("PG591").condition == "C2"  # type: ignore[union-attr]


def test_jsonable_replaces_non_finite_numbers() -> None:
    data = {"a": float("nan"), "b": [float("inf"), np.float64(2.5)], "c": {"d": -math.inf}}
    assert jsonable(data) == {"a": None, "b": ["inf", 2.5], "c": {"d": "-inf"}}

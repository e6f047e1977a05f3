"""Every fixture scorer is caught by the right condition, and every legal twin passes."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from audit.probes import ProbeReport, run_probes

FIXTURES = Path(__file__).parent / "fixtures" / "probes"

# fixture -> expected status per condition (None: not asserted, the fixture may break it too)
EXPECTED: dict[str, dict[str, str | None]] = {
    "causal_legal.py": {"C1": "pass", "C2": "pass", "C3": "pass"},
    "unigram_cache_legal.py": {"C1": "pass", "C2": "pass", "C3": "pass"},
    "ppm_mixture_legal.py": {"C1": "pass", "C2": "pass", "C3": "pass"},
    "realized_gate_illegal.py": {"C1": "pass", "C2": "fail", "C3": "pass"},
    "hash_boost_illegal.py": {"C1": "pass", "C2": "fail", "C3": "pass"},
    "subset_renorm_illegal.py": {"C1": "pass", "C2": "fail", "C3": "pass"},
    "byte_spread_illegal.py": {"C1": None, "C2": "fail", "C3": "pass"},
    "ttt_after_adapt_illegal.py": {"C1": "fail", "C2": None, "C3": "fail"},
    "ttt_ignores_mask_illegal.py": {"C1": "fail", "C2": None, "C3": "error"},
    "noncausal_window_illegal.py": {"C1": "fail", "C2": "pass", "C3": "pass"},
}
RULE_OF = {"C1": "PG491", "C2": "PG591", "C3": "PG691"}


@cache
def probe(name: str) -> ProbeReport:
    return run_probes(FIXTURES / name, timeout_s=120)


@pytest.fixture(autouse=True)
def _no_default_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOLF_CACHE_DIR", str(tmp_path / "empty-cache"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_caught_by_the_right_condition(name: str) -> None:
    report = probe(name)
    statuses = {r.condition: r.status for r in report.results}
    for condition, expected in EXPECTED[name].items():
        if expected is not None:
            assert statuses[condition] == expected, (condition, report.results)
    failed_rules = {f.rule for f in report.findings if f.severity.value == "error"}
    assert failed_rules == {RULE_OF[c] for c, s in statuses.items() if s == "fail"}


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if n.endswith("_legal.py")])
def test_legal_twins_have_no_findings(name: str) -> None:
    assert probe(name).findings == []
    assert probe(name).status == "pass"


def test_c2_reports_mass_per_position_and_range() -> None:
    c2 = next(r for r in probe("hash_boost_illegal.py").results if r.condition == "C2")
    masses = list(c2.measured["mass_per_position"].values())
    assert len(masses) == c2.measured["positions"] == 32
    assert abs(c2.measured["mass_min"] - min(masses)) < 1e-6
    assert abs(c2.measured["mass_max"] - max(masses)) < 1e-6 and max(masses) > 1.001
    assert "|" not in c2.tolerance  # rendered inside Markdown tables
    assert c2.measured["alphabet"] == 64
    legal = next(r for r in probe("ppm_mixture_legal.py").results if r.condition == "C2")
    assert legal.measured["max_abs_mass_error"] < 1e-9


def test_byte_level_scorer_is_probed_over_256_bytes_of_real_text() -> None:
    report = probe("byte_spread_illegal.py")
    c2 = next(r for r in report.results if r.condition == "C2")
    assert c2.measured["alphabet"] == 256
    assert report.info["level"] == "byte"
    assert report.info["slice"]["real"] is True


def test_failure_messages_carry_the_measured_numbers() -> None:
    report = probe("noncausal_window_illegal.py")
    c1 = next(r for r in report.results if r.condition == "C1")
    finding = next(f for f in report.findings if f.rule == "PG491")
    assert c1.measured["max_abs_deviation"] > 0.01
    assert f"{c1.measured['max_abs_deviation']:.3g}" in finding.message
    assert finding.file == "noncausal_window_illegal.py"
    assert finding.line is not None and finding.function == "pgolf_scorer"


def test_c3_measures_the_adapt_mask_effect() -> None:
    legal = next(r for r in probe("unigram_cache_legal.py").results if r.condition == "C3")
    assert legal.measured["adapt_mask_changes_later_scores"] is True
    assert legal.measured["max_abs_deviation"] == 0
    illegal = next(r for r in probe("ttt_after_adapt_illegal.py").results if r.condition == "C3")
    assert illegal.measured["max_abs_deviation"] > 0.01


def test_json_report_is_strict_json() -> None:
    import json

    for name in ("hash_boost_illegal.py", "ttt_ignores_mask_illegal.py"):
        text = json.dumps(probe(name).to_json(), allow_nan=False)
        assert '"results"' in text

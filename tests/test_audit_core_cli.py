"""`pgolf audit` CLI: formats, outputs, exit codes, --explain, --list-rules, --probe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from audit.report.markdown import MARKER
from pgolf.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
CLEAN = FIXTURES / "audit" / "clean_record"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def record(tmp_path: Path) -> Path:
    dest = tmp_path / "record"
    shutil.copytree(CLEAN, dest)
    return dest


@pytest.fixture
def over_cap(tmp_path: Path) -> Path:
    dest = tmp_path / "over_cap"
    shutil.copytree(
        FIXTURES / "rules" / "PG201_illegal", dest, ignore=shutil.ignore_patterns("expected.json")
    )
    return dest


def test_clean_folder_exits_0_with_summary_table(runner: CliRunner, record: Path) -> None:
    result = runner.invoke(main, ["audit", str(record)])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "pgolf audit summary" in result.output


def test_failing_folder_exits_1(runner: CliRunner, over_cap: Path) -> None:
    result = runner.invoke(main, ["audit", str(over_cap)])
    assert result.exit_code == 1
    assert "PG201" in result.output and "FAIL" in result.output


def test_fail_on_thresholds(runner: CliRunner, record: Path) -> None:
    (record / "README.md").unlink()  # PG101 warning only
    assert runner.invoke(main, ["audit", str(record)]).exit_code == 0
    assert runner.invoke(main, ["audit", str(record), "--fail-on", "warning"]).exit_code == 1
    assert (
        runner.invoke(
            main, ["audit", str(record), "--ignore", "PG101", "--fail-on", "info"]
        ).exit_code
        == 0
    )


def test_json_one_and_many(runner: CliRunner, record: Path, over_cap: Path) -> None:
    one = runner.invoke(main, ["audit", str(record), "--format", "json"])
    data = json.loads(one.output)
    assert data["schema"] == "pgolf.audit/1" and data["verdict"] == "pass"
    many = runner.invoke(main, ["audit", str(record), str(over_cap), "--format", "json"])
    assert many.exit_code == 1
    verdicts = [r["verdict"] for r in json.loads(many.output)]
    assert verdicts == ["pass", "fail"]


def test_sarif_to_output_file(runner: CliRunner, over_cap: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "audit.sarif"
    result = runner.invoke(main, ["audit", str(over_cap), "--format", "sarif", "-o", str(out)])
    assert result.exit_code == 1
    sarif = json.loads(out.read_text())
    assert sarif["version"] == "2.1.0"
    assert any(r["ruleId"] == "PG201" for r in sarif["runs"][0]["results"])


def test_md_format_ends_with_verdict(runner: CliRunner, record: Path) -> None:
    result = runner.invoke(main, ["audit", str(record), "--format", "md"])
    assert result.output.rstrip().splitlines()[-1] == "Verdict: PASS"


def test_write_md_never_overwrites_the_folders_own_audit(
    runner: CliRunner, record: Path, tmp_path: Path
) -> None:
    own = record / "LEGALITY_AUDIT.md"
    own.write_text("# Legality\n\n## Verdict\n\nLikely legal.\n")
    # Into a chosen place: fine.
    target = tmp_path / "audits" / "record.md"
    assert runner.invoke(main, ["audit", str(record), "--write-md", str(target)]).exit_code == 0
    assert target.read_text().startswith(MARKER)
    # In place: refused (exit 2), the hand-written file is untouched.
    result = runner.invoke(main, ["audit", str(record), "--in-place"])
    assert result.exit_code == 2 and "not overwritten" in result.output
    assert own.read_text().startswith("# Legality")
    result = runner.invoke(main, ["audit", str(record), "--write-md", str(own)])
    assert result.exit_code == 2 and own.read_text().startswith("# Legality")
    # --force replaces it; a pgolf-written one is replaced without --force next time.
    assert runner.invoke(main, ["audit", str(record), "--in-place", "--force"]).exit_code == 0
    assert own.read_text().startswith(MARKER)
    assert runner.invoke(main, ["audit", str(record), "--in-place"]).exit_code == 0


def test_write_md_directory_for_many(
    runner: CliRunner, record: Path, over_cap: Path, tmp_path: Path
) -> None:
    out = tmp_path / "md"
    runner.invoke(main, ["audit", str(record), str(over_cap), "--write-md", str(out)])
    assert (out / "record" / "LEGALITY_AUDIT.md").read_text().rstrip().endswith("Verdict: PASS")
    assert (out / "over_cap" / "LEGALITY_AUDIT.md").read_text().rstrip().endswith("Verdict: FAIL")


def test_many_folders_one_missing_exits_2_but_reports_others(
    runner: CliRunner, record: Path, tmp_path: Path
) -> None:
    result = runner.invoke(main, ["audit", str(record), str(tmp_path / "gone"), "--format", "json"])
    assert result.exit_code == 2
    assert "no such folder" in result.output
    assert '"verdict": "pass"' in result.output


def test_explain_prints_the_rule_doc(runner: CliRunner) -> None:
    result = runner.invoke(main, ["audit", "--explain", "pg201"])
    assert result.exit_code == 0
    for heading in (
        "What it does",
        "Why is this bad?",
        "Illegal example",
        "Legal example",
        "References",
    ):
        assert f"## {heading}" in result.output
    bad = runner.invoke(main, ["audit", "--explain", "PG999"])
    assert bad.exit_code == 2 and "unknown rule id" in bad.output


def test_list_rules(runner: CliRunner) -> None:
    result = runner.invoke(main, ["audit", "--list-rules"])
    assert result.exit_code == 0
    for rid in ("PG101", "PG201", "PG211", "PG801"):
        assert rid in result.output


def test_no_folder_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["audit"])
    assert result.exit_code == 2 and "no folder given" in result.output


def test_probe_unavailable_is_one_line(
    runner: CliRunner, record: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit.probes as probes

    monkeypatch.delattr(probes, "run_probes")
    result = runner.invoke(main, ["audit", str(record), "--probe"])
    assert result.exit_code == 2
    assert "probes are not available" in result.output and "Traceback" not in result.output


def test_probe_calls_run_probes_with_timeout(
    runner: CliRunner, record: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit.probes as probes
    from audit.probes import ProbeReport

    seen = {}

    def fake(target: Path, *, timeout_s: float = 300.0) -> ProbeReport:
        seen["args"] = (Path(target), timeout_s)
        return ProbeReport(results=[], findings=[])

    monkeypatch.setattr(probes, "run_probes", fake)
    result = runner.invoke(
        main, ["audit", str(record), "--probe", "--probe-timeout", "12", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert seen["args"] == (record, 12.0)
    assert json.loads(result.output)["probes"] == {"results": []}


def test_unknown_select_prefix_is_an_input_error(runner: CliRunner, record: Path) -> None:
    result = runner.invoke(main, ["audit", str(record), "--select", "PG9"])
    assert result.exit_code == 2 and "no rule id starts with it" in result.output
    result = runner.invoke(main, ["audit", str(record), "--ignore", "XX1"])
    assert result.exit_code == 2


def test_write_md_keeps_folders_with_the_same_name(runner: CliRunner, tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "x", tmp_path / "b" / "x"
    shutil.copytree(CLEAN, a)
    shutil.copytree(CLEAN, b)
    out = tmp_path / "md"
    assert runner.invoke(main, ["audit", str(a), str(b), "--write-md", str(out)]).exit_code == 0
    assert (out / "x" / "LEGALITY_AUDIT.md").exists() and (
        out / "x-2" / "LEGALITY_AUDIT.md"
    ).exists()


def test_self_audit_without_a_conclusion_line_is_named_plainly(
    runner: CliRunner, record: Path
) -> None:
    fixtures = Path(__file__).parent / "fixtures" / "rules"
    shutil.copy(fixtures / "PG503_illegal.py", record / "train_gpt.py")
    (record / "STATIC_AUDIT_NOTES.md").write_text(
        "# Static notes\n\nThe mixer only reads prefix counts. No network access.\n"
    )
    result = runner.invoke(main, ["audit", str(record), "--fail-on", "error"])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "concludes None" not in out
    assert "(STATIC_AUDIT_NOTES.md) concludes 'that the submission is legal'" not in out
    assert "concludes that the submission is legal: that conclusion does not hold" in out

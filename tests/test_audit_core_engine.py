"""Engine: rule isolation, verdicts, select/ignore, suppressions, runs and summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from audit.context import build_context
from audit.engine import audit_context, audit_folder, run_rules, select_rules, verdict_of
from audit.model import Finding, Rule, Severity

CLEAN = Path(__file__).parent / "fixtures" / "audit" / "clean_record"


@pytest.fixture
def record(tmp_path: Path) -> Path:
    dest = tmp_path / "record"
    shutil.copytree(CLEAN, dest)
    return dest


class Crashes(Rule):
    """Test rule (not registered)."""

    id = "PG599"
    name = "crashes"
    condition = "C2"

    def check(self, ctx):
        yield self.finding(message="before the crash")
        raise ZeroDivisionError("boom")


class Flags(Rule):
    """Test rule (not registered): flags line 10 of train_gpt.py."""

    id = "PG598"
    name = "flags"
    condition = "C2"

    def check(self, ctx):
        yield self.finding(file="train_gpt.py", line=10, message="flagged")


def test_clean_record_passes_with_exact_summary(record: Path) -> None:
    report = audit_folder(record)
    assert report.verdict == "pass", [f.message for f in report.active]
    s = report.summary
    assert s["n_runs"] == 3
    assert s["val_bpb_mean"] == pytest.approx(1.03, abs=1e-12)
    assert s["val_bpb_std"] == pytest.approx(0.001, abs=1e-12)
    assert s["claimed_val_bpb"] == 1.03
    assert s["bytes_max"] == 15_000_000 + (record / "train_gpt.py").stat().st_size
    assert sorted(r["seed"] for r in report.runs) == [42, 314, 999]
    run = next(r for r in report.runs if r["seed"] == 42)
    assert run == {
        "log": "train_seed42.log",
        "seed": 42,
        "val_bpb": 1.03,
        "val_loss": 2.3,
        "bytes_total": s["bytes_max"],
        "train_time_s": 590.0,
        "eval_time_s": 120.0,
        "in_claim": True,
    }


def test_crashing_rule_becomes_a_finding_naming_it(record: Path) -> None:
    ctx = build_context(record)
    findings = run_rules(ctx, [Crashes, Flags])
    crash = [f for f in findings if f.rule == "PG599"]
    assert len(crash) == 1 and crash[0].severity == Severity.WARNING
    assert "internal error in rule PG599" in crash[0].message
    assert "ZeroDivisionError" in crash[0].message
    # The other rule still ran.
    assert any(f.rule == "PG598" for f in findings)


def test_verdict_levels() -> None:
    def f(sev: Severity, suppressed: str | None = None) -> Finding:
        return Finding("PG101", "R7", sev, "m", suppressed=suppressed)

    assert verdict_of([]) == "pass"
    assert verdict_of([f(Severity.INFO)]) == "pass"
    assert verdict_of([f(Severity.INFO), f(Severity.WARNING)]) == "review"
    assert verdict_of([f(Severity.WARNING), f(Severity.ERROR)]) == "fail"
    assert verdict_of([f(Severity.ERROR, suppressed="why")]) == "pass"


def test_select_and_ignore_by_prefix() -> None:
    rules = [Crashes, Flags]
    assert select_rules(rules, ["PG598"]) == [Flags]
    assert select_rules(rules, ["pg59"]) == [Crashes, Flags]
    assert select_rules(rules, None, ["PG599"]) == [Flags]
    assert select_rules(rules, ["PG5"], ["PG598"]) == [Crashes]


def test_select_limits_the_rules_run(record: Path) -> None:
    (record / "submission.json").write_text("{not json")
    assert audit_folder(record, select=["PG8"]).verdict == "pass"
    assert audit_folder(record, ignore=["PG102"]).verdict == "pass"
    assert audit_folder(record).verdict == "fail"


def _suppress_case(record: Path, comment: str) -> list[Finding]:
    src = (record / "train_gpt.py").read_text().splitlines()
    src[9] = src[9] + comment  # line 10
    (record / "train_gpt.py").write_text("\n".join(src) + "\n")
    ctx = build_context(record)
    from audit import suppress

    return suppress.apply(run_rules(ctx, [Flags]), suppress.collect(ctx))


def test_inline_suppression_needs_a_justification(record: Path) -> None:
    (f,) = _suppress_case(record, "  # pgolf: allow PG598 -- reviewed: the table is normalized")
    assert f.suppressed and "reviewed: the table is normalized" in f.suppressed
    assert "train_gpt.py:10" in f.suppressed


def test_inline_suppression_without_justification_is_ignored(tmp_path: Path) -> None:
    dest = tmp_path / "r"
    shutil.copytree(CLEAN, dest)
    (f,) = _suppress_case(dest, "  # pgolf: allow PG598")
    assert f.suppressed is None


def test_suppression_on_the_line_above(record: Path) -> None:
    src = (record / "train_gpt.py").read_text().splitlines()
    src.insert(9, "    # pgolf: allow PG598 -- checked by hand")
    (record / "train_gpt.py").write_text("\n".join(src) + "\n")
    ctx = build_context(record)
    from audit import suppress

    # Flags reports line 10, the comment now sits on line 10 itself: covered; line 11 also.
    sups = suppress.collect(ctx)
    assert [s.line for s in sups.items] == [10]
    f = Finding("PG598", "C2", Severity.ERROR, "m", file="train_gpt.py", line=11)
    assert suppress.apply([f], sups)[0].suppressed
    f12 = Finding("PG598", "C2", Severity.ERROR, "m", file="train_gpt.py", line=12)
    assert suppress.apply([f12], sups)[0].suppressed is None


def test_config_file_suppression_and_its_problems(record: Path) -> None:
    (record / "pgolf-audit.json").write_text(
        json.dumps(
            {
                "allow": [
                    {"rule": "PG598", "file": "train_gpt.py", "justification": "reviewed"},
                    {"rule": "PG599"},
                ]
            }
        )
    )
    ctx = build_context(record)
    from audit import suppress

    sups = suppress.collect(ctx)
    (f,) = suppress.apply(run_rules(ctx, [Flags]), sups)
    assert f.suppressed == "reviewed (pgolf-audit.json)"
    assert any("no justification" in p for _, _, p in sups.problems)
    report = audit_context(ctx)
    assert any(f.rule == "PG107" for f in report.active)


def test_suppressed_error_does_not_fail(record: Path) -> None:
    (record / "submission.json").write_text("{not json")
    (record / "pgolf-audit.json").write_text(
        json.dumps({"allow": [{"rule": "PG102", "justification": "legacy file kept as shipped"}]})
    )
    report = audit_folder(record)
    assert report.verdict == "pass"
    sup = [f for f in report.findings if f.suppressed]
    assert sup and sup[0].rule == "PG102"


def test_duplicate_logs_of_one_seed_count_once(record: Path) -> None:
    shutil.copy(record / "train_seed42.log", record / "full_seed42.txt")
    report = audit_folder(record)
    assert report.summary["n_runs"] == 3
    assert report.verdict == "pass"


def test_config_merges_readme_and_logs(record: Path) -> None:
    (record / "README.md").write_text(
        "run:\n\n```\nPPM_ENABLED=1 MATRIX_LR=0.09 torchrun --nproc_per_node=8 train_gpt.py\n```\n"
        "export TTT_STEPS=3\n"
    )
    ctx = build_context(record)
    assert ctx.config["PPM_ENABLED"] == "1"
    assert ctx.config["TTT_STEPS"] == "3"
    # The logged dump wins over the README (it is what actually ran); keys upper-cased.
    assert ctx.config["MATRIX_LR"] == "0.04"
    assert ctx.config["NUM_LAYERS"] == "9"
    assert ctx.flag("ppm_enabled") and not ctx.flag("SLOT_ENABLED")
    ctx2 = build_context(record, config={"slot_enabled": "true"})
    assert ctx2.flag("SLOT_ENABLED")


def test_probe_results_are_rendered(record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import audit.probes as probes
    from audit.probes import ProbeReport, ProbeResult

    def fake(target: Path, *, timeout_s: float = 300.0) -> ProbeReport:
        res = ProbeResult(
            condition="C2",
            name="normalization",
            status="fail",
            measured={"max_mass_error": 0.31},
            tolerance=1e-3,
            detail="mass 1.31 at position 7",
        )
        bad = Finding("PG591", "C2", Severity.ERROR, "probability mass 1.31 != 1")
        return ProbeReport(results=[res], findings=[bad])

    monkeypatch.setattr(probes, "run_probes", fake)
    report = audit_folder(record, probe=True, probe_timeout_s=5)
    assert report.verdict == "fail"
    assert report.probes and report.probes["results"][0]["measured"] == {"max_mass_error": 0.31}
    from audit.report import to_markdown

    md = to_markdown(report)
    assert "## Probes" in md and "max_mass_error=0.31" in md


def test_probe_failure_is_reported_not_raised(
    record: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit.probes as probes

    def broken(target: Path, *, timeout_s: float = 300.0):
        raise RuntimeError("sandbox unavailable")

    monkeypatch.setattr(probes, "run_probes", broken)
    report = audit_folder(record, probe=True)
    assert "sandbox unavailable" in report.probes["error"]


def test_audit_runs_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is not installed')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from pathlib import Path\n"
        "from audit.engine import audit_folder\n"
        "from audit.report import to_json, to_markdown, to_sarif\n"
        "import pgolf.commands.audit\n"
        f"r = audit_folder(Path({str(CLEAN)!r}))\n"
        "to_markdown(r); to_sarif([r]); to_json(r)\n"
        "print(r.verdict)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "pass"


def test_shipped_artifact_over_cap_is_recomputed(record: Path) -> None:
    # A synthetic folder whose logs say nothing about size: the file itself counts.
    for log in record.glob("train_seed*.log"):
        text = log.read_text().splitlines()
        log.write_text("\n".join(ln for ln in text if "bytes" not in ln) + "\n")
    sub = json.loads((record / "submission.json").read_text())
    del sub["bytes_total"]
    (record / "submission.json").write_text(json.dumps(sub))
    (record / "final_model.int8.ptz").write_bytes(b"\0" * (16_000_000 - 100))
    report = audit_folder(record)
    (f,) = [f for f in report.active if f.rule == "PG201"]
    assert f.file == "final_model.int8.ptz" and f.severity == Severity.ERROR
    assert report.verdict == "fail"


def test_claimed_times_over_cap(record: Path) -> None:
    sub = json.loads((record / "submission.json").read_text())
    sub["training_time_seconds"] = 700
    sub["eval_time_ms_by_seed"] = {"42": 640000}
    (record / "submission.json").write_text(json.dumps(sub))
    ids = {(f.rule, f.severity) for f in audit_folder(record).active}
    assert ("PG211", Severity.ERROR) in ids and ("PG212", Severity.ERROR) in ids


def test_time_caps_without_a_claim(record: Path) -> None:
    (record / "submission.json").unlink()
    for log in record.glob("train_seed*.log"):
        log.write_text(
            log.read_text().replace("train_time_total:590000ms", "train_time_total:700000ms")
        )
    sev = {f.severity for f in audit_folder(record).active if f.rule == "PG211"}
    assert sev == {Severity.ERROR}  # every run is over: no run within the cap to claim
    ok = record / "train_seed42.log"
    ok.write_text(ok.read_text().replace("train_time_total:700000ms", "train_time_total:590000ms"))
    sev = {f.severity for f in audit_folder(record).active if f.rule == "PG211"}
    assert sev == {Severity.WARNING}  # which runs make the record is not said anywhere


def test_a_broken_rule_module_is_reported(record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import audit.engine

    monkeypatch.setattr(audit.engine, "_LOAD_ERRORS", [("broken", "SyntaxError: bad")])
    report = audit_folder(record)
    (f,) = [f for f in report.findings if f.rule == "PG100"]
    assert "audit.rules.broken failed to load" in f.message and report.verdict == "review"


def test_summary_covers_the_claimed_runs(record: Path) -> None:
    log = (record / "train_seed42.log").read_text()
    (record / "ablation_seed5.log").write_text(
        log.replace("seed:42", "seed:5").replace("val_bpb:1.03000000", "val_bpb:1.20000000")
    )
    report = audit_folder(record)
    assert len(report.runs) == 4 and report.summary["n_runs"] == 3
    assert report.summary["val_bpb_mean"] == pytest.approx(1.03, abs=1e-12)
    assert [r["in_claim"] for r in report.runs if r["seed"] == 5] == [False]


class Sloppy(Rule):
    """Test rule (not registered): a string severity and a bad line."""

    id = "PG597"
    name = "sloppy"
    condition = "C2"

    def check(self, ctx):
        yield Finding("PG597", "C2", "error", 42, file="train_gpt.py", line=0)  # type: ignore[arg-type]


def test_sloppy_findings_are_normalized(record: Path) -> None:
    (f,) = run_rules(build_context(record), [Sloppy])
    assert f.severity == Severity.ERROR and f.message == "42" and f.line is None

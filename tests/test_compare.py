"""`pgolf compare`: code diff summary, rule verdict changes and the R6 significance test."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgolf.cli import main
from pgolf.compare import diff_code, function_table, rule_changes, score_delta
from pgolf.package import PackageOptions, package_run

_spec = importlib.util.spec_from_file_location(
    "package_build_run", Path(__file__).parent / "fixtures" / "package" / "build_run.py"
)
assert _spec and _spec.loader
build_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_run)

LN2 = math.log(2)
# tokens per byte 0.4 for every score below: loss = bpb * ln2 / 0.4
TPB = 0.4


def scores(values: dict[int, float]) -> dict[int, tuple[float, float]]:
    return {seed: (bpb, bpb * LN2 / TPB) for seed, bpb in values.items()}


def make_record(root: Path, name: str, values: dict[int, float], script: str | None = None) -> Path:
    run = build_run.make_run(
        root / f"run_{name}", scores=scores(values), script=script or build_run.SCRIPT
    )
    opts = PackageOptions(run_dir=run, name=name, dest=root / "records", date="2026-11-25")
    return package_run(opts).folder


NEW_SCRIPT = build_run.SCRIPT.replace(
    "def evaluate(probs):",
    "def smooth(counts):\n    return counts + 0.5\n\n\ndef evaluate(probs):",
).replace("+ 1.0", "+ 0.5")


def test_function_table_qualifies_methods_and_nested_functions() -> None:
    src = "class A:\n    def f(self):\n        def g():\n            pass\n\ndef h():\n    pass\n"
    table, error = function_table(src)
    assert error is None
    assert sorted(table) == ["A.f", "A.f.g", "h"]
    assert function_table("def broken(:\n")[1] is not None


def test_diff_code_counts_lines_and_functions() -> None:
    diff = diff_code(build_run.SCRIPT, NEW_SCRIPT)
    assert diff.functions_added == ["smooth"]
    assert diff.functions_changed == ["train"]
    assert diff.functions_removed == []
    assert diff.added == 5 and diff.removed == 1
    assert diff.hunks == 1  # the two edits are within 3 lines of context of each other
    same = diff_code(build_run.SCRIPT, build_run.SCRIPT)
    assert same.identical and not same.functions_changed


def test_rule_changes_report_only_changed_worst_severity() -> None:
    before = {"PG501": ("C2", "error", 2), "PG201": ("R1", "warning", 1)}
    after = {"PG201": ("R1", "warning", 3), "PG301": ("R4", "error", 1), "PG106": ("R7", "info", 1)}
    changes = {c.rule: c for c in rule_changes(before, after)}
    assert set(changes) == {"PG501", "PG301"}
    assert (changes["PG501"].before, changes["PG501"].after, changes["PG501"].direction) == (
        "error",
        "clean",
        "better",
    )
    assert changes["PG301"].direction == "worse"


def test_score_delta_clear_gain_passes_the_r6_test() -> None:
    new = {42: 1.2000, 314: 1.2004, 999: 1.1998}
    old = {42: 1.2200, 314: 1.2206, 999: 1.2195}
    delta = score_delta(new, old, [TPB])
    assert delta.margin_bpb == pytest.approx(1.22003333 - 1.20006667, abs=1e-7)
    assert delta.margin_nats == pytest.approx(delta.margin_bpb * LN2 / TPB)
    assert delta.passed is True and delta.p_value is not None and delta.p_value < 0.01


def test_score_delta_small_gain_fails_on_margin() -> None:
    new = {42: 1.2190, 314: 1.2192, 999: 1.2191}
    old = {42: 1.2200, 314: 1.2201, 999: 1.2199}
    delta = score_delta(new, old, [TPB])
    assert delta.margin_nats is not None and delta.margin_nats < 0.005
    assert delta.passed is False and "below the required" in (delta.note or "")


def test_score_delta_without_scores_says_why() -> None:
    delta = score_delta({}, {42: 1.0}, [TPB])
    assert delta.passed is None and "no per-seed scores in this folder" in (delta.note or "")
    assert score_delta({42: 1.0}, {42: 1.1}, []).note.startswith("no val_loss")


def test_compare_cli_on_two_packaged_records(runner: CliRunner, tmp_path: Path) -> None:
    parent = make_record(tmp_path, "Parent", {42: 2.4500, 314: 2.4506, 999: 2.4495})
    new = make_record(tmp_path, "New", {42: 2.4300, 314: 2.4304, 999: 2.4298}, NEW_SCRIPT)
    result = runner.invoke(main, ["compare", str(new), "--to", str(parent), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["code"]["functions_added"] == ["smooth"]
    assert data["score"]["new"] == {"314": 2.4304, "42": 2.43, "999": 2.4298}
    assert data["score"]["tokens_per_byte"] == pytest.approx(TPB)
    assert data["score"]["passed"] is True
    assert data["verdict"] == {"new": "pass", "parent": "pass"}
    text = runner.invoke(main, ["compare", str(new), "--to", str(parent)])
    assert "functions added (1): smooth" in text.output and "R6 significance: PASS" in text.output
    # The reverse direction is a regression: --strict turns it into exit 1.
    reverse = runner.invoke(main, ["compare", str(parent), "--to", str(new), "--strict"])
    assert reverse.exit_code == 1
    assert "R6 significance: FAIL" in reverse.output


def test_compare_bad_input(runner: CliRunner, tmp_path: Path) -> None:
    parent = make_record(tmp_path, "P", {42: 2.45, 314: 2.4506})
    missing = runner.invoke(main, ["compare", str(tmp_path / "nope"), "--to", str(parent)])
    assert missing.exit_code == 2 and "not a directory" in missing.output
    empty = tmp_path / "empty"
    empty.mkdir()
    no_code = runner.invoke(main, ["compare", str(empty), "--to", str(parent)])
    assert no_code.exit_code == 2 and "train_gpt.py: missing" in no_code.output

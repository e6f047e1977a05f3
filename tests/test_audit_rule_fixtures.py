"""Every registered rule against its fixtures and its docstring examples.

For each rule id: the illegal fixture must produce exactly the marked (line, id) pairs of the
rule's family and the legal fixture none (or exactly its expected.json). The Illegal/Legal
examples of the rule's docstring are audited too. See docs/audit-development.md.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from audit.engine import audit_folder, audit_source, family, load_errors, load_rules
from audit.explain import rule_doc

FIXTURES = Path(__file__).parent / "fixtures" / "rules"
MARKER = re.compile(r"#\s*\[(PG\d{3}(?:\s*,\s*PG\d{3})*)\]")
FOLDER_FAMILIES = {"1", "2", "8"}

# Probe rules (PG49x, PG59x, PG69x) only report measurements of `--probe`; their own tests
# run the probes on scorer fixtures.
# PG100 (internal = True) reports the auditor's own faults; tests/test_audit_core_engine.py.
RULES = [
    cls
    for cls in load_rules()
    if not getattr(cls, "probe", False) and not getattr(cls, "internal", False)
]
IDS = [cls.id for cls in RULES]


def _marked(text: str) -> set[tuple[int, str]]:
    out = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = MARKER.search(line)
        if m:
            out |= {(lineno, rid.strip()) for rid in m.group(1).split(",")}
    return out


def _family_pairs(findings, fam: str) -> set[tuple[int | None, str]]:
    return {(f.line, f.rule) for f in findings if family(f.rule) == fam}


def _audit_dir(src: Path, tmp_path: Path):
    # A fixture whose rule reads the folder's place (records/<track>/...) says where it goes.
    where = src / "where.txt"
    parent = tmp_path / where.read_text().strip() if where.exists() else tmp_path
    dest = parent / src.name
    shutil.copytree(
        src, dest, ignore=shutil.ignore_patterns("expected.json", "links.json", "where.txt")
    )
    # Symlinks that leave a folder are created here, never committed (tools walking the
    # repository would follow them).
    links = src / "links.json"
    for name, target in (json.loads(links.read_text()) if links.exists() else {}).items():
        (dest / name).symlink_to(target)
    findings = audit_folder(dest).findings
    exp_file = src / "expected.json"
    expected = json.loads(exp_file.read_text()) if exp_file.exists() else []
    return findings, {(file, line, rule) for file, line, rule in expected}


def _check(rule_id: str, kind: str, tmp_path: Path) -> None:
    fam = family(rule_id)
    py = FIXTURES / f"{rule_id}_{kind}.py"
    folder = FIXTURES / f"{rule_id}_{kind}"
    if py.exists():
        text = py.read_text(encoding="utf-8")
        got = _family_pairs(audit_source(text), fam)
        want = _marked(text)
        if kind == "legal":
            assert not want, f"{py.name}: a legal fixture has no markers"
        assert got == want, f"{py.name}: extra {sorted(got - want)}, missing {sorted(want - got)}"
        if kind == "illegal":
            assert any(r == rule_id for _, r in want), f"{py.name} marks no {rule_id} line"
    elif folder.is_dir():
        findings, want = _audit_dir(folder, tmp_path)
        got = {(f.file, f.line, f.rule) for f in findings if family(f.rule) == fam}
        want = {w for w in want if family(w[2]) == fam}
        assert got == want, (
            f"{folder.name}: extra {sorted(got - want)}, missing {sorted(want - got)}"
        )
        if kind == "illegal":
            assert any(r == rule_id for _, _, r in want), f"{folder.name} expects no {rule_id}"
    else:
        pytest.fail(
            f"rule {rule_id} has no {kind} fixture: add tests/fixtures/rules/{rule_id}_{kind}.py "
            f"(or a {rule_id}_{kind}/ folder), see docs/audit-development.md"
        )


def test_rule_modules_import() -> None:
    assert load_errors() == []
    assert IDS, "no rule registered"


@pytest.mark.parametrize("rule_id", IDS)
def test_illegal_fixture(rule_id: str, tmp_path: Path) -> None:
    _check(rule_id, "illegal", tmp_path)


@pytest.mark.parametrize("rule_id", IDS)
def test_legal_fixture(rule_id: str, tmp_path: Path) -> None:
    _check(rule_id, "legal", tmp_path)


@pytest.mark.parametrize("cls", RULES, ids=IDS)
def test_docstring(cls) -> None:
    doc = rule_doc(cls)
    assert doc.summary, f"{cls.id}: docstring has no summary line"
    assert not doc.missing_sections, f"{cls.id}: missing sections {doc.missing_sections}"
    examples = doc.examples()
    if family(cls.id) not in FOLDER_FAMILIES:
        for kind in ("illegal", "legal"):
            assert any(e.auditable and e.kind == kind for e in examples), (
                f"{cls.id}: code rules need an auditable ```python {kind} example"
            )
    for ex in examples:
        if not ex.auditable:
            continue
        ids = {f.rule for f in audit_source(ex.code)}
        if ex.kind == "illegal":
            assert cls.id in ids, f"{cls.id}: its illegal docstring example does not trigger it"
        else:
            assert cls.id not in ids, f"{cls.id}: its legal docstring example triggers it"

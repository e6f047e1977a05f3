"""Held-out misfires and misses fixed by mechanism (docs/auditor-heldout.md): regression tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.engine import audit_folder, audit_source
from audit.lenient import lenient_parse, neutralize_fstrings

RULES = Path(__file__).parent / "fixtures" / "rules"
REFINE = Path(__file__).parent / "fixtures" / "refine"

# PEP 701 (Python 3.12): the same quote nested inside a replacement field
PEP701_LINE = 'print(f"  {len(history)}: {", ".join(str(b) for b in history)}")'


def _errors(findings, prefix: str = "PG") -> set[tuple[int | None, str]]:
    return {
        (f.line, f.rule)
        for f in findings
        if f.severity.value == "error" and f.rule.startswith(prefix) and not f.suppressed
    }


def test_lenient_parse_keeps_line_numbers() -> None:
    src = "def f(xs):\n    " + PEP701_LINE.replace("history", "xs") + "\n    return xs\n"
    with pytest.raises(SyntaxError):
        ast.parse(src)
    res = lenient_parse(src)
    assert res.tree is not None and res.repaired_lines == [2]
    ret = res.tree.body[0].body[-1]
    assert isinstance(ret, ast.Return) and ret.lineno == 3


def test_multiline_fstring_keeps_span() -> None:
    src = 'x = 1\ny = f"""a\n{", ".join(z)}\n"""\nz = 2\n'
    new, touched = neutralize_fstrings(src, 3)
    assert touched == [2, 3, 4]
    assert new.count("\n") == src.count("\n")
    assert ast.parse(new).body[-1].lineno == 5


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ab{}\"'f, .\n#\\", max_size=40), st.integers(1, 4))
def test_neutralize_never_changes_line_count(text: str, line: int) -> None:
    new, _ = neutralize_fstrings(text, line)
    assert new.count("\n") == text.count("\n")


def test_pep701_file_is_audited() -> None:
    """A 3.12 f-string no longer hides an illegal byte spread in the same file (was: PG103 only)."""
    lines = (RULES / "PG503_illegal.py").read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("def ppm_mixture_bpb"))
    body = [*lines[: at + 1], "    " + PEP701_LINE, *lines[at + 1 :]]
    findings = audit_source("\n".join(body) + "\n", config={"PPM_ENABLED": "1"})
    assert any(f.rule == "PG503" and f.severity.value == "error" for f in findings)
    lenient = [f for f in findings if f.rule == "PG103"]
    assert lenient and all(f.severity.value == "info" for f in lenient)
    assert lenient[0].line == at + 2


def test_unparseable_main_script_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "train_gpt.py").write_text("def main(:\n    pass\n")
    (tmp_path / "helper.py").write_text("def g(:\n    pass\n")
    report = audit_folder(tmp_path)
    sev = {f.file: f.severity.value for f in report.findings if f.rule == "PG103"}
    assert sev == {"train_gpt.py": "error", "helper.py": "warning"}
    assert report.verdict != "pass"


def _audit_fixture(name: str, config: dict[str, str] | None = None):
    return audit_source((REFINE / name).read_text(), config=config)


def test_target_logprob_through_callable_parameter() -> None:
    """The per-token loss comes from a bound model method passed in as an argument."""
    findings = _audit_fixture("c2_callable_param.py")
    assert (16, "PG503") in _errors(findings, "PG5")


def test_byte_count_taken_at_the_call_site() -> None:
    """`helper(p, len(tok_bytes))` of the realized token: the callee's `p ** (1 / L)` spreads."""
    findings = _audit_fixture("c2_len_at_call_site.py")
    assert (14, "PG503") in _errors(findings, "PG5")


def test_switch_listed_in_readme_bullets_and_config_json(tmp_path: Path) -> None:
    """Effective configuration from README setting bullets and config.json, with its origin."""
    import shutil

    from audit.context import build_context

    folder = shutil.copytree(REFINE / "ppm_switch_in_readme", tmp_path / "rec")
    ctx = build_context(folder)
    assert ctx.config["PPM_ENABLED"] == "1"
    assert ctx.config_origin["PPM_ENABLED"] == "README settings"
    assert "TTT_ENABLED" not in ctx.config  # prose mention, not a setting
    assert ctx.config["EMA_ENABLED"] == "1" and ctx.config["SLOT_STEPS"] == "24"
    assert ctx.config_origin["SLOT_STEPS"] == "config.json"
    assert (14, "PG503") in _errors(audit_folder(folder).findings, "PG5")
    # the same folder without the README bullet: the PPM path is off, nothing to report
    (folder / "README.md").write_text("# A record\n")
    assert not _errors(audit_folder(folder).findings, "PG5")


def test_logged_python_bool_in_int_guard_is_evaluated() -> None:
    """`int(os.environ.get("X", "0"))` with a logged `X: True` is decided, not a rule crash."""
    src = (
        (RULES / "PG702_illegal.py")
        .read_text()
        .replace(
            "    print(ngram_rescore(val_tokens, model_p))\n",
            "    import os\n"
            "    if int(os.environ.get('NGRAM_TWO_PASS', '0')):\n"
            "        print(ngram_rescore(val_tokens, model_p))\n",
        )
    )
    findings = audit_source(src, config={"NGRAM_TWO_PASS": "True"})
    assert not [f for f in findings if f.message.startswith("internal error")]
    assert (39, "PG702") in _errors(findings, "PG7")
    findings = audit_source(src, config={"NGRAM_TWO_PASS": "False"})
    assert (39, "PG702") not in _errors(findings, "PG7")


def test_target_logprob_through_aliased_compiled_closure() -> None:
    """Param bound to a local alias of a closure that calls `torch.compile(inner)` (nonlocal),
    whose inner function calls the model's loss method; byte count kept in a local."""
    findings = _audit_fixture("c2_callable_alias.py")
    assert (19, "PG503") in _errors(findings, "PG5")


def test_branch_absent_from_the_logs_is_a_warning(tmp_path: Path) -> None:
    """A selection inside a branch that prints its own line, which no log contains, did not
    produce the logged score: reported as a warning; with the line in the log, an error."""
    import shutil

    folder = shutil.copytree(REFINE / "branch_not_in_logs", tmp_path / "rec")
    found = {(f.line, f.rule): f.severity.value for f in audit_folder(folder).findings}
    assert found.get((20, "PG701")) == "warning"
    log = folder / "train_seed42.log"
    log.write_text(log.read_text() + "sweep_candidate len:64 val_bpb:1.2000\n")
    found = {(f.line, f.rule): f.severity.value for f in audit_folder(folder).findings}
    assert found.get((20, "PG701")) == "error"


def test_gate_read_after_a_loop_over_the_realized_bytes() -> None:
    """`conf` last set inside `for b in bytes_of_target` decides the mixing weight: the gate
    depends on the realized token. Computed from the context before that loop: no PG502."""
    src = (REFINE / "c2_gate_after_byte_loop.py").read_text()
    assert (29, "PG502") in _errors(audit_source(src), "PG5")
    legal = src.replace(
        "        conf = 0.0\n",
        "        cd0 = counts.get(bytes(win[-order:]), {})\n"
        "        conf = max(cd0.values(), default=0) / (sum(cd0.values()) + 1)\n",
    ).replace("            conf = max(cd.values(), default=0) / tot\n", "")
    assert not any(rule == "PG502" for _, rule in _errors(audit_source(legal), "PG5"))

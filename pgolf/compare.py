"""Differential audit of a record folder against its parent: code, rule verdicts, score (R6).

What a reviewer wants to know about a new claim built on an earlier one: what changed in
train_gpt.py (unified diff stats, and which functions were added, removed or changed, by AST),
which audit rules change verdict between the two folders, and whether the score gain passes the
R6 test (one-sided Welch t-test of the per-seed scores, margin >= 0.005 nats, p < 0.01).
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgolf.errors import InputError

_SEED_RE = re.compile(r"seed[_\-]?(\d+)", re.IGNORECASE)
# Info findings are notes, not verdicts: a rule going from clean to info changes nothing.
_RANK = {"clean": 0, "info": 0, "warning": 1, "error": 2}


@dataclass
class CodeDiff:
    old_lines: int
    new_lines: int
    added: int
    removed: int
    hunks: int
    functions_added: list[str] = field(default_factory=list)
    functions_removed: list[str] = field(default_factory=list)
    functions_changed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.added == 0 and self.removed == 0


@dataclass(frozen=True)
class RuleChange:
    rule: str
    condition: str
    before: str  # clean | info | warning | error (worst unsuppressed severity)
    after: str
    findings_before: int
    findings_after: int

    @property
    def direction(self) -> str:
        a, b = _RANK[self.before], _RANK[self.after]
        return "worse" if b > a else "better" if b < a else "same"


@dataclass
class ScoreDelta:
    new: dict[int, float]
    parent: dict[int, float]
    tokens_per_byte: float | None
    mean_new: float | None
    mean_parent: float | None
    margin_bpb: float | None = None
    margin_nats: float | None = None
    p_value: float | None = None
    passed: bool | None = None
    seeds_needed: int | None = None
    alpha: float = 0.01
    min_delta_nats: float = 0.005
    note: str | None = None


@dataclass
class CompareReport:
    folder: Path
    parent: Path
    code: CodeDiff
    verdict_new: str | None
    verdict_parent: str | None
    rules: list[RuleChange]
    score: ScoreDelta


# ---------------------------------------------------------------------------- code


def _source(folder: Path) -> str:
    path = folder / "train_gpt.py"
    if not path.is_file():
        raise InputError(f"{path}: missing; nothing to compare")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        from audit.unpack import unpack_source

        return unpack_source(text).text
    except ImportError:
        return text


def function_table(text: str) -> tuple[dict[str, str], str | None]:
    """{qualified name: AST dump} of every function and method; the syntax error if any."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        return {}, f"line {exc.lineno}: {exc.msg}"
    table: dict[str, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                table[name] = ast.dump(child, include_attributes=False)
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return table, None


def diff_code(old: str, new: str) -> CodeDiff:
    """Unified diff statistics and the function-level changes between two sources."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    added = removed = hunks = 0
    for line in difflib.unified_diff(old_lines, new_lines, lineterm="", n=3):
        if line.startswith("@@"):
            hunks += 1
        elif line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    before, err_old = function_table(old)
    after, err_new = function_table(new)
    problems = [f"parent train_gpt.py: {err_old}"] if err_old else []
    problems += [f"train_gpt.py: {err_new}"] if err_new else []
    return CodeDiff(
        old_lines=len(old_lines),
        new_lines=len(new_lines),
        added=added,
        removed=removed,
        hunks=hunks,
        functions_added=sorted(set(after) - set(before)),
        functions_removed=sorted(set(before) - set(after)),
        functions_changed=sorted(k for k in set(after) & set(before) if after[k] != before[k]),
        problems=problems,
    )


# ---------------------------------------------------------------------------- rules


def _audit(folder: Path) -> tuple[str | None, dict[str, tuple[str, str, int]]]:
    """(verdict, {rule: (condition, worst severity, count)}) of a folder's audit."""
    try:
        from audit.engine import audit_folder
    except ImportError:
        return None, {}
    report = audit_folder(folder)
    table: dict[str, tuple[str, str, int]] = {}
    for f in report.findings:
        if getattr(f, "suppressed", None):
            continue
        sev = str(f.severity)
        cond, worst, n = table.get(f.rule, (f.condition, "clean", 0))
        if _RANK[sev] > _RANK[worst]:
            worst = sev
        table[f.rule] = (cond, worst, n + 1)
    return str(report.verdict), table


def rule_changes(
    before: dict[str, tuple[str, str, int]], after: dict[str, tuple[str, str, int]]
) -> list[RuleChange]:
    """Rules whose worst severity differs between the parent (before) and the new folder."""
    out = []
    for rule in sorted(set(before) | set(after)):
        cond_b, sev_b, n_b = before.get(rule, ("", "clean", 0))
        cond_a, sev_a, n_a = after.get(rule, ("", "clean", 0))
        if _RANK[sev_a] != _RANK[sev_b]:
            out.append(RuleChange(rule, cond_a or cond_b, sev_b, sev_a, n_b, n_a))
    return out


# ---------------------------------------------------------------------------- score


def per_seed_scores(folder: Path) -> tuple[dict[int, float], list[float]]:
    """({seed: val_bpb}, tokens-per-byte estimates) from the logs, else submission.json."""
    from pgolf.logs import parse_log
    from pgolf.verify import find_logs, seed_results

    scores: dict[int, float] = {}
    tpb: list[float] = []
    for index, path in enumerate(find_logs(folder)):
        log = parse_log(path)
        if log.val_bpb is None or not math.isfinite(log.val_bpb):
            continue
        seed = log.seed
        if seed is None:
            match = _SEED_RE.search(path.name)
            seed = int(match.group(1)) if match else -(index + 1)
        scores.setdefault(int(seed), float(log.val_bpb))
        if log.val_loss and log.val_loss > 0:
            # bpb = loss / ln2 * tokens / bytes
            tpb.append(log.val_bpb * math.log(2) / log.val_loss)
    if scores:
        return scores, tpb
    sub = folder / "submission.json"
    if sub.is_file():
        from pgolf.submission import read_submission

        data, _problems = read_submission(sub)
        if isinstance(data, dict):
            for seed, entry in seed_results(data).items():
                value = entry.get("val_bpb")
                if isinstance(value, int | float) and not isinstance(value, bool):
                    scores[seed] = float(value)
                    loss = entry.get("val_loss")
                    if isinstance(loss, int | float) and loss > 0:
                        tpb.append(float(value) * math.log(2) / float(loss))
    return scores, tpb


def score_delta(
    new: dict[int, float],
    parent: dict[int, float],
    tpb: list[float],
    *,
    alpha: float = 0.01,
    min_delta_nats: float = 0.005,
) -> ScoreDelta:
    from pgolf.stats import mean_std, significance

    mean_new = mean_std(list(new.values()))[0] if new else None
    mean_parent = mean_std(list(parent.values()))[0] if parent else None
    tokens_per_byte = sum(tpb) / len(tpb) if tpb else None
    delta = ScoreDelta(
        new,
        parent,
        tokens_per_byte,
        mean_new,
        mean_parent,
        alpha=alpha,
        min_delta_nats=min_delta_nats,
    )
    if mean_new is None or mean_parent is None:
        delta.note = "no per-seed scores in " + (
            "this folder" if mean_new is None else "the parent"
        )
        return delta
    delta.margin_bpb = mean_parent - mean_new
    if tokens_per_byte is None:
        delta.note = (
            "no val_loss next to val_bpb: the margin in nats and the test need tokens per byte"
        )
        return delta
    result = significance(
        list(new.values()),
        list(parent.values()),
        tokens_per_byte,
        alpha=alpha,
        min_delta_nats=min_delta_nats,
    )
    delta.margin_nats = result.margin_nats
    delta.margin_bpb = result.margin_bpb
    delta.p_value = result.p_value if math.isfinite(result.p_value) else None
    delta.passed = bool(result.passed)
    delta.seeds_needed = result.seeds_needed
    delta.note = result.reason
    return delta


# ---------------------------------------------------------------------------- top level


def compare_folders(
    folder: Path,
    parent: Path,
    *,
    alpha: float = 0.01,
    min_delta_nats: float = 0.005,
    run_audit: bool = True,
) -> CompareReport:
    """Everything `pgolf compare` shows, computed from the two folders' files."""
    folder, parent = Path(folder), Path(parent)
    for path in (folder, parent):
        if not path.is_dir():
            raise InputError(f"{path}: not a directory")
    code = diff_code(_source(parent), _source(folder))
    if run_audit:
        verdict_parent, before = _audit(parent)
        verdict_new, after = _audit(folder)
    else:
        verdict_parent = verdict_new = None
        before, after = {}, {}
    new_scores, tpb_new = per_seed_scores(folder)
    parent_scores, tpb_parent = per_seed_scores(parent)
    # Tokens per byte belong to the tokenizer and validation split; prefer the new folder's.
    score = score_delta(
        new_scores,
        parent_scores,
        tpb_new or tpb_parent,
        alpha=alpha,
        min_delta_nats=min_delta_nats,
    )
    return CompareReport(
        folder, parent, code, verdict_new, verdict_parent, rule_changes(before, after), score
    )


def to_json(report: CompareReport) -> dict[str, Any]:
    s = report.score
    return {
        "folder": str(report.folder),
        "parent": str(report.parent),
        "code": {
            "old_lines": report.code.old_lines,
            "new_lines": report.code.new_lines,
            "added": report.code.added,
            "removed": report.code.removed,
            "hunks": report.code.hunks,
            "functions_added": report.code.functions_added,
            "functions_removed": report.code.functions_removed,
            "functions_changed": report.code.functions_changed,
            "problems": report.code.problems,
        },
        "verdict": {"new": report.verdict_new, "parent": report.verdict_parent},
        "rules": [
            {"rule": r.rule, "condition": r.condition, "before": r.before, "after": r.after}
            for r in report.rules
        ],
        "score": {
            "new": {str(k): v for k, v in sorted(s.new.items())},
            "parent": {str(k): v for k, v in sorted(s.parent.items())},
            "mean_new": s.mean_new,
            "mean_parent": s.mean_parent,
            "tokens_per_byte": s.tokens_per_byte,
            "margin_bpb": s.margin_bpb,
            "margin_nats": s.margin_nats,
            "p_value": s.p_value,
            "alpha": s.alpha,
            "min_delta_nats": s.min_delta_nats,
            "passed": s.passed,
            "seeds_needed": s.seeds_needed,
            "note": s.note,
        },
    }

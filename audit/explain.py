"""Rule documentation: parse rule docstrings, print `--explain`, generate docs/rules/*.md.

A rule's class docstring is its documentation: a summary line, then `## ` sections
What it does, Why is this bad?, Illegal example, Legal example, References.

Regenerate the docs with `python -m audit.explain --write-docs docs/rules`.
"""

from __future__ import annotations

import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from audit.model import Rule

SECTIONS = ("What it does", "Why is this bad?", "Illegal example", "Legal example", "References")
NOT_AUDITABLE = "# pgolf: not-auditable"
_FENCE = re.compile(r"^```(\w*)\s*\n(.*?)^```\s*$", re.S | re.M)


@dataclass(frozen=True)
class Example:
    kind: str  # "illegal" | "legal"
    lang: str
    code: str

    @property
    def auditable(self) -> bool:
        return self.lang == "python" and not self.code.lstrip().startswith(NOT_AUDITABLE)


@dataclass(frozen=True)
class RuleDoc:
    id: str
    name: str
    condition: str
    severity: str
    summary: str
    sections: dict[str, str]
    old_ids: tuple[str, ...]

    @property
    def missing_sections(self) -> list[str]:
        return [s for s in SECTIONS if not self.sections.get(s, "").strip()]

    def examples(self) -> list[Example]:
        out = []
        for kind, title in (("illegal", "Illegal example"), ("legal", "Legal example")):
            for m in _FENCE.finditer(self.sections.get(title, "")):
                out.append(Example(kind, m.group(1).lower(), m.group(2)))
        return out


def rule_doc(cls: type[Rule]) -> RuleDoc:
    doc = inspect.cleandoc(cls.__doc__ or "")
    head, *rest = re.split(r"^## ", doc, flags=re.M) if doc else [""]
    sections: dict[str, str] = {}
    for chunk in rest:
        title, _, body = chunk.partition("\n")
        sections[title.strip()] = body.strip("\n")
    summary = head.strip().splitlines()[0].strip() if head.strip() else ""
    return RuleDoc(
        id=cls.id,
        name=cls.name,
        condition=cls.condition,
        severity=cls.severity.value,
        summary=summary,
        sections=sections,
        old_ids=tuple(cls.old_ids),
    )


def to_markdown(doc: RuleDoc) -> str:
    lines = [
        f"# {doc.id}: {doc.name}",
        "",
        f"**Condition:** {doc.condition} · **Severity:** {doc.severity}"
        + (f" · **Old ids:** {', '.join(doc.old_ids)}" if doc.old_ids else ""),
        "",
        doc.summary,
        "",
    ]
    for title in SECTIONS:
        body = doc.sections.get(title, "").strip()
        lines += [f"## {title}", "", body or "_(not documented)_", ""]
    for title, body in doc.sections.items():
        if title not in SECTIONS:
            lines += [f"## {title}", "", body.strip(), ""]
    lines.append(f"Explain in a terminal: `pgolf audit --explain {doc.id}`.")
    return "\n".join(lines).rstrip() + "\n"


def index_markdown(docs: list[RuleDoc]) -> str:
    lines = [
        "# pgolf audit rules",
        "",
        "Generated from the rule docstrings by `python -m audit.explain --write-docs docs/rules`;",
        "do not edit by hand. See [../audit.md](../audit.md) for how to run the audit.",
        "",
        "| id | name | condition | severity | summary |",
        "|---|---|---|---|---|",
    ]
    for d in docs:
        summary = d.summary.replace("|", "\\|")
        lines.append(
            f"| [{d.id}]({d.id}.md) | {d.name} | {d.condition} | {d.severity} | {summary} |"
        )
    return "\n".join(lines) + "\n"


def all_docs() -> list[RuleDoc]:
    from audit.engine import load_rules

    return [rule_doc(cls) for cls in load_rules()]


def write_docs(out_dir: Path) -> list[Path]:
    """Write docs/rules/PGxxx.md for every rule and index.md; remove pages of unknown ids."""
    out_dir.mkdir(parents=True, exist_ok=True)
    docs = all_docs()
    written = []
    for d in docs:
        path = out_dir / f"{d.id}.md"
        path.write_text(to_markdown(d), encoding="utf-8")
        written.append(path)
    known = {f"{d.id}.md" for d in docs} | {"index.md"}
    for stale in out_dir.glob("PG*.md"):
        if stale.name not in known:
            stale.unlink()
    index = out_dir / "index.md"
    index.write_text(index_markdown(docs), encoding="utf-8")
    written.append(index)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--write-docs":
        for p in write_docs(Path(argv[1])):
            print(p)
        return 0
    print("usage: python -m audit.explain --write-docs DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

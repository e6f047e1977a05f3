"""`pgolf audit`: static legality audit of record folders (thin CLI over audit.engine)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from audit.model import Severity
from pgolf.errors import InputError

FAIL_ON = {"error": 2, "warning": 1, "info": 0}
STYLE = {"fail": "bold red", "review": "bold yellow", "pass": "bold green"}
SEV_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}


def _split(values: Sequence[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _explain(rule_id: str) -> str:
    from audit.engine import load_rules
    from audit.explain import rule_doc, to_markdown
    from audit.model import REGISTRY

    load_rules()
    cls = REGISTRY.get(rule_id)
    if cls is None:
        raise InputError(f"--explain: unknown rule id {rule_id!r} (see `pgolf audit --list-rules`)")
    return to_markdown(rule_doc(cls))


def _list_rules(console: Console) -> None:
    from audit.explain import all_docs

    table = Table(title="pgolf audit rules", show_lines=False)
    for col in ("id", "name", "condition", "severity", "summary"):
        table.add_column(col, overflow="fold")
    for d in all_docs():
        table.add_row(d.id, d.name, d.condition, d.severity, escape(d.summary))
    console.print(table)


def _print_text(console: Console, report: Any) -> None:
    verdict = report.verdict
    console.print(f"[bold]{escape(report.folder)}[/bold]: [{STYLE[verdict]}]{verdict.upper()}[/]")
    for s in report.self_audits:
        if s.claims_legal and verdict == "fail":
            said = repr(s.conclusion) if s.conclusion else "that the submission is legal"
            console.print(
                f"  [bold red]the folder's own audit ({escape(s.file)}) concludes "
                f"{escape(said)}: that conclusion does not hold[/]"
            )
    probes = report.probes or {}
    if probes.get("error"):
        console.print(f"  [yellow]probes could not run: {escape(str(probes['error']))}[/]")
    for p in probes.get("results") or []:
        if not isinstance(p, dict):
            p = {"detail": str(p)}
        raw = p.get("measured") or {}
        measured = (
            ", ".join(f"{k}={v}" for k, v in raw.items()) if isinstance(raw, dict) else str(raw)
        )
        console.print(
            f"  probe {escape(str(p.get('condition')))} {escape(str(p.get('name')))}: "
            f"{escape(str(p.get('status')))} {escape(measured)}"
        )
    for f in report.findings:
        loc = f"{f.file}:{f.line}" if f.file and f.line else (f.file or "")
        sup = f" [dim](suppressed: {escape(f.suppressed)})[/]" if f.suppressed else ""
        style = "dim" if f.suppressed else SEV_STYLE[f.severity.value]
        console.print(
            f"  [{style}]{f.rule} {f.severity.value:<7}[/] {f.condition:<3} "
            f"{escape(loc)}{' ' if loc else ''}{escape(f.message)}{sup}"
        )
    console.print()


def _summary_table(reports: list[Any]) -> Table:
    table = Table(title="pgolf audit summary", box=box.SIMPLE_HEAD)
    table.add_column("folder", overflow="fold", min_width=10)
    for col in ("verdict", "err/warn", "runs", "mean bpb", "std", "claimed", "bytes"):
        table.add_column(col, justify="right", no_wrap=True)

    def fmt(x: Any, d: int = 8) -> str:
        if x is None:
            return "-"
        return f"{x:.{d}f}" if isinstance(x, float) else f"{x:,}"

    for r in reports:
        s = r.summary
        table.add_row(
            escape(Path(r.folder).name or r.folder),
            f"[{STYLE[r.verdict]}]{r.verdict}[/]",
            f"{r.count(Severity.ERROR)}/{r.count(Severity.WARNING)}",
            str(s["n_runs"]),
            fmt(s["val_bpb_mean"], 6),
            fmt(s["val_bpb_std"], 6),
            fmt(s["claimed_val_bpb"], 6),
            "-" if s["bytes_max"] is None else str(s["bytes_max"]),
        )
    return table


def _render(fmt: str, reports: list[Any]) -> str:
    from audit.report import to_json, to_markdown, to_sarif

    if fmt == "json":
        data: Any = [to_json(r) for r in reports]
        return json.dumps(data[0] if len(data) == 1 else data, indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(to_sarif(reports), indent=2) + "\n"
    if fmt == "md":
        return "\n".join(to_markdown(r) for r in reports)
    console = Console(record=True, width=120, file=io.StringIO())
    for r in reports:
        _print_text(console, r)
    console.print(_summary_table(reports))
    return console.export_text()


def _md_target(dest: Path, folder: str, many: bool) -> Path:
    if dest.suffix.lower() == ".md" and not many:
        return dest
    return dest / (Path(folder).name or "folder") / "LEGALITY_AUDIT.md"


def _write_in_place(report: Any, force: bool) -> Path:
    from audit.report import to_markdown
    from audit.report.markdown import MARKER

    target = Path(report.folder) / "LEGALITY_AUDIT.md"
    if target.exists() and not force:
        head = target.read_text(encoding="utf-8", errors="replace")[:500]
        if MARKER not in head:
            raise InputError(
                f"{target}: the folder's own LEGALITY_AUDIT.md is an input of the audit and is "
                "not overwritten (use --write-md PATH, or --force)"
            )
    target.write_text(to_markdown(report), encoding="utf-8")
    return target


@click.command("audit")
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "md", "json", "sarif"]),
    default="text",
    show_default=True,
    help="Report format on stdout (or in --output).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    show_default=True,
    help="Write the report to this file instead of stdout.",
)
@click.option(
    "--write-md",
    type=click.Path(path_type=Path),
    default=None,
    show_default=True,
    help="Also write LEGALITY_AUDIT.md: to this .md file (one folder) or under this directory "
    "as <dir>/<folder name>/LEGALITY_AUDIT.md.",
)
@click.option(
    "--in-place",
    is_flag=True,
    default=False,
    show_default=True,
    help="Also write LEGALITY_AUDIT.md into each audited folder (never over a hand-written one "
    "unless --force).",
)
@click.option(
    "--force",
    is_flag=True,
    default=False,
    show_default=True,
    help="With --in-place: overwrite a LEGALITY_AUDIT.md that pgolf did not write.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "info"]),
    default="error",
    show_default=True,
    help="Exit 1 if any unsuppressed finding is at or above this severity.",
)
@click.option(
    "--select",
    multiple=True,
    default=(),
    show_default=True,
    help="Only run rules whose id starts with these prefixes (comma-separated, repeatable), "
    "e.g. PG5,PG201.",
)
@click.option(
    "--ignore",
    multiple=True,
    default=(),
    show_default=True,
    help="Skip rules whose id starts with these prefixes (comma-separated, repeatable).",
)
@click.option(
    "--probe",
    is_flag=True,
    default=False,
    show_default=True,
    help="Also run the dynamic C1-C3 probes (executes the scorer in a sandboxed subprocess).",
)
@click.option(
    "--probe-timeout",
    type=click.FloatRange(min=1.0),
    default=300.0,
    show_default=True,
    help="Time limit of the probes per folder, in seconds.",
)
@click.option(
    "--explain",
    "explain_id",
    metavar="PGxxx",
    default=None,
    show_default=True,
    help="Print the documentation of one rule and exit.",
)
@click.option(
    "--list-rules",
    is_flag=True,
    default=False,
    show_default=True,
    help="List every rule (id, name, condition, severity) and exit.",
)
def command(
    folders: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    write_md: Path | None,
    in_place: bool,
    force: bool,
    fail_on: str,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    probe: bool,
    probe_timeout: float,
    explain_id: str | None,
    list_rules: bool,
) -> None:
    """Audit record folders for legality, statically, with evidence.

    Reads each folder (code unpacked, logs, submission.json, README run command) without
    executing the submitted code, runs every rule (PGxxx, see --list-rules) and reports
    per condition of the challenge rules. Exit code: 0 if nothing at or above --fail-on,
    1 if findings, 2 if a folder could not be audited.

    \b
    Example:
        pgolf audit records/track_10min_16mb/* --format md --write-md audits/
    """
    from audit.engine import audit_folder

    out = Console()
    if explain_id:
        click.echo(_explain(explain_id), nl=False)
        return
    if list_rules:
        _list_rules(out)
        return
    if not folders:
        raise InputError("no folder given (usage: pgolf audit FOLDER...)")

    _check_selection(_split(select), _split(ignore))
    reports: list[Any] = []
    failed: list[str] = []
    err = Console(stderr=True)
    from rich.progress import Progress

    with Progress(
        console=err, transient=True, disable=len(folders) < 2 or not err.is_terminal
    ) as bar:
        task = bar.add_task("auditing", total=len(folders))
        for folder in folders:
            try:
                reports.append(
                    audit_folder(
                        folder,
                        probe=probe,
                        probe_timeout_s=probe_timeout,
                        select=_split(select) or None,
                        ignore=_split(ignore) or None,
                    )
                )
            except click.ClickException as exc:
                if len(folders) == 1:
                    raise
                failed.append(exc.format_message())
            except Exception as exc:  # a bug must still end in one line, never a traceback
                msg = f"{folder}: internal error: {type(exc).__name__}: {exc}"
                if len(folders) == 1:
                    raise InputError(msg) from None
                failed.append(msg)
            bar.advance(task)

    for msg in failed:
        click.echo(f"Error: {msg}", err=True)
    if reports:
        text = _render(fmt, reports)
        if output is not None:
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise InputError(f"{output}: cannot write ({exc.strerror or exc})") from None
        elif fmt == "text":
            for r in reports:
                _print_text(out, r)
            out.print(_summary_table(reports))
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        _write_markdown(reports, write_md, in_place, force)

    ctx = click.get_current_context()
    if failed:
        ctx.exit(2)
    threshold = FAIL_ON[fail_on]
    if any(f.severity.rank >= threshold for r in reports for f in r.active):
        ctx.exit(1)


def _check_selection(select: list[str], ignore: list[str]) -> None:
    """A --select/--ignore prefix that names no rule is a typo: say so instead of passing."""
    from audit.engine import load_rules, select_rules

    rules = load_rules()
    for option, prefixes in (("--select", select), ("--ignore", ignore)):
        for p in prefixes:
            if not select_rules(rules, [p]):
                raise InputError(f"{option} {p}: no rule id starts with it (see --list-rules)")


def _write_markdown(reports: list[Any], write_md: Path | None, in_place: bool, force: bool) -> None:
    from audit.report import to_markdown

    used: set[Path] = set()
    for r in reports:
        if write_md is not None:
            target = _md_target(write_md, r.folder, len(reports) > 1)
            n = 1
            while target in used:  # two folders with the same name: keep both reports
                n += 1
                target = target.parent.with_name(f"{target.parent.name}-{n}") / target.name
            used.add(target)
            if target.resolve() == (Path(r.folder) / "LEGALITY_AUDIT.md").resolve():
                _write_in_place(r, force)
                continue
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(to_markdown(r), encoding="utf-8")
            except OSError as exc:
                raise InputError(f"{target}: cannot write ({exc.strerror or exc})") from None
        if in_place:
            _write_in_place(r, force)

"""`pgolf compare`: the differential audit of a record folder against its parent."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pgolf.compare import CompareReport, compare_folders, to_json

MAX_NAMES = 20


def _f(value: float | None, digits: int = 6) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(report: CompareReport, console: Console) -> None:
    code = report.code
    console.print(f"[bold]pgolf compare[/bold] {report.folder}  vs parent  {report.parent}")
    if code.identical:
        console.print("code: train_gpt.py identical (after unpacking)")
    else:
        console.print(
            f"code: {code.old_lines} -> {code.new_lines} lines, +{code.added} -{code.removed} "
            f"in {code.hunks} hunks"
        )
    for label, names in (
        ("added", code.functions_added),
        ("removed", code.functions_removed),
        ("changed", code.functions_changed),
    ):
        if names:
            shown = ", ".join(names[:MAX_NAMES])
            more = f" ... and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
            console.print(f"  functions {label} ({len(names)}): {shown}{more}")
    for problem in code.problems:
        console.print(f"  [yellow]{problem}[/yellow]")
    console.print(f"audit verdict: parent {report.verdict_parent}  ->  new {report.verdict_new}")
    if report.rules:
        table = Table(title="rules that change verdict")
        for column in ("rule", "condition", "parent", "new", "change"):
            table.add_column(column)
        for r in report.rules:
            style = "red" if r.direction == "worse" else "green"
            table.add_row(
                r.rule, r.condition, r.before, r.after, f"[{style}]{r.direction}[/{style}]"
            )
        console.print(table)
    else:
        console.print("no rule changes verdict")
    s = report.score
    table = Table(title="score (R6)")
    for column in ("", "seeds", "mean val_bpb"):
        table.add_column(column)
    table.add_row("parent", " ".join(map(str, sorted(s.parent))), _f(s.mean_parent, 8))
    table.add_row("new", " ".join(map(str, sorted(s.new))), _f(s.mean_new, 8))
    console.print(table)
    console.print(
        f"margin {_f(s.margin_bpb)} bpb = {_f(s.margin_nats)} nats "
        f"(required {s.min_delta_nats:g} nats), one-sided Welch p = "
        f"{'-' if s.p_value is None else f'{s.p_value:.3g}'} (alpha {s.alpha:g})"
    )
    if s.seeds_needed:
        console.print(f"seeds needed at the observed std: {s.seeds_needed}")
    verdict = "-" if s.passed is None else ("PASS" if s.passed else "FAIL")
    console.print(f"R6 significance: [bold]{verdict}[/bold]" + (f" ({s.note})" if s.note else ""))


@click.command("compare")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--to",
    "parent",
    required=True,
    type=click.Path(path_type=Path),
    help="The parent record folder the new one claims to beat.",
    show_default=True,
)
@click.option("--alpha", type=float, default=0.01, show_default=True, help="Significance level.")
@click.option(
    "--min-delta-nats",
    type=float,
    default=0.005,
    show_default=True,
    help="Required improvement per token in nats (R6).",
)
@click.option(
    "--no-audit", is_flag=True, default=False, show_default=True, help="Skip the two audits."
)
@click.option(
    "--strict",
    is_flag=True,
    default=False,
    show_default=True,
    help="Exit 1 when the R6 test fails or a rule gets worse.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.pass_context
def command(
    ctx: click.Context,
    folder: Path,
    parent: Path,
    alpha: float,
    min_delta_nats: float,
    no_audit: bool,
    strict: bool,
    fmt: str,
) -> None:
    """Compare a record folder with its parent: code, rule verdicts and score (R6).

    Shows the unified diff statistics of train_gpt.py and which functions were added,
    removed or changed (by AST, after unpacking packed code), which audit rules change
    verdict between the two folders, and the score delta with the R6 test: margin in nats
    and bpb, one-sided Welch p-value over the per-seed scores, pass/fail at --alpha and
    --min-delta-nats.

    \b
    Example:
      pgolf compare records/track_10min_16mb/2026-02-01_New --to records/track_10min_16mb/2026-01-01_Old
    """
    with Console(stderr=True).status(f"comparing {folder} with {parent}", spinner="dots"):
        report = compare_folders(
            folder, parent, alpha=alpha, min_delta_nats=min_delta_nats, run_audit=not no_audit
        )
    if fmt == "json":
        click.echo(json.dumps(to_json(report), indent=2))
    else:
        render(report, Console(width=140))
    worse = any(r.direction == "worse" for r in report.rules)
    ctx.exit(1 if strict and (worse or not report.score.passed) else 0)

"""`pgolf verify`: recompute a record folder's facts and report every difference."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pgolf.verify import VerifyReport, verify_folder

_STYLE = {"ok": "green", "diff": "bold red", "warn": "yellow", "skip": "dim"}


def render(report: VerifyReport, console: Console) -> None:
    table = Table(title=f"pgolf verify {report.folder}", show_lines=False)
    for column in ("area", "check", "status", "expected", "found", "file"):
        table.add_column(column, overflow="fold")
    for c in report.checks:
        style = _STYLE.get(c.status, "")
        table.add_row(
            c.area, c.item, f"[{style}]{c.status}[/{style}]", c.expected, c.found, c.file or ""
        )
    console.print(table)
    for c in report.skipped:
        console.print(f"[dim]not checked: {c.item}: {c.found}[/dim]")
    n = len(report.differences)
    if n:
        names = sorted({c.file for c in report.differences if c.file})
        where = f" ({', '.join(names)})" if names else ""
        console.print(f"[bold red]FAILED: {n} difference{'s' if n != 1 else ''}{where}[/bold red]")
    else:
        console.print("[bold green]CLEAN: every recomputed fact matches[/bold green]")


@click.command("verify")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Shard directory whose fingerprint must match the manifest's.",
    show_default=True,
)
@click.option(
    "--no-audit", is_flag=True, default=False, show_default=True, help="Skip re-running the audit."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.pass_context
def command(
    ctx: click.Context, folder: Path, data_dir: Path | None, no_audit: bool, fmt: str
) -> None:
    """Recompute hashes, sizes, caps and statistics of a record folder; report differences.

    Every file is hashed against MANIFEST.json, the scores are re-read from the logs and
    compared with submission.json and the manifest, the caps (R1-R3) are recomputed from the
    files and logs, and the audit is run again. Folders without a manifest (upstream ones)
    get every check that needs none; the output says what could not be checked. Exit 0 when
    clean, 1 on any difference, 2 when the folder cannot be read.

    \b
    Example:
      pgolf verify records/track_10min_16mb/2026-01-01_MyIdea
    """
    with Console(stderr=True).status(f"verifying {folder}", spinner="dots"):
        report = verify_folder(folder, data_dir=data_dir, run_audit=not no_audit)
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        render(report, Console(width=160))
    ctx.exit(0 if report.clean else 1)

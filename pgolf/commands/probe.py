"""`pgolf probe`: run the dynamic C1/C2/C3 probes on one script or record folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from audit.model import Severity
from audit.probes import ProbeReport, run_probes
from audit.probes.c2 import DEFAULT_CONTEXT, DEFAULT_POSITIONS
from audit.probes.run import DEFAULT_SLICE
from pgolf.errors import InputError
from pgolf.runner import parse_env

STATUS_STYLE = {"pass": "green", "fail": "bold red", "error": "yellow", "skipped": "dim"}


def _measured_summary(measured: dict[str, Any]) -> str:
    parts = []
    for key, value in measured.items():
        if isinstance(value, bool) or value is None or isinstance(value, list | dict):
            continue
        parts.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    return "\n".join(parts)


def _render_text(console: Console, report: ProbeReport, target: Path) -> None:
    info = report.info
    console.print(f"[bold]pgolf probe[/bold] {info.get('script', target)}")
    if "vocab_size" in info:
        console.print(
            f"scorer: vocab {info['vocab_size']}, level {info.get('level')}, "
            f"score_batch {'yes' if info.get('batched') else 'no'}; "
            f"artifact {info.get('artifact') or 'none (fresh model)'}"
        )
    if "slice" in info:
        console.print(f"slice: {info['slice']['source']}")
    for note in info.get("notes", []):
        console.print(f"note: {note}")
    for attempt in info.get("blocked", []):
        console.print(f"[yellow]blocked:[/yellow] {attempt}")
    details = {(r.status, r.detail) for r in report.results}
    if len(details) == 1 and report.status in ("skipped", "error"):
        # Nothing was measured: one line says why, instead of three identical table rows.
        status, detail = details.pop()
        console.print(f"{status}: {detail}", soft_wrap=True)
        for finding in report.findings:
            console.print(f"{finding.rule} {finding.severity.value}: {finding.message}")
        console.print(f"probe verdict: {report.status}")
        return
    table = Table(show_lines=True)
    for column in ("Condition", "Probe", "Status", "Measured", "Tolerance", "Detail"):
        table.add_column(column, overflow="fold")
    for result in report.results:
        style = STATUS_STYLE.get(result.status, "")
        table.add_row(
            result.condition,
            result.name,
            f"[{style}]{result.status}[/{style}]",
            _measured_summary(result.measured),
            result.tolerance,
            result.detail,
        )
    console.print(table)
    for finding in report.findings:
        console.print(f"{finding.rule} {finding.severity.value}: {finding.message}")
    console.print(f"probe verdict: {report.status}")


@click.command("probe")
@click.argument("script", type=click.Path(path_type=Path))
@click.option(
    "--artifact",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    show_default="a *.ptz in the folder, else a fresh model",
    help="Artifact passed to pgolf_scorer.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    show_default="the embedded default dataset, else pseudo-random tokens",
    help="Shard directory whose fineweb_val_*.bin gives the probe slice.",
)
@click.option(
    "--positions",
    type=click.IntRange(1, 4096),
    default=DEFAULT_POSITIONS,
    show_default=True,
    help="C2: number of positions where every symbol is substituted.",
)
@click.option(
    "--context",
    type=click.IntRange(1, 1 << 16),
    default=DEFAULT_CONTEXT,
    show_default=True,
    help="C2: tokens of real context before each substituted position.",
)
@click.option(
    "--slice",
    "slice_len",
    type=click.IntRange(16, 1 << 20),
    default=DEFAULT_SLICE,
    show_default=True,
    help="Length of the validation slice scored by C1 and C3.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(1, None),
    default=300.0,
    show_default=True,
    help="Wall-clock limit in seconds for the whole sandboxed run.",
)
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    show_default="none; for a folder, its logged hyperparameters",
    help="Environment variable for the script (repeatable), e.g. --env PPM_ENABLED=1. "
    "For a folder the default is the logged hyperparameter dump.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "info"]),
    default="error",
    show_default=True,
    help="Exit 1 when a finding has at least this severity.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
def command(
    script: Path,
    artifact: Path | None,
    data_dir: Path | None,
    positions: int,
    context: int,
    slice_len: int,
    timeout: float,
    env_pairs: tuple[str, ...],
    fail_on: str,
    fmt: str,
) -> None:
    """Probe a scorer for C1 (causal), C2 (normalized) and C3 (score before update).

    Imports SCRIPT (a train_gpt.py, or a record folder holding one) in a sandboxed
    subprocess with no network, a temporary working dir and a time limit, calls its
    pgolf_scorer() hook (docs/scorer-protocol.md) and measures it on a short validation
    slice: earlier scores under later changes (C1), the probability mass over the whole
    alphabet at sampled positions (C2), and scores with adaptation switched off (C3).
    Exits 1 when a probe measures a violation or the probes could not run (a crash, a
    timeout, a syntax error), 2 for unusable input (no script, a FIFO, bad options).

    Example: pgolf probe pgolf/train_gpt.py --env PPM_ENABLED=1 --format json
    """
    if not script.exists():
        raise InputError(f"{script}: no such file or folder")
    if script.is_dir() and not (script / "train_gpt.py").is_file():
        raise InputError(f"{script}: no train_gpt.py to probe in this folder")
    if artifact is not None and not artifact.is_file():
        raise InputError(f"{artifact}: no such artifact file")
    env = parse_env(env_pairs) if env_pairs else None
    err = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} calls"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("starting the sandbox", total=None)

        def progress(label: str, done: int, total: int) -> None:
            bar.update(task, description=f"probing {label}", completed=done, total=total)

        report = run_probes(
            script,
            timeout_s=timeout,
            artifact=artifact,
            data_dir=data_dir,
            positions=positions,
            context=context,
            slice_len=slice_len,
            env=env,
            progress=progress,
        )
    if fmt == "json":
        data = {"schema": "pgolf.probe/1", "target": str(script), **report.to_json()}
        click.echo(json.dumps(data, indent=2, allow_nan=False, default=str))
    else:
        _render_text(Console(soft_wrap=False, width=140), report, script)
    threshold = Severity(fail_on).rank
    if any(f.severity.rank >= threshold for f in report.findings):
        raise SystemExit(1)
    if report.status == "error":
        # Nothing could be measured (crash, timeout, syntax error): never a silent pass.
        raise SystemExit(1)

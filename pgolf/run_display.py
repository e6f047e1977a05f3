"""Rich rendering for `pgolf run`: the live per-seed progress and the final summary table."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from pgolf.logs import parse_progress

if TYPE_CHECKING:
    from pgolf.runner import RunReport

STATUS_STYLE = {
    "ok": "green",
    "failed": "red",
    "timeout": "red",
    "running": "yellow",
    "pending": "dim",
    "skipped": "cyan",
}


class LiveDisplay:
    """One progress row per seed: status, step bar, last train loss, elapsed time."""

    def __init__(self, console: Console, seeds: list[int]) -> None:
        self.progress = Progress(
            TextColumn("seed [bold]{task.fields[seed]}[/]"),
            TextColumn("{task.fields[status]}"),
            BarColumn(bar_width=20),
            TextColumn("step {task.fields[step]}"),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[int, TaskID] = {}
        for seed in seeds:
            self.tasks[seed] = self.progress.add_task(
                f"seed {seed}",
                total=None,
                start=False,
                seed=seed,
                status="[dim]pending[/]",
                step="-",
                loss="-",
            )

    def __enter__(self) -> LiveDisplay:
        self.progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.__exit__(exc_type, exc, tb)

    def set_status(self, seed: int, status: str, note: str = "") -> None:
        style = STATUS_STYLE.get(status, "white")
        short = note if len(note) <= 40 else note[:39] + "…"
        text = f"[{style}]{status}[/]" + (f" {short}" if short else "")
        task = self.tasks[seed]
        if status == "running":
            self.progress.start_task(task)
        self.progress.update(task, status=text)
        if status in ("ok", "failed", "timeout", "skipped"):
            self.progress.stop_task(task)

    def line_handler(self, seed: int) -> Callable[[str], None]:
        task = self.tasks[seed]

        def handle(line: str) -> None:
            progress = parse_progress(line)
            if progress is None:
                return
            fields: dict[str, object] = {"step": f"{progress.step}/{progress.total or '?'}"}
            if progress.train_loss is not None and "val_" not in line:
                fields["loss"] = f"{progress.train_loss:.4f}"
            self.progress.update(
                task, completed=progress.step, total=progress.total or None, **fields
            )

        return handle


def _fmt(value: float | int | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def summary_table(report: RunReport) -> Table:
    """Per-seed results plus mean, std, caps and significance verdicts."""
    table = Table(title=f"pgolf run: {report.out}", show_footer=False)
    for column in ("seed", "status", "val_bpb", "val_loss", "bytes", "train s", "eval s", "caps"):
        table.add_column(column, justify="right" if column not in ("status", "caps") else "left")
    for row in report.rows:
        style = STATUS_STYLE.get(row.status, "white")
        table.add_row(
            str(row.seed),
            f"[{style}]{row.status}[/]",
            _fmt(row.val_bpb, ".8f"),
            _fmt(row.val_loss, ".8f"),
            _fmt(row.bytes_total, ","),
            _fmt(row.train_time_s, ".1f"),
            _fmt(row.eval_time_s, ".1f"),
            row.caps_text,
        )
    return table


def render_summary(console: Console, report: RunReport) -> None:
    console.print(summary_table(report))
    for row in report.rows:
        if row.reason:
            console.print(
                f"seed {row.seed} {row.status}: {row.reason}", markup=False, soft_wrap=True
            )
    n = len(report.ok_bpb)
    console.print(
        f"n={n}  mean val_bpb={_fmt(report.mean_bpb, '.8f')}  "
        f"std={_fmt(report.std_bpb, '.8f')} (sample, ddof=1)",
        soft_wrap=True,
    )
    caps_style = {"pass": "green", "fail": "red"}.get(report.caps_verdict, "yellow")
    console.print(
        f"caps (R1 bytes, R2 train, R3 eval): [{caps_style}]{report.caps_verdict}[/]",
        soft_wrap=True,
    )
    sig = report.significance
    if sig is not None:
        verdict = "[green]significant[/]" if sig.passed else "[red]not significant[/]"
        needed = f", seeds needed at this std: {sig.seeds_needed}" if sig.seeds_needed else ""
        console.print(
            f"vs reference (n={sig.n_ref}, mean {sig.mean_ref:.8f}): margin "
            f"{sig.margin_nats:.5f} nats / {sig.margin_bpb:.5f} bpb, p={sig.p_value:.3g}: "
            f"{verdict} ({sig.reason}{needed})",
            soft_wrap=True,
        )
    elif report.significance_note:
        console.print(f"significance: {report.significance_note}", soft_wrap=True)
    for line in report.notes:
        console.print(line, soft_wrap=True)

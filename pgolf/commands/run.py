"""`pgolf run`: train and evaluate once per seed; caps, statistics, submission.json, audit."""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console

from pgolf.caps import BYTES_CAP, EVAL_CAP_S, TRAIN_CAP_S, Caps
from pgolf.errors import InputError, PgolfError
from pgolf.runner import TIMEOUT_GRACE_S, RunConfig, bundled_script, parse_env, run


def _ints(values: list[str], what: str) -> list[int]:
    numbers = []
    for value in values:
        for token in re.split(r"[,\s]+", value.strip()):
            if not token:
                continue
            try:
                numbers.append(int(token))
            except ValueError:
                raise InputError(f"{what}: {token!r} is not an integer") from None
    return numbers


def _floats(text: str | None) -> list[float]:
    if not text:
        return []
    values = []
    for token in re.split(r"[,\s]+", text.strip()):
        if token:
            try:
                values.append(float(token))
            except ValueError:
                raise InputError(f"--baseline-bpb: {token!r} is not a number") from None
    return values


def _recorded_command(
    seeds: list[int],
    out: Path | None,
    script: Path | None,
    data: Path | None,
    env_pairs: tuple[str, ...],
    nproc: int,
) -> list[str]:
    """The command line to record in run.json: argv when run as `pgolf run`, else rebuilt."""
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        return ["pgolf", *sys.argv[1:]]
    command = ["pgolf", "run", "--seeds", *map(str, seeds)]
    for flag, value in (("--script", script), ("--data", data), ("--out", out)):
        if value is not None:
            command += [flag, str(value)]
    if nproc != 1:
        command += ["--nproc", str(nproc)]
    for pair in env_pairs:
        command += ["--env", pair]
    return command


@click.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
)
@click.option(
    "--seeds",
    multiple=True,
    default=("42", "314", "999"),
    show_default=True,
    help="Seeds to run, one subprocess each: `--seeds 42 314 999` (or comma-separated).",
)
@click.option(
    "--script",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Training script to run (default: the bundled pgolf/train_gpt.py).",
    show_default=True,
)
@click.option(
    "--data",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Shard directory (DATA_PATH); default: the embedded dataset, built on first use.",
    show_default=True,
)
@click.option(
    "--nproc", type=int, default=1, show_default=True, help="Processes per node; torchrun when > 1."
)
@click.option(
    "--nnodes", type=str, default=None, show_default=True, help="torchrun --nnodes (multi-node)."
)
@click.option(
    "--node-rank", type=int, default=None, show_default=True, help="torchrun --node-rank."
)
@click.option(
    "--rdzv-backend", type=str, default=None, show_default=True, help="torchrun --rdzv-backend."
)
@click.option(
    "--rdzv-endpoint",
    type=str,
    default=None,
    show_default=True,
    help="torchrun --rdzv-endpoint HOST:PORT.",
)
@click.option("--rdzv-id", type=str, default=None, show_default=True, help="torchrun --rdzv-id.")
@click.option(
    "--torchrun-arg",
    multiple=True,
    default=(),
    show_default=True,
    help="Extra argument passed to torchrun as is (repeatable).",
)
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    default=(),
    show_default=True,
    metavar="KEY=VALUE",
    help="Environment variable for the script (repeatable), e.g. --env ITERATIONS=200.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Run folder; rerun with the same --out to resume. Default: runs/<timestamp>.",
    show_default=True,
)
@click.option(
    "--bytes-cap",
    type=int,
    default=BYTES_CAP,
    show_default=True,
    help="R1 cap: code + compressed model, decimal bytes.",
)
@click.option(
    "--train-cap",
    type=float,
    default=TRAIN_CAP_S,
    show_default=True,
    help="R2 cap: training seconds.",
)
@click.option(
    "--eval-cap",
    type=float,
    default=EVAL_CAP_S,
    show_default=True,
    help="R3 cap: evaluation seconds.",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    help=f"Hard timeout per seed in seconds (default: train cap + eval cap + {TIMEOUT_GRACE_S:.0f} s).",
    show_default=True,
)
@click.option(
    "--dry-run",
    is_flag=True,
    default=False,
    show_default=True,
    help="Print the exact commands and exit.",
)
@click.option(
    "--compare-to",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    show_default=True,
    help="Reference record folder: Welch test against its per-seed val_bpb.",
)
@click.option(
    "--baseline-bpb",
    type=str,
    default=None,
    show_default=True,
    help="Reference per-seed val_bpb values (comma-separated), instead of --compare-to.",
)
@click.option(
    "--alpha", type=float, default=0.01, show_default=True, help="Significance level (R6)."
)
@click.option(
    "--min-delta-nats",
    type=float,
    default=0.005,
    show_default=True,
    help="Required margin in nats per token (R6).",
)
@click.option(
    "--author",
    type=str,
    default=None,
    show_default=True,
    help="submission.json author (default: $PGOLF_AUTHOR or $USER).",
)
@click.option(
    "--github-id",
    type=str,
    default=None,
    show_default=True,
    help="submission.json github_id (default: $PGOLF_GITHUB_ID or $USER).",
)
@click.option(
    "--name",
    type=str,
    default=None,
    show_default=True,
    help="submission.json name (default: the run folder name).",
)
@click.option(
    "--track",
    type=str,
    default="auto",
    show_default=True,
    help="track_10min_16mb, track_non_record_16mb, or auto (record track iff every cap passes).",
)
@click.option(
    "--audit/--no-audit",
    default=True,
    show_default=True,
    help="Write LEGALITY_AUDIT.md with the auditor.",
)
@click.pass_context
def command(
    ctx: click.Context,
    seeds: tuple[str, ...],
    script: Path | None,
    data: Path | None,
    nproc: int,
    nnodes: str | None,
    node_rank: int | None,
    rdzv_backend: str | None,
    rdzv_endpoint: str | None,
    rdzv_id: str | None,
    torchrun_arg: tuple[str, ...],
    env_pairs: tuple[str, ...],
    out: Path | None,
    bytes_cap: int,
    train_cap: float,
    eval_cap: float,
    timeout: float | None,
    dry_run: bool,
    compare_to: Path | None,
    baseline_bpb: str | None,
    alpha: float,
    min_delta_nats: float,
    author: str | None,
    github_id: str | None,
    name: str | None,
    track: str,
    audit: bool,
) -> None:
    """Train and evaluate once per seed, then check caps and statistics.

    Each seed runs the script in its own subprocess (torchrun when --nproc > 1) with SEED set,
    in OUT/seed<N>/, logging to OUT/train_seed<N>.log. A crashed or timed-out seed is recorded
    and the others go on. OUT/run.json is saved after every change: rerunning the same command
    with the same --out skips finished seeds and reruns failed ones. At the end pgolf writes a
    strict OUT/submission.json and OUT/LEGALITY_AUDIT.md and prints per-seed results, mean and
    sample std, caps verdicts (R1-R3) and, against a reference, the Welch significance (R6).
    Exit 0 when every seed finished, 1 when one failed, 2 for usage errors.

    \b
    Example:
      pgolf run --seeds 42 314 999 --env ITERATIONS=200 --out runs/try1
    """
    extra = [arg for arg in ctx.args]
    if extra and not all(re.fullmatch(r"-?\d+(,-?\d+)*", arg) for arg in extra):
        raise click.UsageError(f"unexpected argument(s): {' '.join(extra)}")
    seed_list = _ints([*seeds, *extra], "--seeds")
    torchrun_args = []
    for flag, value in (
        ("--nnodes", nnodes),
        ("--node-rank", node_rank),
        ("--rdzv-backend", rdzv_backend),
        ("--rdzv-endpoint", rdzv_endpoint),
        ("--rdzv-id", rdzv_id),
    ):
        if value is not None:
            torchrun_args.append(f"{flag}={value}")
    torchrun_args.extend(torchrun_arg)
    config = RunConfig(
        seeds=seed_list,
        out=out or Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S"),
        script=script or bundled_script(),
        data=data,
        nproc=nproc,
        torchrun_args=torchrun_args,
        env=parse_env(env_pairs),
        caps=Caps(bytes_total=bytes_cap, train_s=train_cap, eval_s=eval_cap),
        timeout_s=timeout,
        dry_run=dry_run,
        compare_to=compare_to,
        baseline_bpb=_floats(baseline_bpb),
        alpha=alpha,
        min_delta_nats=min_delta_nats,
        author=author,
        github_id=github_id,
        name=name,
        track=track,
        command=_recorded_command(seed_list, out, script, data, env_pairs, nproc),
        audit=audit,
    )
    report = run(config, Console())
    if report is not None and report.failed:
        failed = ", ".join(f"{row.seed} ({row.status})" for row in report.failed)
        raise PgolfError(
            f"{len(report.failed)} of {len(report.rows)} seeds did not finish: {failed}; "
            f"rerun the same command to retry them"
        )

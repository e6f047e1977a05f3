"""`pgolf package`: assemble a finished run folder into an audited, hashed record folder."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from pgolf.package import PackageOptions, package_run


@click.command("package")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--name",
    required=True,
    help="Record name (folder-safe form is derived from it).",
    show_default=True,
)
@click.option(
    "--author",
    default=None,
    help="Author name; default: the run's submission.json.",
    show_default=True,
)
@click.option(
    "--github-id",
    default=None,
    help="GitHub id; default: the run's submission.json.",
    show_default=True,
)
@click.option(
    "--track",
    default=None,
    help="track_10min_16mb or track_non_record_16mb; default: the run's, else the record track.",
    show_default=True,
)
@click.option(
    "--date", default=None, help="Folder date YYYY-MM-DD; default: today (UTC).", show_default=True
)
@click.option(
    "--blurb",
    default=None,
    help="One-paragraph description for README and submission.",
    show_default=True,
)
@click.option(
    "--dest",
    type=click.Path(path_type=Path),
    default=Path("records"),
    show_default=True,
    help="Root of the records tree; the folder goes to DEST/<track>/<date>_<name>/.",
)
@click.option(
    "--allow-fail",
    is_flag=True,
    default=False,
    show_default=True,
    help="Package even if the audit fails or seeds failed (needs --reason).",
)
@click.option(
    "--reason",
    default=None,
    help="Why --allow-fail is justified; recorded in the folder.",
    show_default=True,
)
@click.option(
    "--force", is_flag=True, default=False, show_default=True, help="Replace an existing folder."
)
@click.option(
    "--include-artifact",
    is_flag=True,
    default=False,
    show_default=True,
    help="Also copy the compressed model artifacts (large binaries) into the folder.",
)
def command(
    run_dir: Path,
    name: str,
    author: str | None,
    github_id: str | None,
    track: str | None,
    date: str | None,
    blurb: str | None,
    dest: Path,
    allow_fail: bool,
    reason: str | None,
    force: bool,
    include_artifact: bool,
) -> None:
    """Turn a finished `pgolf run` folder into a PR-ready record folder.

    Creates DEST/<track>/<YYYY-MM-DD>_<Name>/ with README.md, submission.json, the exact
    train_gpt.py that ran, one log per seed, requirements.txt, LEGALITY_AUDIT.md (a fresh
    audit of the assembled folder) and MANIFEST.json (sha256 and size of every file, the data
    fingerprint, the artifacts' sizes and hashes). The folder is built in a temporary
    directory and renamed into place only when complete. A failing audit or failed seeds
    refuse the run unless --allow-fail --reason "..." is given.

    \b
    Example:
      pgolf package runs/20260101-120000 --name MyIdea --author "Ada" --github-id ada
    """
    console = Console(stderr=True)
    opts = PackageOptions(
        run_dir=run_dir,
        name=name,
        author=author,
        github_id=github_id,
        track=track,
        date=date,
        blurb=blurb,
        dest=dest,
        allow_fail=allow_fail,
        reason=reason,
        force=force,
        include_artifact=include_artifact,
    )
    with console.status("packaging", spinner="dots") as status:

        def say(message: str) -> None:
            status.update(message)
            console.print(f"[dim]{message}[/dim]")

        result = package_run(opts, say=say)
    stats = result.statistics
    mean = f"{stats.mean_bpb:.8f}" if stats and stats.mean_bpb is not None else "-"
    std = f"{stats.std_bpb:.8f}" if stats and stats.std_bpb is not None else "-"
    click.echo(f"wrote {result.folder}")
    click.echo(f"val_bpb mean {mean} std {std}; audit verdict: {result.verdict}")
    click.echo(f"check it with: pgolf verify {result.folder}")

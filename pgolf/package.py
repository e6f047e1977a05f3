"""Record folder assembly: a finished `pgolf run` folder -> `records/<track>/<date>_<Name>/`.

The folder is built in a temporary directory next to its destination, audited there, hashed
into MANIFEST.json and only then renamed into place, so that a failure at any step leaves
nothing half-written. See docs/package.md.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgolf import __version__
from pgolf import record_readme as rr
from pgolf.errors import InputError, PgolfError
from pgolf.manifest import build_manifest, file_entry, sha256_file, write_manifest
from pgolf.package_facts import (
    BYTES_CAP,
    EVAL_CAP_S,
    TRAIN_CAP_S,
    AuditOutcome,
    Statistics,
    audit,
    cap_rows,
    caps_json,
    requirements_for,
    statistics_from_logs,
)
from pgolf.package_input import RunFolder, SeedRun, load_run

__all__ = [
    "AuditOutcome",
    "PackageOptions",
    "PackageResult",
    "Statistics",
    "audit",
    "load_run",
    "package_run",
    "parse_date",
    "sanitize_name",
]

RECORD_TRACK = "track_10min_16mb"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

# ---------------------------------------------------------------------------- names


def sanitize_name(name: str) -> tuple[str, list[str]]:
    """A folder-safe form of the record name, and notes saying what was changed.

    Path separators and `..` are refused outright (InputError) rather than rewritten: they
    almost always mean a path was passed where a name was meant.
    """
    raw = name.strip()
    if not raw:
        raise InputError("--name is empty")
    if "/" in raw or "\\" in raw or os.sep in raw:
        raise InputError(f"--name {name!r} contains a path separator; give a plain name")
    if raw in {".", ".."} or ".." in raw:
        raise InputError(f"--name {name!r} contains '..'; give a plain name")
    safe = _SAFE_NAME.sub("_", raw.replace(" ", "_"))
    safe = re.sub(r"_+", "_", safe).strip("._-")
    if len(safe) > 80:
        safe = safe[:80].rstrip("._-")
    if not safe:
        raise InputError(f"--name {name!r} has no usable characters (use letters, digits, . _ -)")
    notes = [] if safe == raw else [f"name {raw!r} became folder name {safe!r}"]
    return safe, notes


def parse_date(value: str | None) -> str:
    if value is None:
        return dt.datetime.now(dt.UTC).date().isoformat()
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise InputError(f"--date {value!r} is not a date YYYY-MM-DD") from None


# ---------------------------------------------------------------------------- assembly


@dataclass
class PackageOptions:
    run_dir: Path
    name: str
    author: str | None = None
    github_id: str | None = None
    track: str | None = None
    date: str | None = None
    blurb: str | None = None
    dest: Path = Path("records")
    allow_fail: bool = False
    reason: str | None = None
    force: bool = False
    include_artifact: bool = False


@dataclass
class PackageResult:
    folder: Path
    verdict: str
    notes: list[str] = field(default_factory=list)
    statistics: Statistics | None = None


def _track(opts: PackageOptions, run: RunFolder) -> str:
    from pgolf.submission import normalize_track

    raw = opts.track or run.submission.get("track") or RECORD_TRACK
    track = normalize_track(str(raw))
    if track is None:
        raise InputError(
            f"--track {raw!r} is not a known track (track_10min_16mb or track_non_record_16mb)"
        )
    return track


def _prepare_destination(track_dir: Path) -> None:
    try:
        track_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{track_dir}: cannot create the destination ({exc.strerror})") from None
    if not os.access(track_dir, os.W_OK | os.X_OK):
        raise InputError(f"{track_dir}: destination is not writable")


def package_run(
    opts: PackageOptions, *, say: Callable[[str], None] = lambda _m: None
) -> PackageResult:
    """Assemble, audit and hash a record folder from a finished run folder."""
    run = load_run(opts.run_dir)
    folder_name_part, notes = sanitize_name(opts.name)
    for note in notes:
        say(note)
    if opts.allow_fail and not (opts.reason and opts.reason.strip()):
        raise InputError('--allow-fail needs --reason "..." (it is recorded in the folder)')
    if run.failed and not opts.allow_fail:
        listed = ", ".join(
            f"{s.seed} ({s.status}{': ' + s.reason if s.reason else ''})" for s in run.failed
        )
        raise PgolfError(
            f"{run.path}: seeds did not finish: {listed}; rerun `pgolf run` to redo them, "
            'or package anyway with --allow-fail --reason "..."'
        )
    if not run.ok:
        raise PgolfError(f"{run.path}: no seed finished; there is nothing to package")

    actual_sha = sha256_file(run.script)
    if run.script_sha256 is None:
        say(f"{run.path / 'run.json'} records no script sha256; train_gpt.py is taken as it is")
    elif actual_sha != run.script_sha256:
        raise PgolfError(
            f"{run.script}: sha256 {actual_sha[:12]}... differs from run.json's "
            f"{str(run.script_sha256)[:12]}...; this is not the script that ran"
        )

    track = _track(opts, run)
    date = parse_date(opts.date)
    folder_name = f"{date}_{folder_name_part}"
    track_dir = Path(opts.dest) / track
    final = track_dir / folder_name
    if final.exists() and not opts.force:
        raise InputError(f"{final}: already exists; pass --force to replace it")
    _prepare_destination(track_dir)

    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{folder_name}.tmp-", dir=track_dir))
    except OSError as exc:
        raise InputError(f"{track_dir}: destination is not writable ({exc.strerror})") from None
    try:
        build = staging / folder_name
        build.mkdir()
        try:
            result = _assemble(build, run, opts, track, date, folder_name, say)
        except OSError as exc:
            raise PgolfError(
                f"{final}: could not assemble the folder ({exc}); nothing was written"
            ) from None
        _publish(build, final, staging)
        result.folder = final
        result.notes[:0] = notes
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _assemble(
    build: Path,
    run: RunFolder,
    opts: PackageOptions,
    track: str,
    date: str,
    folder_name: str,
    say: Callable[[str], None],
) -> PackageResult:
    from pgolf.submission import strict_view, validate, write_submission

    shutil.copyfile(run.script, build / "train_gpt.py")
    files: list[tuple[str, str]] = [("train_gpt.py", "the exact script that ran (sha256 checked)")]
    logs: dict[int, Any] = {}
    for s in run.seeds:
        if s.log_path is None:
            continue
        target = f"train_seed{s.seed}.log"
        shutil.copyfile(s.log_path, build / target)
        what = f"log of seed {s.seed}" + ("" if s.status == "ok" else f" ({s.status})")
        files.append((target, what))
        if s.status == "ok":
            logs[s.seed] = s.log
    (build / "requirements.txt").write_text(requirements_for(run.script, run.torch_version))
    files.append(("requirements.txt", "packages the script imports"))

    artifacts: dict[str, dict[str, Any]] = {}
    artifact_sizes: dict[int, int] = {}
    for s in run.ok:
        assert s.artifact is not None  # load_run guarantees it for ok seeds
        entry = file_entry(s.artifact)
        rel = f"seed{s.seed}/{s.artifact.name}"
        entry.update(path=rel, included=opts.include_artifact)
        artifacts[str(s.seed)] = entry
        artifact_sizes[s.seed] = entry["size"]
        if opts.include_artifact:
            (build / f"seed{s.seed}").mkdir()
            shutil.copyfile(s.artifact, build / rel)
            files.append((rel, f"compressed model of seed {s.seed}"))

    stats = statistics_from_logs(logs)
    code_bytes = (build / "train_gpt.py").stat().st_size
    caps = cap_rows(
        code_bytes=code_bytes,
        artifact_sizes=artifact_sizes,
        logs=logs,
        bytes_cap=run.cap("bytes", BYTES_CAP),
        train_cap=run.cap("train", TRAIN_CAP_S),
        eval_cap=run.cap("eval", EVAL_CAP_S),
    )

    # Only the schema's keys: legacy spellings were already mapped by the lenient reader.
    submission = strict_view(run.submission)
    submission.update(name=opts.name.strip(), track=track, date=date)
    for key, value in (
        ("author", opts.author),
        ("github_id", opts.github_id),
        ("blurb", opts.blurb),
    ):
        if value is not None:
            submission[key] = value
    for key in ("author", "github_id"):
        if not submission.get(key):
            raise InputError(
                f"--{key.replace('_', '-')} is required (run's submission.json has none)"
            )
    problems = validate(submission)
    if problems:
        raise PgolfError("submission.json would not be schema-valid: " + "; ".join(problems[:5]))
    write_submission(build / "submission.json", submission)
    # The atomic writer's temp file is private (0600); a record folder is meant to be shared.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(build / "submission.json", 0o666 & ~umask)
    files.append(("submission.json", "leaderboard metadata (schema-valid)"))
    files.append(("LEGALITY_AUDIT.md", "`pgolf audit` report of this folder"))
    files.append(("MANIFEST.json", "sha256 and size of every file, data fingerprint"))
    files.append(("README.md", "this file"))

    allow_reason = opts.reason.strip() if opts.allow_fail and opts.reason else None
    rows = []
    for s in run.seeds:
        log = s.log
        rows.append(
            rr.SeedRow(
                seed=s.seed,
                status=s.status,
                val_bpb=log.val_bpb if log and s.status == "ok" else None,
                val_loss=log.val_loss if log and s.status == "ok" else None,
                steps=log.steps if log else None,
                train_time_s=log.train_time_s if log else None,
                eval_time_s=log.eval_time_s if log else None,
                bytes_total=(code_bytes + artifact_sizes[s.seed])
                if s.seed in artifact_sizes
                else None,
                reason=s.reason if s.status != "ok" else None,
                log=f"train_seed{s.seed}.log" if s.log_path else None,
                quote=_metric_quote(s) if s.status == "ok" else None,
            )
        )
    hyper = dict(next(iter(logs.values())).hyperparams) if logs else {}
    facts = rr.RecordFacts(
        name=opts.name.strip(),
        folder_name=f"records/{track}/{folder_name}",
        track=track,
        date=date,
        author=str(submission["author"]),
        github_id=str(submission["github_id"]),
        blurb=str(submission.get("blurb") or ""),
        pgolf_version=__version__,
        seeds=rows,
        mean_bpb=stats.mean_bpb,
        std_bpb=stats.std_bpb,
        mean_loss=stats.mean_loss,
        caps=caps,
        code_bytes=code_bytes,
        script_sha256=sha256_file(run.script),
        data_fingerprint=run.data_fingerprint,
        data_description=_data_description(run),
        env=run.user_env,
        data_dir=None if run.uses_default_data else str(run.data_path),
        hyperparams=hyper,
        torch_version=run.torch_version,
        hardware=run.hardware,
        nproc=run.nproc,
        audit=rr.AuditSummary("pending", {}, []),
        files=files,
        allow_fail_reason=allow_reason,
        failed_seeds=[s.seed for s in run.failed],
        artifacts_included=opts.include_artifact,
        bundled_trainer=run.bundled_trainer,
        metric_name=next((log.metric_name for log in logs.values() if log.metric_name), None),
    )
    # The audit reads the README's run command for the effective configuration, so a README
    # with the final command exists before the audit; its audit section is filled in after.
    (build / "README.md").write_text(rr.render(facts), encoding="utf-8")
    say("auditing the assembled folder")
    outcome = audit(build)
    if outcome.verdict == "fail" and not opts.allow_fail:
        lines = "\n  ".join(outcome.summary.top_findings[:8])
        raise PgolfError(
            f"the audit of the assembled folder fails; nothing was written.\n  {lines}\n"
            'Fix the run, or package anyway with --allow-fail --reason "..."'
        )
    facts.audit = outcome.summary
    (build / "README.md").write_text(rr.render(facts), encoding="utf-8")
    (build / "LEGALITY_AUDIT.md").write_text(
        outcome.markdown.replace(str(build), facts.folder_name), encoding="utf-8"
    )

    manifest = build_manifest(
        build,
        pgolf_version=__version__,
        data_fingerprint=run.data_fingerprint,
        artifacts=artifacts,
        run={
            "script_sha256": run.script_sha256 or sha256_file(run.script),
            "torch_version": run.torch_version,
            "hardware": run.hardware,
            "nproc": run.nproc,
            "env": run.user_env,
            "data_path": None if run.uses_default_data else str(run.data_path),
            "command": run.run_json.get("command"),
            "seeds": {str(s.seed): {"status": s.status, "reason": s.reason} for s in run.seeds},
        },
        statistics=stats.to_json(),
        caps=caps_json(caps),
        audit={
            "verdict": outcome.verdict,
            "counts": outcome.summary.counts,
            "findings": outcome.findings,
        },
        allow_fail=(
            {
                "reason": allow_reason,
                "audit_verdict": outcome.verdict,
                "failed_seeds": facts.failed_seeds,
            }
            if allow_reason is not None
            else None
        ),
        created=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    )
    write_manifest(build, manifest)
    return PackageResult(build, outcome.verdict, [], stats)


def _metric_quote(seed: SeedRun) -> str | None:
    """The verbatim log line the seed's score comes from (the last val_bpb metric line)."""
    log = seed.log
    if log is None or seed.log_path is None or not log.metrics:
        return None
    target = log.metrics[-1].line
    with open(seed.log_path, encoding="utf-8", errors="replace") as fh:
        for number, text in enumerate(fh, start=1):
            if number == target:
                return text.strip()[:200] or None
    return None


def _data_description(run: RunFolder) -> str:
    path = run.data_path
    if path and "default_sp" not in str(path):
        return f"the shards in `{Path(str(path)).name}`"
    return "the embedded default dataset built by `pgolf data`"


def _publish(build: Path, final: Path, staging: Path) -> None:
    """Rename the finished build into place; with --force the old folder goes only after."""
    old = None
    if final.exists():
        old = staging / "previous"
        os.replace(final, old)
    try:
        os.replace(build, final)
    except OSError as exc:
        if old is not None:
            os.replace(old, final)
        raise PgolfError(
            f"{final}: could not move the finished folder into place ({exc})"
        ) from None

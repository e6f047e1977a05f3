"""Record folder assembly: a finished `pgolf run` folder -> `records/<track>/<date>_<Name>/`.

The folder is built in a temporary directory next to its destination, audited there, hashed
into MANIFEST.json and only then renamed into place, so that a failure at any step leaves
nothing half-written. See docs/package.md.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pgolf import __version__
from pgolf import record_readme as rr
from pgolf.errors import InputError, PgolfError
from pgolf.manifest import build_manifest, file_entry, sha256_file, write_manifest

RECORD_TRACK = "track_10min_16mb"
BYTES_CAP = 16_000_000
TRAIN_CAP_S = 600.0
EVAL_CAP_S = 600.0
ARTIFACT_NAME = "final_model.int8.ptz"
_DATA_KEYS = ("DATA_PATH", "TOKENIZER_PATH")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Import name -> distribution name, for the requirements.txt of a record folder.
_DISTRIBUTIONS = {
    "torch": "torch",
    "numpy": "numpy",
    "sentencepiece": "sentencepiece",
    "zstandard": "zstandard",
    "zstd": "zstandard",
    "brotli": "brotli",
    "einops": "einops",
    "triton": "triton",
    "flash_attn": "flash-attn",
    "huggingface_hub": "huggingface-hub",
    "datasets": "datasets",
    "tiktoken": "tiktoken",
    "scipy": "scipy",
}


# ---------------------------------------------------------------------------- run folders


@dataclass
class SeedRun:
    seed: int
    status: str
    reason: str | None
    log_path: Path | None
    log: Any  # pgolf.logs.RunLog | None
    artifact: Path | None


@dataclass
class RunFolder:
    path: Path
    run_json: dict[str, Any]
    script: Path
    submission: dict[str, Any]
    seeds: list[SeedRun]

    @property
    def env(self) -> dict[str, str]:
        env = self.run_json.get("env") or {}
        return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}

    @property
    def uses_default_data(self) -> bool:
        path = self.data_path
        return path is None or Path(str(path)).name.startswith("default_sp")

    @property
    def user_env(self) -> dict[str, str]:
        """The run's own overrides: data paths of the embedded default are machine-specific."""
        env = self.env
        if self.uses_default_data:
            env = {k: v for k, v in env.items() if k not in _DATA_KEYS}
        return env

    @property
    def script_sha256(self) -> str | None:
        return _dig(self.run_json, ("script_sha256",), ("script", "sha256"))

    @property
    def data_fingerprint(self) -> str | None:
        return _dig(self.run_json, ("data_fingerprint",), ("data", "fingerprint"))

    @property
    def data_path(self) -> str | None:
        return _dig(self.run_json, ("data_path",), ("data", "path"))

    @property
    def torch_version(self) -> str | None:
        return _dig(self.run_json, ("torch_version",), ("torch",), ("versions", "torch"))

    @property
    def hardware(self) -> str | None:
        hw = self.run_json.get("hardware")
        if isinstance(hw, dict):
            try:
                from pgolf.run_state import hardware_summary

                return hardware_summary(hw, self.nproc)
            except ImportError:
                return ", ".join(f"{k}: {v}" for k, v in hw.items() if v not in (None, "", []))
        return str(hw) if hw else None

    @property
    def nproc(self) -> int:
        try:
            return int(self.run_json.get("nproc") or 1)
        except (TypeError, ValueError):
            return 1

    def cap(self, name: str, default: float) -> float:
        caps = self.run_json.get("caps")
        keys = {
            "bytes": ("bytes_total", "bytes_cap", "bytes"),
            "train": ("train_s", "train_cap", "train_cap_s", "train"),
            "eval": ("eval_s", "eval_cap", "eval_cap_s", "eval"),
        }[name]
        if isinstance(caps, dict):
            for key in keys:
                value = caps.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return float(value)
        return default

    @property
    def failed(self) -> list[SeedRun]:
        return [s for s in self.seeds if s.status != "ok"]

    @property
    def ok(self) -> list[SeedRun]:
        return [s for s in self.seeds if s.status == "ok"]


def _dig(data: dict[str, Any], *paths: tuple[str, ...]) -> Any:
    for path in paths:
        node: Any = data
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node not in (None, ""):
            return node
    return None


def _seed_entries(run_json: dict[str, Any]) -> list[dict[str, Any]]:
    seeds = run_json.get("seeds")
    entries: list[dict[str, Any]] = []
    if isinstance(seeds, dict):
        for key, value in seeds.items():
            entry = dict(value) if isinstance(value, dict) else {}
            entry.setdefault("seed", key)
            entries.append(entry)
    elif isinstance(seeds, list):
        for value in seeds:
            if isinstance(value, dict):
                entries.append(dict(value))
            else:
                entries.append({"seed": value})
    return entries


def load_run(run_dir: Path) -> RunFolder:
    """Read a `pgolf run` folder; InputError naming the file for anything unusable."""
    from pgolf.logs import parse_log
    from pgolf.submission import read_submission

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory (expected a `pgolf run` folder)")
    run_path = run_dir / "run.json"
    if not run_path.is_file():
        raise InputError(f"{run_path}: missing; {run_dir} is not a finished `pgolf run` folder")
    try:
        run_json = json.loads(run_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{run_path}: not readable JSON ({exc})") from None
    if not isinstance(run_json, dict):
        raise InputError(f"{run_path}: top level is not an object")
    script = run_dir / "train_gpt.py"
    if not script.is_file():
        raise InputError(f"{script}: missing (the exact script that ran must be in the run folder)")
    sub_path = run_dir / "submission.json"
    if not sub_path.is_file():
        raise InputError(f"{sub_path}: missing; rerun `pgolf run` to finish the run folder")
    submission, problems = read_submission(sub_path)
    if not isinstance(submission, dict) or (not submission and problems):
        raise InputError(f"{sub_path}: unusable ({'; '.join(problems) or 'empty'})")

    entries = _seed_entries(run_json)
    if not entries:
        raise InputError(f"{run_path}: records no seeds")
    seeds: list[SeedRun] = []
    for entry in entries:
        try:
            seed = int(entry["seed"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{run_path}: a seed entry has no integer seed: {entry!r}") from None
        status = str(entry.get("status") or "unknown")
        log_name = entry.get("log") or f"train_seed{seed}.log"
        log_path = run_dir / Path(str(log_name)).name
        recorded = entry.get("artifact")
        artifact = run_dir / f"seed{seed}" / ARTIFACT_NAME
        if recorded and not artifact.is_file():
            candidate = Path(str(recorded))
            artifact = candidate if candidate.is_absolute() else run_dir / candidate
        log = None
        if status == "ok":
            if not log_path.is_file():
                raise InputError(f"{log_path}: missing (seed {seed} is recorded as ok)")
            if not artifact.is_file():
                raise InputError(f"{artifact}: missing (seed {seed} is recorded as ok)")
            log = parse_log(log_path)
            if log.val_bpb is None:
                raise InputError(f"{log_path}: no final val_bpb metric line (seed {seed})")
        elif log_path.is_file():
            log = parse_log(log_path)
        seeds.append(
            SeedRun(
                seed=seed,
                status=status,
                reason=entry.get("reason"),
                log_path=log_path if log_path.is_file() else None,
                log=log,
                artifact=artifact if artifact.is_file() else None,
            )
        )
    seeds.sort(key=lambda s: s.seed)
    return RunFolder(run_dir, run_json, script, submission, seeds)


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


# ---------------------------------------------------------------------------- facts


@dataclass
class Statistics:
    per_seed: dict[int, dict[str, Any]]
    mean_bpb: float | None
    std_bpb: float | None
    mean_loss: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "seeds": {str(k): v for k, v in sorted(self.per_seed.items())},
            "val_bpb_mean": self.mean_bpb,
            "val_bpb_std": self.std_bpb,
            "val_loss_mean": self.mean_loss,
        }


def statistics_from_logs(logs: dict[int, Any]) -> Statistics:
    """Per-seed scores from parsed logs and their mean and sample std (R6)."""
    from pgolf.stats import mean_std

    per_seed: dict[int, dict[str, Any]] = {}
    for seed, log in sorted(logs.items()):
        per_seed[seed] = {
            "val_bpb": log.val_bpb,
            "val_loss": log.val_loss,
            "steps": log.steps,
            "train_time_s": log.train_time_s,
            "eval_time_s": log.eval_time_s,
            "bytes_total": log.bytes_total,
        }
    bpbs = [v["val_bpb"] for v in per_seed.values() if v["val_bpb"] is not None]
    losses = [v["val_loss"] for v in per_seed.values() if v["val_loss"] is not None]
    mean_bpb, std_bpb = mean_std(bpbs) if bpbs else (None, None)
    mean_loss = mean_std(losses)[0] if losses else None
    return Statistics(per_seed, mean_bpb, _finite(std_bpb), mean_loss)


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)


def cap_rows(
    *,
    code_bytes: int,
    artifact_sizes: dict[int, int],
    logs: dict[int, Any],
    bytes_cap: float = BYTES_CAP,
    train_cap: float = TRAIN_CAP_S,
    eval_cap: float = EVAL_CAP_S,
) -> list[rr.CapRow]:
    """R1-R3 recomputed: bytes from the files as shipped, times from the logs."""
    rows: list[rr.CapRow] = []
    totals = [code_bytes + size for size in artifact_sizes.values()]
    if totals:
        worst = max(totals)
        rows.append(
            rr.CapRow(
                "R1",
                "code + compressed model bytes",
                f"{int(bytes_cap):,}",
                f"{worst:,}",
                worst <= bytes_cap,
            )
        )
    else:
        rows.append(
            rr.CapRow("R1", "code + compressed model bytes", f"{int(bytes_cap):,}", "-", None)
        )
    for rule, what, attr, cap in (
        ("R2", "train time (before serialization)", "train_time_s", train_cap),
        ("R3", "eval time (after loading the artifact)", "eval_time_s", eval_cap),
    ):
        values = [getattr(log, attr) for log in logs.values() if getattr(log, attr) is not None]
        if values and len(values) == len(logs):
            worst_t = max(values)
            rows.append(rr.CapRow(rule, what, f"{cap:.0f} s", f"{worst_t:.1f} s", worst_t <= cap))
        else:
            rows.append(rr.CapRow(rule, what, f"{cap:.0f} s", "not in every log", None))
    return rows


def caps_json(rows: list[rr.CapRow]) -> dict[str, Any]:
    return {
        r.rule: {"what": r.what, "limit": r.limit, "measured": r.measured, "ok": r.ok} for r in rows
    }


# ---------------------------------------------------------------------------- audit


@dataclass
class AuditOutcome:
    verdict: str
    markdown: str
    findings: list[dict[str, Any]]
    summary: rr.AuditSummary


def audit(folder: Path) -> AuditOutcome:
    """Run the static audit on an assembled folder (PgolfError if the auditor is unusable)."""
    try:
        from audit.engine import audit_folder
        from audit.report import to_markdown
    except ImportError as exc:
        raise PgolfError(f"the auditor is not available in this install ({exc})") from None
    report = audit_folder(folder)
    findings = [f for f in report.findings if not getattr(f, "suppressed", None)]
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: (order.get(str(f.severity), 3), f.rule, f.file or "", f.line or 0))
    counts: dict[str, int] = {}
    for f in findings:
        counts[str(f.severity)] = counts.get(str(f.severity), 0) + 1
    top = []
    for f in findings:
        if str(f.severity) == "info":
            continue
        where = f.file or ""
        if f.line:
            where += f":{f.line}"
        top.append(f"{f.rule} ({f.condition}, {f.severity}) {where} {f.message}".replace("  ", " "))
    entries = [
        {"rule": f.rule, "severity": str(f.severity), "file": f.file, "line": f.line}
        for f in findings
    ]
    summary = rr.AuditSummary(str(report.verdict), counts, top[:12])
    return AuditOutcome(str(report.verdict), to_markdown(report), entries, summary)


# ---------------------------------------------------------------------------- requirements


def requirements_for(script: Path, torch_version: str | None) -> str:
    """requirements.txt: the third-party packages the script imports, torch pinned to the run's."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    lines = ["# Third-party packages train_gpt.py imports (torch pinned to the version that ran)."]
    for dist in sorted({_DISTRIBUTIONS[m] for m in modules if m in _DISTRIBUTIONS}):
        if dist == "torch" and torch_version:
            lines.append(f"torch=={torch_version.split('+')[0]}")
            continue
        try:
            lines.append(f"{dist}>={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            lines.append(dist)
    return "\n".join(lines) + "\n"


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

"""Re-check a record folder from its files: hashes, sizes, caps, statistics and the audit.

Every recomputed fact is compared with what the folder claims (MANIFEST.json, submission.json,
the logs' own size lines). The result is a list of checks, each `ok`, `diff` (a difference:
verify exits 1), `warn` (worth a look, not a difference) or `skip` (could not be checked,
with the reason). Upstream folders without a manifest get every check that needs no manifest.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgolf.errors import InputError
from pgolf.manifest import MANIFEST_NAME, diff_files, read_manifest, sha256_file
from pgolf.submission import as_number

BYTES_CAP = 16_000_000
TIME_CAP_S = 600.0
RECORD_TRACK = "track_10min_16mb"
# Scores are printed with 8 decimals; a claim rounded the same way must match within this.
SCORE_TOL = 1.5e-8
# Upstream folders often round their claims; R6's audit rule uses the same bound.
LOOSE_SCORE_TOL = 1e-4
_SEED_RE = re.compile(r"seed[_\-]?(\d+)", re.IGNORECASE)
_VERDICT_RANK = {"pass": 0, "review": 1, "fail": 2}


@dataclass(frozen=True)
class Check:
    area: str  # files | submission | statistics | caps | logs | audit | data
    item: str
    status: str  # ok | diff | warn | skip
    expected: str = ""
    found: str = ""
    file: str | None = None


@dataclass
class VerifyReport:
    folder: Path
    has_manifest: bool
    checks: list[Check] = field(default_factory=list)
    verdict: str | None = None

    @property
    def differences(self) -> list[Check]:
        return [c for c in self.checks if c.status == "diff"]

    @property
    def skipped(self) -> list[Check]:
        return [c for c in self.checks if c.status == "skip"]

    @property
    def clean(self) -> bool:
        return not self.differences

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.checks.append(Check(*args, **kwargs))

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "clean": self.clean,
            "has_manifest": self.has_manifest,
            "audit_verdict": self.verdict,
            "checks": [c.__dict__ for c in self.checks],
        }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.8f}"
    return str(value)


def _close(a: float | None, b: float | None, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


def find_logs(folder: Path) -> list[Path]:
    """The folder's training logs: `*.log` at the top and `*.log`/`*.txt` one level down."""
    logs = sorted(p for p in folder.glob("*.log") if p.is_file())
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        logs += sorted(p for p in sub.glob("*.log") if p.is_file())
        if sub.name.lower() == "logs":
            logs += sorted(p for p in sub.glob("*.txt") if p.is_file())
    return logs


def _seed_of(log: Any, path: Path, index: int) -> int:
    if log.seed is not None:
        return int(log.seed)
    match = _SEED_RE.search(path.name)
    return int(match.group(1)) if match else -(index + 1)


def seed_results(submission: dict[str, Any]) -> dict[int, dict[str, Any]]:
    raw = submission.get("seed_results")
    out: dict[int, dict[str, Any]] = {}
    items: list[tuple[Any, Any]] = []
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):
        items = [(r.get("seed") if isinstance(r, dict) else None, r) for r in raw]
    for key, value in items:
        try:
            seed = int(key)
        except (TypeError, ValueError):
            continue
        if isinstance(value, dict):
            out[seed] = value
        elif as_number(value) is not None:
            out[seed] = {"val_bpb": as_number(value)}
    return out


def verify_folder(
    folder: Path, *, data_dir: Path | None = None, run_audit: bool = True
) -> VerifyReport:
    """Recompute every fact of a record folder and compare it with what the folder claims."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    manifest = read_manifest(folder)
    report = VerifyReport(folder, manifest is not None)
    _check_files(report, manifest)
    _check_data(report, manifest, data_dir)
    submission = _check_submission(report, manifest)
    logs = _parse_logs(report)
    _check_statistics(report, manifest, submission, logs)
    _check_caps(report, manifest, submission, logs)
    if run_audit:
        _check_audit(report, manifest)
    else:
        report.add("audit", "audit re-run", "skip", found="skipped on request")
    return report


# ---------------------------------------------------------------------------- files and data


def _check_files(report: VerifyReport, manifest: dict[str, Any] | None) -> None:
    folder = report.folder
    if manifest is None:
        report.add(
            "files",
            "hashes and sizes",
            "skip",
            found=f"no {MANIFEST_NAME}: file hashes, artifact hashes and the data fingerprint "
            "cannot be checked",
        )
    else:
        recorded = manifest["files"]
        diffs = diff_files(folder, recorded)
        for d in diffs:
            what = {
                "missing": "file listed in the manifest is missing",
                "extra": "file not listed in the manifest",
                "size": "size differs from the manifest",
                "sha256": "sha256 differs from the manifest",
                "symlink": "is a symlink",
                "type": "is not a regular file (FIFO, device or directory)",
            }[d.kind]
            report.add("files", what, "diff", d.expected, d.actual, d.file)
        if not diffs:
            report.add("files", f"all {len(recorded)} files match sha256 and size", "ok")
        for seed, art in sorted((manifest.get("artifacts") or {}).items()):
            if not isinstance(art, dict):
                continue
            rel = str(art.get("path") or "")
            path = folder / rel
            if art.get("included") or (rel and path.is_file()):
                if not path.is_file():
                    report.add(
                        "files", f"artifact of seed {seed}", "diff", "present", "absent", rel
                    )
                    continue
                digest = sha256_file(path)
                status = "ok" if digest == art.get("sha256") else "diff"
                report.add(
                    "files",
                    f"artifact of seed {seed} sha256",
                    status,
                    _fmt(art.get("sha256")),
                    digest,
                    rel,
                )
            else:
                report.add(
                    "files",
                    f"artifact of seed {seed}",
                    "skip",
                    f"{art.get('size')} bytes, sha256 {str(art.get('sha256'))[:16]}...",
                    "not included in the folder (recorded only)",
                    rel or None,
                )
    if (folder / "train_gpt.py").is_file():
        if manifest is not None:
            recorded_sha = (manifest.get("run") or {}).get("script_sha256")
            if recorded_sha:
                digest = sha256_file(folder / "train_gpt.py")
                report.add(
                    "files",
                    "train_gpt.py is the script that ran",
                    "ok" if digest == recorded_sha else "diff",
                    recorded_sha,
                    digest,
                    "train_gpt.py",
                )
    else:
        report.add(
            "files", "train_gpt.py present (R7)", "diff", "present", "absent", "train_gpt.py"
        )


def _check_data(
    report: VerifyReport, manifest: dict[str, Any] | None, data_dir: Path | None
) -> None:
    recorded = manifest.get("data_fingerprint") if manifest else None
    if data_dir is None:
        if recorded:
            report.add(
                "data",
                "data fingerprint",
                "skip",
                recorded[:16] + "...",
                "not rechecked (pass --data DIR)",
            )
        return
    from pgolf.data import data_fingerprint

    actual = data_fingerprint(Path(data_dir))
    if not recorded:
        report.add("data", "data fingerprint", "skip", "none recorded", actual, str(data_dir))
        return
    report.add(
        "data",
        "data fingerprint",
        "ok" if actual == recorded else "diff",
        recorded,
        actual,
        str(data_dir),
    )


# ---------------------------------------------------------------------------- submission


def _check_submission(
    report: VerifyReport, manifest: dict[str, Any] | None
) -> dict[str, Any] | None:
    from pgolf.submission import read_submission, validate

    path = report.folder / "submission.json"
    if not path.is_file():
        report.add(
            "submission",
            "submission.json present (R7)",
            "diff",
            "present",
            "absent",
            "submission.json",
        )
        return None
    data, problems = read_submission(path)
    for problem in problems:
        report.add(
            "submission", "readable", "diff" if manifest else "warn", "", problem, "submission.json"
        )
    if not isinstance(data, dict):
        return None
    strict = validate(_raw_json(path) or data)
    if strict:
        status = "diff" if manifest else "warn"
        for problem in strict[:10]:
            report.add("submission", "schema-valid", status, "valid", problem, "submission.json")
    else:
        report.add("submission", "schema-valid", "ok", file="submission.json")
    _check_provenance(report, manifest, data)
    return data


def _check_provenance(
    report: VerifyReport, manifest: dict[str, Any] | None, submission: dict[str, Any]
) -> None:
    """submission.json's `pgolf` block against the script and the manifest."""
    prov = submission.get("pgolf")
    if not isinstance(prov, dict):
        return
    script = report.folder / "train_gpt.py"
    recorded_sha = prov.get("script_sha256")
    if isinstance(recorded_sha, str) and script.is_file():
        digest = sha256_file(script)
        report.add(
            "submission",
            "pgolf.script_sha256 = sha256 of train_gpt.py",
            "ok" if digest == recorded_sha else "diff",
            recorded_sha,
            digest,
            "submission.json",
        )
    fingerprint = prov.get("data_fingerprint")
    if manifest is not None and fingerprint and manifest.get("data_fingerprint"):
        report.add(
            "submission",
            "pgolf.data_fingerprint = MANIFEST data_fingerprint",
            "ok" if fingerprint == manifest["data_fingerprint"] else "diff",
            str(manifest["data_fingerprint"]),
            str(fingerprint),
            "submission.json",
        )


def _raw_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------- logs and stats


def _parse_logs(report: VerifyReport) -> dict[int, Any]:
    from pgolf.logs import parse_log

    logs: dict[int, Any] = {}
    script = report.folder / "train_gpt.py"
    source = script.read_text(encoding="utf-8", errors="replace") if script.is_file() else None
    paths = find_logs(report.folder)
    if not paths:
        report.add("logs", "one log per seed (R7)", "diff", ">= 1 log", "no *.log file")
        return logs
    for index, path in enumerate(paths):
        rel = path.relative_to(report.folder).as_posix()
        log = parse_log(path)
        if log.val_bpb is None:
            report.add("logs", "final val_bpb line", "warn", "present", "absent", rel)
            continue
        seed = _seed_of(log, path, index)
        if seed in logs:
            report.add("logs", f"seed {seed} appears in more than one log", "warn", file=rel)
            continue
        logs[seed] = log
        if source is not None and log.embedded_source is not None:
            same = log.embedded_source.rstrip("\n") == source.rstrip("\n")
            report.add(
                "logs",
                "embedded source equals train_gpt.py (R8)",
                "ok" if same else "diff",
                "identical",
                "identical" if same else "differs",
                rel,
            )
        elif source is not None:
            report.add(
                "logs",
                "embedded source equals train_gpt.py (R8)",
                "skip",
                found="log embeds no source",
                file=rel,
            )
    return logs


def _check_statistics(
    report: VerifyReport,
    manifest: dict[str, Any] | None,
    submission: dict[str, Any] | None,
    logs: dict[int, Any],
) -> None:
    from pgolf.stats import mean_std

    if not logs:
        report.add("statistics", "per-seed scores", "skip", found="no log with a final val_bpb")
        return
    tol = SCORE_TOL if manifest else LOOSE_SCORE_TOL
    bpbs = [log.val_bpb for log in logs.values()]
    losses = [log.val_loss for log in logs.values() if log.val_loss is not None]
    mean_bpb, std_bpb = mean_std(bpbs)
    mean_loss = mean_std(losses)[0] if losses else None
    std_bpb = None if std_bpb != std_bpb else std_bpb
    report.add(
        "statistics",
        f"recomputed from {len(bpbs)} logs",
        "ok",
        found=f"mean {_fmt(mean_bpb)} std {_fmt(std_bpb)}",
    )
    if submission is not None:
        claimed = as_number(submission.get("val_bpb"))
        if claimed is None:
            report.add(
                "statistics",
                "submission val_bpb",
                "diff",
                _fmt(mean_bpb),
                "absent",
                "submission.json",
            )
        else:
            report.add(
                "statistics",
                "submission val_bpb = mean of the logs",
                "ok" if _close(claimed, mean_bpb, tol) else "diff",
                _fmt(mean_bpb),
                _fmt(claimed),
                "submission.json",
            )
        claimed_loss = as_number(submission.get("val_loss"))
        if claimed_loss is not None and mean_loss is not None:
            report.add(
                "statistics",
                "submission val_loss = mean of the logs",
                "ok" if _close(claimed_loss, mean_loss, tol) else "diff",
                _fmt(mean_loss),
                _fmt(claimed_loss),
                "submission.json",
            )
        claimed_std = as_number(submission.get("val_bpb_std"))
        if claimed_std is not None and std_bpb is not None:
            report.add(
                "statistics",
                "submission val_bpb_std = sample std of the logs",
                "ok" if _close(claimed_std, std_bpb, tol) else "diff",
                _fmt(std_bpb),
                _fmt(claimed_std),
                "submission.json",
            )
        for seed, entry in sorted(seed_results(submission).items()):
            log = logs.get(seed)
            if log is None:
                report.add(
                    "statistics",
                    f"seed {seed} of submission.json has a log",
                    "diff",
                    "a log",
                    "none",
                    "submission.json",
                )
                continue
            for key in ("val_bpb", "val_loss"):
                value = as_number(entry.get(key))
                if value is not None:
                    actual = getattr(log, key)
                    report.add(
                        "statistics",
                        f"seed {seed} {key}",
                        "ok" if _close(value, actual, tol) else "diff",
                        _fmt(actual),
                        _fmt(value),
                        "submission.json",
                    )
    if manifest is not None:
        stats = manifest.get("statistics") or {}
        for key, actual in (("val_bpb_mean", mean_bpb), ("val_bpb_std", std_bpb)):
            value = as_number(stats.get(key))
            report.add(
                "statistics",
                f"MANIFEST {key}",
                "ok" if _close(value, actual, 1e-12) else "diff",
                _fmt(actual),
                _fmt(value),
                MANIFEST_NAME,
            )
        recorded_seeds = {
            int(k) for k in (stats.get("seeds") or {}) if re.fullmatch(r"-?[0-9]+", str(k))
        }
        if recorded_seeds and recorded_seeds != set(logs):
            report.add(
                "statistics",
                "seeds with a log = seeds in MANIFEST",
                "diff",
                " ".join(map(str, sorted(recorded_seeds))),
                " ".join(map(str, sorted(logs))),
                MANIFEST_NAME,
            )


# ---------------------------------------------------------------------------- caps


def _code_bytes(folder: Path) -> int:
    """Code bytes as shipped: every code file of the folder (R1 counts what evaluation needs)."""
    from pgolf.caps import code_bytes, code_files

    return code_bytes(code_files(folder))


def _check_caps(
    report: VerifyReport,
    manifest: dict[str, Any] | None,
    submission: dict[str, Any] | None,
    logs: dict[int, Any],
) -> None:
    folder = report.folder
    track = str((submission or {}).get("track") or "")
    record = track in ("", RECORD_TRACK)
    code = _code_bytes(folder)
    if submission is not None and as_number(submission.get("bytes_code")) is not None:
        claimed = int(as_number(submission["bytes_code"]) or 0)
        report.add(
            "caps",
            "submission bytes_code = code bytes as shipped",
            "ok" if claimed == code else ("diff" if manifest else "warn"),
            str(code),
            str(claimed),
            "submission.json",
        )
    artifacts = (manifest or {}).get("artifacts") or {}
    totals: list[int] = []
    for seed, log in sorted(logs.items()):
        art = artifacts.get(str(seed)) if isinstance(artifacts, dict) else None
        model = None
        source = ""
        if isinstance(art, dict) and isinstance(art.get("size"), int):
            path = folder / str(art.get("path") or "")
            model = path.stat().st_size if art.get("path") and path.is_file() else art["size"]
            source = "artifact" if path.is_file() else "manifest"
        if log.bytes_code is not None and (folder / "train_gpt.py").is_file():
            script = (folder / "train_gpt.py").stat().st_size
            report.add(
                "caps",
                f"seed {seed} logged code size = train_gpt.py size",
                "ok" if log.bytes_code == script else ("diff" if manifest else "warn"),
                str(script),
                str(log.bytes_code),
                log.path.name if log.path else None,
            )
        if model is None:
            total = log.bytes_total
            if total is None:
                report.add(
                    "caps", f"seed {seed} bytes (R1)", "skip", found="no artifact size known"
                )
                continue
            # Without the artifact the log's own total is the best measure; a folder that
            # counts its code differently (a compressed wrapper) is the audit's call (R1).
            if log.bytes_model is not None and code + log.bytes_model != total:
                report.add(
                    "caps",
                    f"seed {seed} logged total = code as shipped + logged model bytes",
                    "warn",
                    str(code + log.bytes_model),
                    str(total),
                    log.path.name if log.path else None,
                )
        else:
            total = code + model
            if log.bytes_total is not None:
                report.add(
                    "caps",
                    f"seed {seed} logged total size = code + model ({source})",
                    "ok" if log.bytes_total == total else ("diff" if manifest else "warn"),
                    str(total),
                    str(log.bytes_total),
                    log.path.name if log.path else None,
                )
        totals.append(total)
        report.add(
            "caps",
            f"seed {seed} bytes <= {BYTES_CAP:,} (R1)",
            "ok" if total <= BYTES_CAP else "diff",
            f"<= {BYTES_CAP}",
            str(total),
        )
        for rule, attr in (("R2", "train_time_s"), ("R3", "eval_time_s")):
            value = getattr(log, attr)
            what = f"seed {seed} {attr.replace('_s', '')} <= {TIME_CAP_S:.0f} s ({rule})"
            if value is None:
                report.add("caps", what, "skip", found="not in the log")
            elif value <= TIME_CAP_S:
                report.add("caps", what, "ok", found=f"{value:.3f} s")
            else:
                report.add(
                    "caps",
                    what,
                    "diff" if record else "warn",
                    f"<= {TIME_CAP_S:.0f}",
                    f"{value:.1f} s",
                )
    if submission is not None and totals and as_number(submission.get("bytes_total")) is not None:
        claimed_total = int(as_number(submission["bytes_total"]) or 0)
        # bytes_total is the max over seeds in pgolf's submissions; some upstream ones use the mean.
        accepted = {max(totals), round(sum(totals) / len(totals))}
        report.add(
            "caps",
            "submission bytes_total = max over seeds",
            "ok" if claimed_total in accepted else ("diff" if manifest else "warn"),
            str(max(totals)),
            str(claimed_total),
            "submission.json",
        )


# ---------------------------------------------------------------------------- audit


def _check_audit(report: VerifyReport, manifest: dict[str, Any] | None) -> None:
    try:
        from audit.engine import audit_folder
    except ImportError as exc:
        report.add("audit", "audit re-run", "skip", found=f"auditor unavailable ({exc})")
        return
    result = audit_folder(report.folder)
    verdict = str(result.verdict)
    report.verdict = verdict
    live = sorted(
        {
            (f.rule, str(f.severity), f.file or "", f.line or 0)
            for f in result.findings
            if not getattr(f, "suppressed", None)
        }
    )
    allow = (manifest or {}).get("allow_fail") or None
    recorded = (manifest or {}).get("audit") or {}
    if manifest is not None and recorded.get("verdict"):
        then_verdict = str(recorded["verdict"])
        if verdict == then_verdict:
            status = "ok"
        elif _VERDICT_RANK.get(verdict, 3) > _VERDICT_RANK.get(then_verdict, 3):
            status = "diff"
        else:
            # A newer auditor that finds less is not a sign the folder changed.
            status = "warn"
        report.add(
            "audit",
            "verdict equals the one recorded at packaging",
            status,
            then_verdict,
            verdict,
            MANIFEST_NAME,
        )
        then = sorted(
            {
                (e.get("rule"), e.get("severity"), e.get("file") or "", e.get("line") or 0)
                for e in recorded.get("findings") or []
                if isinstance(e, dict)
            }
        )
        if then != live:
            added = [f"{r}@{f}:{ln}" for r, _s, f, ln in live if (r, _s, f, ln) not in then]
            gone = [f"{r}@{f}:{ln}" for r, _s, f, ln in then if (r, _s, f, ln) not in live]
            report.add(
                "audit",
                "findings equal the recorded ones",
                "warn",
                "gone: " + (", ".join(gone[:5]) or "-"),
                "new: " + (", ".join(added[:5]) or "-"),
            )
    errors = [f for f in live if f[1] == "error"]
    if verdict == "fail":
        detail = ", ".join(f"{r} {f}:{ln}" for r, _s, f, ln in errors[:5])
        if isinstance(allow, dict) and allow.get("reason"):
            report.add(
                "audit",
                "audit verdict",
                "warn",
                "pass",
                f"fail, packaged with --allow-fail: {allow['reason']}",
            )
        else:
            report.add("audit", "audit verdict", "diff", "pass", f"fail ({detail})")
    elif verdict == "review":
        report.add("audit", "audit verdict", "warn", "pass", "review (warnings to read)")
    else:
        report.add("audit", "audit verdict", "ok", "pass", verdict)

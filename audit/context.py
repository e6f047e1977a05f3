"""Build the AuditContext: everything rules may look at, read once, safely, from one folder.

Sources are unpacked (audit.unpack) and parsed; logs are parsed streaming (pgolf.logs);
submission.json is read leniently (pgolf.submission); the README run command and the logs'
hyperparameter dumps give the effective configuration. Nothing here executes submitted code
and nothing raises on file content: problems are recorded for the rules to report.
"""

from __future__ import annotations

import ast
import json
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit import facts
from audit.claims import num, per_seed
from audit.folder import FolderFile, FolderScan, read_head, read_text, scan_folder
from audit.readme_blocks import readme_block_settings
from audit.unpack import unpack_and_parse
from pgolf.errors import InputError
from pgolf.logs import parse_log
from pgolf.submission import normalize_track, read_submission, track_of_path


@dataclass
class SourceFile:
    """One .py file: `text` is the fully unpacked source; line numbers refer to it."""

    path: str
    text: str
    layers: list[str]
    tree: ast.Module | None
    syntax_error: str | None
    raw_size: int
    blobs: list[Any] = field(default_factory=list)
    raw_text: str = ""
    unpack_problems: list[str] = field(default_factory=list)
    truncated: bool = False
    syntax_error_line: int | None = None
    # lines whose f-strings were blanked so the running Python could parse the file (PEP 701)
    lenient_lines: list[int] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def excerpt(self, line: int | None, context: int = 1) -> str | None:
        if not line:
            return None
        lines = self.lines
        if not 1 <= line <= len(lines):
            return None
        lo, hi = max(1, line - context), min(len(lines), line + context)
        width = len(str(hi))
        return "\n".join(
            f"{n:>{width}}{'>' if n == line else ' '} {lines[n - 1][:200]}"
            for n in range(lo, hi + 1)
        )


@dataclass(frozen=True)
class SelfAudit:
    """A legality note the folder ships itself (an input to judge, never trusted)."""

    file: str
    line: int | None
    conclusion: str | None
    claims_legal: bool


@dataclass
class AuditContext:
    folder: Path
    files: dict[str, FolderFile]
    sources: dict[str, SourceFile]
    logs: list[Any]  # pgolf.logs.RunLog
    submission: dict[str, Any] | None
    submission_problems: list[str]
    readme: str | None
    config: dict[str, str]
    cache: dict[str, Any] = field(default_factory=dict)
    # Files skipped while collecting: (relative path, problem).
    scan_problems: list[tuple[str, str]] = field(default_factory=list)
    self_audits: list[SelfAudit] = field(default_factory=list)
    readme_config: dict[str, str] = field(default_factory=dict)
    # where each effective-config key came from: logs, README command, README settings,
    # config.json, or the caller (fixtures)
    config_origin: dict[str, str] = field(default_factory=dict)
    log_problems: list[tuple[str, str]] = field(default_factory=list)

    def relpath(self, path: Any) -> str:
        """A file path as reported: relative to the folder where possible."""
        p = Path(str(path))
        try:
            return p.resolve().relative_to(self.folder).as_posix()
        except (ValueError, OSError):
            return p.as_posix()

    def log_line(self, log: Any, patterns: Any) -> tuple[int | None, str | None]:
        """(line number, text) of the last line of a log matching the first pattern that hits.

        Streams the file (logs can be huge); cached per (log, patterns).
        """
        key = ("log_line", id(log), id(patterns))
        if key in self.cache:
            return self.cache[key]
        hits: list[tuple[int, str] | None] = [None] * len(patterns)
        try:
            with (self.folder / self.relpath(log.path)).open("rb") as fh:
                for n, raw in enumerate(fh, start=1):
                    line = raw[:4096].decode("utf-8", errors="replace").strip()
                    for i, pat in enumerate(patterns):
                        if pat.search(line):
                            hits[i] = (n, line[:300])
        except OSError:
            pass
        found = next((h for h in hits if h is not None), (None, None))
        self.cache[key] = found
        return found

    def flag(self, key: str, default: bool = False) -> bool:
        """True if the effective configuration switches `key` on (1/true/yes/on)."""
        value = self.config.get(key.upper())
        if value is None:
            return default
        return value.strip().strip("'\"").lower() in {"1", "true", "yes", "on"}

    @property
    def track(self) -> str | None:
        """The claim's track: its own statement, else the folder path, else the README's words."""
        return self.cache.get("track") if "track" in self.cache else _infer_track(self)

    @property
    def is_record_track(self) -> bool:
        """Record track unless the claim says otherwise (records are the strict case)."""
        return self.track != facts.NON_RECORD_TRACK

    def claim_runs(self, *, headline: bool = False) -> list[Any]:
        """The runs behind the claim: those matching a claimed per-seed score, else every run.

        Folders often ship ablation or exploratory logs next to the claimed seeds; caps and
        statistics judge the claimed runs, and report the others as notes. With `headline`,
        a claim without per-seed scores picks the runs that match its headline score (a
        single-run claim); statistics never do, a mean may equal one run by chance.
        """
        runs = self.runs()
        claimed = list(per_seed(self.submission, "val_bpb").values())
        if not claimed and headline:
            # A single-run claim: the headline score identifies its log.
            score = num((self.submission or {}).get("val_bpb"))
            if score is not None:
                claimed = [score]
        picked = [
            lg
            for lg in runs
            if any(abs(float(lg.val_bpb) - c) <= facts.CLAIM_MATCH_TOLERANCE for c in claimed)
        ]
        if not picked or (len(claimed) == 1 and len(picked) == len(runs)):
            return runs
        return picked

    def runs(self) -> list[Any]:
        """Logs with a final val_bpb, one per run (a seed logged twice counts once)."""
        seen: dict[tuple[Any, float], Any] = {}
        ordered = sorted(self.logs, key=_log_preference)
        for log in ordered:
            bpb = getattr(log, "val_bpb", None)
            if bpb is None or (isinstance(bpb, float) and math.isnan(bpb)):
                continue
            key = (getattr(log, "seed", None), round(float(bpb), 8))
            seen.setdefault(key, log)
        return sorted(seen.values(), key=lambda lg: str(lg.path))


def _log_preference(log: Any) -> tuple[int, int, str]:
    name = Path(str(log.path)).name
    return (0 if name.startswith("train") else 1, 0 if name.endswith(".log") else 1, name)


# ---------------------------------------------------------------------------------------------
# Building


def build_context(folder: Path, *, config: Mapping[str, str] | None = None) -> AuditContext:
    """Read a folder into an AuditContext. Raises InputError only if the folder is unusable.

    `config` entries (e.g. from fixtures' `# pgolf-env:` lines) override everything else.
    """
    scan = scan_folder(folder)
    files = {f.rel: f for f in scan.files}
    ctx = AuditContext(
        folder=scan.root,
        files=files,
        sources={},
        logs=[],
        submission=None,
        submission_problems=[],
        readme=None,
        config={},
        scan_problems=list(scan.problems),
    )
    _load_sources(ctx, scan)
    _load_logs(ctx, scan)
    _load_submission(ctx)
    _load_readme(ctx)
    _load_self_audits(ctx)
    # lowest priority first: settings listed in config.json / README bullets, then the
    # README run command, then the logged hyperparameter dump, then the caller
    merged: dict[str, str] = {}
    origin: dict[str, str] = {}
    for where, values in (
        ("config.json", _folder_config_json(ctx)),
        (
            "README settings",
            {**readme_block_settings(ctx.readme or ""), **readme_settings(ctx.readme or "")},
        ),
        ("README command", ctx.readme_config),
    ):
        merged.update(values)
        origin.update(dict.fromkeys(values, where))
    for log in ctx.runs() or ctx.logs:
        for key, value in (getattr(log, "hyperparams", None) or {}).items():
            merged[str(key).upper()] = str(value)
            origin[str(key).upper()] = f"log {ctx.relpath(log.path)}"
        break
    if config:
        merged.update({k.upper(): str(v) for k, v in config.items()})
        origin.update(dict.fromkeys((k.upper() for k in config), "given"))
    ctx.config = merged
    ctx.config_origin = origin
    ctx.cache["track"] = _infer_track(ctx)
    return ctx


def parse_source(rel: str, raw: str, raw_size: int, truncated: bool = False) -> SourceFile:
    text, layers, blobs, problems, tree = _unpack(raw)
    error: str | None = None
    error_line: int | None = None
    lenient_lines: list[int] = []
    try:
        if tree is None:  # the unpacker parsed the text already when it could
            tree = ast.parse(text, filename=rel)
    except SyntaxError as exc:
        error, error_line = f"line {exc.lineno}: {exc.msg}", exc.lineno
        from audit.lenient import lenient_parse

        retry = lenient_parse(text, filename=rel)
        if retry.tree is not None:
            tree, lenient_lines, error, error_line = retry.tree, retry.repaired_lines, None, None
    except (ValueError, RecursionError, MemoryError) as exc:
        error = f"cannot parse: {type(exc).__name__}: {exc}"[:300]
    return SourceFile(
        path=rel,
        text=text,
        layers=layers,
        tree=tree,
        syntax_error=error,
        raw_size=raw_size,
        blobs=blobs,
        raw_text=raw,
        unpack_problems=problems,
        truncated=truncated,
        syntax_error_line=error_line,
        lenient_lines=lenient_lines,
    )


def _unpack(raw: str) -> tuple[str, list[str], list[Any], list[str], ast.Module | None]:
    try:
        result, tree = unpack_and_parse(raw)
    except Exception as exc:  # a bug in the unpacker must not abort the audit
        return raw, [], [], [f"unpacker failed: {type(exc).__name__}: {exc}"[:300]], None
    return result.text, result.layers, result.blobs, result.problems, tree


def _load_sources(ctx: AuditContext, scan: FolderScan) -> None:
    for f in scan.files:
        if not f.rel.endswith(".py"):
            continue
        try:
            raw, truncated = read_text(f, facts.MAX_SOURCE_BYTES)
        except OSError as exc:
            ctx.scan_problems.append((f.rel, f"cannot read: {exc.strerror or exc}"))
            continue
        ctx.sources[f.rel] = parse_source(f.rel, raw, f.size, truncated)
        if truncated:
            ctx.scan_problems.append(
                (f.rel, f"larger than {facts.MAX_SOURCE_BYTES} bytes, only the start was analysed")
            )


def looks_like_log(f: FolderFile) -> bool:
    if f.binary or not any(Path(f.rel).match(g) for g in facts.LOG_GLOBS):
        return False
    try:
        head = read_head(f, facts.LOG_SIGNATURE_WINDOW)
    except OSError:
        return False
    return any(p.search(head) for p in facts.LOG_SIGNATURES)


def _load_logs(ctx: AuditContext, scan: FolderScan) -> None:
    for f in scan.files:
        if not looks_like_log(f):
            continue
        try:
            log = parse_log(f.path)
        except InputError as exc:
            ctx.log_problems.append((f.rel, str(exc.message)))
            continue
        except Exception as exc:  # the parser must never abort an audit
            ctx.log_problems.append((f.rel, f"log parser failed: {type(exc).__name__}: {exc}"))
            continue
        ctx.logs.append(log)


def _load_submission(ctx: AuditContext) -> None:
    f = ctx.files.get("submission.json")
    if f is None:  # e.g. submission_binary.json: read it, PG101 still names the file
        variants = [r for r in ctx.files if re.fullmatch(r"submission[\w.-]*\.json", r)]
        if not variants:
            return
        f = ctx.files[sorted(variants)[0]]
    if f.size > facts.MAX_SUBMISSION_BYTES:
        ctx.submission_problems = [
            f"{f.rel} is {f.size:,} bytes: too large to be a claim, not read"
        ]
        return
    try:
        data, problems = read_submission(f.path)
    except Exception as exc:  # the reader raises InputError; anything else is reported too
        ctx.submission_problems = [f"cannot read: {getattr(exc, 'message', exc)}"]
        return
    # An empty dict means nothing could be read (e.g. invalid JSON).
    ctx.submission = data if isinstance(data, dict) and data else None
    ctx.submission_problems = [str(p) for p in problems]


_NON_RECORD_WORDS = re.compile(r"non[-_ ]?record|unlimited[- ]compute|not a record", re.I)


def claimed_track(ctx: AuditContext) -> str | None:
    """The track the claim states: "non-record" in its name, else its `track`."""
    sub = ctx.submission or {}
    # The name comes first: the reader fills a missing `track` from the folder path, and a
    # "Non-record: ..." title is the author's own, more specific statement.
    if _NON_RECORD_WORDS.search(str(sub.get("name") or "")):
        return facts.NON_RECORD_TRACK
    return normalize_track(sub.get("track"))


def path_track(ctx: AuditContext) -> str | None:
    """The track the folder's path puts the claim in (`records/track_.../`), if any."""
    return track_of_path(ctx.folder)


def _infer_track(ctx: AuditContext) -> str | None:
    # The claimant's own words come before the folder path: maintainers judge a submission
    # named "Non-record: ..." as a non-record entry even when it sits in the record folder
    # (PG108 reports the disagreement).
    track = claimed_track(ctx) or path_track(ctx)
    if track:
        return track
    blurb = str((ctx.submission or {}).get("blurb") or "")
    head = "\n".join((ctx.readme or "").splitlines()[:40])
    if _NON_RECORD_WORDS.search(blurb) or _NON_RECORD_WORDS.search(head):
        return facts.NON_RECORD_TRACK
    return None


def _load_readme(ctx: AuditContext) -> None:
    for name in ("README.md", "readme.md", "README.MD", "README.txt", "README"):
        f = ctx.files.get(name)
        if f is not None and not f.binary:
            try:
                ctx.readme, _ = read_text(f, 4 << 20)
            except OSError:
                continue
            ctx.readme_config = readme_env(ctx.readme)
            return


_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
_COMMAND_HINT = re.compile(r"\b(torchrun|python3?|train_gpt|accelerate|srun|bash|sh)\b")


def readme_env(text: str) -> dict[str, str]:
    """Env assignments of run commands: `KEY=V torchrun ...`, `export KEY=V`, `env KEY=V python`."""
    out: dict[str, str] = {}
    joined = re.sub(r"\\\r?\n", " ", text)
    for raw_line in joined.splitlines():
        line = raw_line.strip().lstrip("$>").strip()
        if "=" not in line:
            continue
        try:
            tokens = shlex.split(line, comments=False, posix=True)
        except ValueError:
            tokens = line.split()
        if not tokens:
            continue
        if tokens[0] == "export":
            for tok in tokens[1:]:
                m = _ASSIGN.match(tok)
                if m and m.group(1).isupper():
                    out[m.group(1)] = m.group(2)
            continue
        if tokens[0] == "env":
            tokens = tokens[1:]
        assigns: list[tuple[str, str]] = []
        rest = 0
        for i, tok in enumerate(tokens):
            m = _ASSIGN.match(tok)
            if not m:
                rest = i
                break
            assigns.append((m.group(1), m.group(2)))
        else:
            rest = len(tokens)
        command = " ".join(tokens[rest:])
        if assigns and _COMMAND_HINT.search(command):
            for key, value in assigns:
                if key.isupper():
                    out[key] = value
    return out


# a list item that is only `KEY=VALUE` in inline code (optionally with a short note after it)
_SETTING_ITEM = re.compile(r"^\s*[-*+]\s+`([A-Z][A-Z0-9_]*)=([^`\s]*)`\s*(?:$|[-:(\u2014#])")
_CONFIG_JSON = ("config.json", "hyperparameters.json", "hparams.json")


def readme_settings(text: str) -> dict[str, str]:
    """Settings listed as README bullets: `` - `PPM_ENABLED=1` ``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _SETTING_ITEM.match(line)
        if m:
            out[m.group(1)] = m.group(2).strip("'\"")
    return out


def _folder_config_json(ctx: AuditContext) -> dict[str, str]:
    """Upper-case scalar keys of a top-level config.json (env-style run configuration)."""
    for name in _CONFIG_JSON:
        f = ctx.files.get(name)
        if f is None or f.binary or f.size > 1 << 20:
            continue
        try:
            data = json.loads(read_text(f, 1 << 20)[0])
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        nested = [
            v
            for k, v in data.items()
            if k.lower() in ("env", "environment") and isinstance(v, dict)
        ]
        out: dict[str, str] = {}
        for d in [data, *nested]:
            for k, v in d.items():
                if isinstance(k, str) and re.fullmatch(r"[A-Z][A-Z0-9_]*", k):
                    if isinstance(v, bool):
                        out[k] = "1" if v else "0"
                    elif isinstance(v, int | float | str):
                        out[k] = str(v)
        return out
    return {}


def _load_self_audits(ctx: AuditContext) -> None:
    wanted = {n.lower() for n in facts.SELF_AUDIT_NAMES}
    for rel, f in ctx.files.items():
        if "/" in rel or rel.lower() not in wanted or f.binary:
            continue
        try:
            text, _ = read_text(f, 1 << 20)
        except OSError:
            continue
        if "generated by pgolf audit" in text or "`pgolf audit " in text:
            continue  # our own earlier report or the runner's placeholder, not a self-audit
        ctx.self_audits.append(_self_audit(rel, text))


def _self_audit(rel: str, text: str) -> SelfAudit:
    lines = text.splitlines()
    # Prefer the text under a "Verdict"/"Conclusion"/"Summary" heading.
    start, heading = 0, False
    for i, line in enumerate(lines):
        if re.match(r"^#+\s*(verdict|conclusion|summary|result)", line.strip(), re.I):
            start, heading = i + 1, True
            break
    for i in range(start, len(lines)):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            continue
        legal = facts.SELF_AUDIT_LEGAL.search(line) or (
            heading and facts.SELF_AUDIT_PASS.search(line)
        )
        if legal:
            negated = facts.SELF_AUDIT_NEGATED.search(line)
            return SelfAudit(rel, i + 1, line[:300], claims_legal=not negated)
    # No stated conclusion: a legality note that never admits a problem argues legality.
    return SelfAudit(rel, None, None, claims_legal=not facts.SELF_AUDIT_NEGATED.search(text))

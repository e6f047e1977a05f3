"""PG1xx: the record folder (R7), its logs and embedded source (R8), formats and packing (R9)."""

from __future__ import annotations

import difflib
import re
import struct
from collections.abc import Iterator
from pathlib import Path

from audit import facts, suppress
from audit.claims import num, per_seed
from audit.context import AuditContext, claimed_track, looks_like_log, path_track
from audit.model import Finding, Rule, Severity, register


@register
class AuditIncomplete(Rule):
    """A family of rules could not be loaded, so the audit is incomplete.

    ## What it does
    Reports rule modules of `audit/rules/` that failed to import; their rules did not run.
    This is a fault of the auditor installation, not of the folder.

    ## Why is this bad?
    A verdict computed without some rules may pass a folder that breaks a rule nobody
    checked; the report must say so.

    ## Illegal example
    ```text
    audit/rules/normalization.py raises ImportError when imported
    ```

    ## Legal example
    ```text
    every module of audit/rules/ imports
    ```

    ## References
    - docs/audit-development.md
    """

    id = "PG100"
    name = "audit-incomplete"
    condition = "R9"
    severity = Severity.WARNING
    message = "rule module audit.rules.{module} failed to load ({error}); its rules did not run"
    # Not a property of a folder: exempt from the folder fixtures (tested in the engine tests).
    internal = True

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        from audit.engine import load_errors

        for module, error in load_errors():
            yield self.finding(module=module, error=error)


@register
class MissingRequiredFile(Rule):
    """A record folder lacks a file every claim must ship (code, claim, README, logs).

    ## What it does
    Checks that the folder holds `train_gpt.py`, `submission.json`, `README.md` and at least
    one training log (a `*.log`/`*.txt` file with training or metric lines).

    ## Why is this bad?
    Without the exact code, the claim and one log per seed nobody can check or reproduce the
    result (R7). A folder without any Python code is an error; missing or renamed files are
    warnings (older folders use other names, e.g. `submission_binary.json`).

    ## Illegal example
    ```text
    records/track_10min_16mb/2026-05-01_Idea/
      train_gpt.py
      README.md          # no submission.json, no logs
    ```

    ## Legal example
    ```text
    records/track_10min_16mb/2026-05-01_Idea/
      README.md  submission.json  train_gpt.py
      train_seed42.log  train_seed314.log  train_seed999.log
    ```

    ## References
    - RULES.md R7 (docs/rules.md): record folder layout.
    """

    id = "PG101"
    name = "missing-required-file"
    condition = "R7"
    severity = Severity.WARNING
    message = "missing {what}: {why}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        top = {rel.lower(): rel for rel in ctx.files if "/" not in rel}
        run_folder = "run.json" in top  # a `pgolf run` folder: README comes with packaging
        has_code = any(rel.endswith(".py") for rel in ctx.files)
        for name, _rule, severity, why in facts.REQUIRED_FILES:
            if name.lower() in top:
                continue
            sev = Severity(severity)
            stem = Path(name).stem.lower()
            # Shipped under another name (submission_binary.json, train_gpt_cuda.py) is named.
            variants = sorted(r for k, r in top.items() if k.startswith(stem) and k != name.lower())
            if name == "train_gpt.py" and not has_code:
                sev = Severity(facts.NO_CODE_SEVERITY)
            if name == "README.md" and run_folder:
                sev = Severity.INFO
            also = f" (found {', '.join(variants[:3])})" if variants else ""
            yield self.finding(severity=sev, what=name, why=why + also)
        if not any(looks_like_log(f) for f in ctx.files.values()):
            yield self.finding(
                severity=Severity.WARNING,
                what="training log",
                why="no *.log/*.txt with training or metric lines",
            )


@register
class SubmissionSchema(Rule):
    """submission.json is not valid JSON or lacks required fields.

    ## What it does
    Reads `submission.json` leniently (legacy key spellings accepted) and reports invalid
    JSON (error) and missing required fields `author`, `github_id`, `name`, `val_bpb`, `date`,
    `track` (warning).

    ## Why is this bad?
    The claim is what the leaderboard records; a claim that cannot be read, or that does not
    say who claims what score on which track, cannot be judged (R7).

    ## Illegal example
    ```json
    {"author": "me", "val_bpb": 1.02,}
    ```

    ## Legal example
    ```json
    {"author": "Ada", "github_id": "ada", "name": "Idea", "val_bpb": 1.0213,
     "date": "2026-05-01", "track": "track_10min_16mb"}
    ```

    ## References
    - RULES.md R7 (docs/rules.md): required submission fields.
    - pgolf/schemas/submission.schema.json
    """

    id = "PG102"
    name = "submission-schema"
    condition = "R7"
    severity = Severity.WARNING
    message = "submission.json: {problem}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        f = ctx.files.get("submission.json")
        if f is None:
            return
        if ctx.submission is None:
            problem = "; ".join(ctx.submission_problems) or "could not be read"
            yield self.finding(file="submission.json", severity=Severity.ERROR, problem=problem)
            return
        for p in ctx.submission_problems:
            sev = Severity.INFO if "'track'" in p or "`track`" in p else None
            yield self.finding(file="submission.json", severity=sev, problem=p)
        reported = " ".join(ctx.submission_problems)
        for key in facts.REQUIRED_FIELDS:
            if ctx.submission.get(key) in (None, "") and key not in reported:
                # A missing track is read as the (stricter) record track.
                sev = Severity.INFO if key == "track" else None
                yield self.finding(
                    file="submission.json", severity=sev, problem=f"missing field `{key}`"
                )


@register
class UnparseableSource(Rule):
    """A Python file does not parse after unpacking, so its code could not be audited.

    ## What it does
    Reports every `.py` file of the folder whose unpacked text is not valid Python, with the
    line of the syntax error.

    ## Why is this bad?
    Code that cannot be parsed cannot be checked by any code rule: the audit of C1-C4 and
    R4 is incomplete for that file (R9). Code that does not parse also cannot have produced
    the logs.

    ## Illegal example
    ```python
    # pgolf: not-auditable (a syntax error would stop the doc build)
    def main(:
        pass
    ```

    ## Legal example
    ```python
    def main():
        pass
    ```

    ## References
    - RULES.md R9 (docs/rules.md): unpack every layer before analysis.
    """

    id = "PG103"
    name = "unparseable-source"
    condition = "R9"
    severity = Severity.WARNING
    message = "{path} does not parse ({error}); its code was not audited"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        for rel, src in ctx.sources.items():
            if src.syntax_error:
                # the script that produced the score must be audited: not parsing it is an error
                main = _is_main_script(ctx, rel)
                yield self.finding(
                    file=rel,
                    line=src.syntax_error_line,
                    severity=Severity.ERROR if main else None,
                    message=(
                        f"{rel} does not parse ({src.syntax_error}); the main script could not"
                        " be audited"
                        if main
                        else None
                    ),
                    path=rel,
                    error=src.syntax_error,
                )
            elif getattr(src, "lenient_lines", None):
                lines = ", ".join(str(n) for n in src.lenient_lines[:8])
                yield self.finding(
                    file=rel,
                    line=src.lenient_lines[0],
                    severity=Severity.INFO,
                    message=(
                        f"{rel} needs a newer Python parser (PEP 701 f-strings); parsed leniently"
                        f" with the f-strings on line(s) {lines} blanked, everything else audited"
                    ),
                    path=rel,
                    error="",
                )


def _is_main_script(ctx: AuditContext, rel: str) -> bool:
    """The folder's training script: `train_gpt.py`, the only .py, or the one the README runs."""
    name = rel.rsplit("/", 1)[-1]
    if name == "train_gpt.py" or len(ctx.sources) == 1:
        return True
    readme = ctx.readme or ""
    return bool(re.search(r"(python3?|torchrun)[^\n`]*\b" + re.escape(name) + r"\b", readme))


@register
class SkippedFile(Rule):
    """A file of the folder was skipped or only partly read (escaping symlink, size, errors).

    ## What it does
    Reports files the collector refused to read: symlinks that leave the folder, broken
    links, unreadable files, logs the parser could not open, sources larger than the read cap.

    ## Why is this bad?
    A symlink out of the folder can make the audit read (or the evaluation use) files that
    are not part of the submission; anything skipped is not audited (R7).

    ## Illegal example
    ```text
    train_gpt.py -> /home/me/private/train_gpt.py   (symlink leaving the folder)
    ```

    ## Legal example
    ```text
    train_gpt.py   (a regular file inside the folder)
    ```

    ## References
    - RULES.md R7 (docs/rules.md).
    """

    id = "PG104"
    name = "skipped-file"
    condition = "R7"
    severity = Severity.WARNING
    message = "{path}: {problem}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        for rel, problem in ctx.scan_problems:
            sev = Severity.INFO if "only the start" in problem else Severity.WARNING
            yield self.finding(file=rel, path=rel, severity=sev, problem=problem)
        for rel, problem in ctx.log_problems:
            yield self.finding(
                file=rel or None, path=rel or "logs", problem=problem, severity=Severity.WARNING
            )


@register
class UnpackProblem(Rule):
    """A packed code layer could not be unpacked, or holds foreign source that was not analysed.

    ## What it does
    Reports problems of the unpacker (bad payload, decompression bomb, too many layers) as
    warnings, and embedded non-Python sources (e.g. C in a string) as notes: located, not
    analysed.

    ## Why is this bad?
    Packed code that cannot be unpacked statically cannot be audited; the evaluation might do
    anything in it (R9). A C source compiled at run time escapes the Python rules.

    ## Illegal example
    ```python
    # pgolf: not-auditable (needs a real broken payload)
    import lzma, base64
    exec(lzma.decompress(base64.b85decode("not a payload")))
    ```

    ## Legal example
    ```python
    import math
    print(math.pi)
    ```

    ## References
    - RULES.md R9 (docs/rules.md): unpack every layer; never execute submitted code.
    """

    id = "PG105"
    name = "unpack-problem"
    condition = "R9"
    severity = Severity.WARNING
    message = "{path}: {problem}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        for rel, src in ctx.sources.items():
            for p in src.unpack_problems:
                m = re.match(r"line (\d+):\s*", p)
                line = int(m.group(1)) if m else None
                yield self.finding(file=rel, path=rel, line=line, problem=p)
            for blob in src.blobs:
                lang = getattr(blob, "lang", None) or getattr(blob, "kind", "blob")
                if lang in ("python", "py"):
                    continue
                yield self.finding(
                    file=rel,
                    path=rel,
                    line=getattr(blob, "start_line", None),
                    severity=Severity.INFO,
                    problem=(
                        f"embedded {lang} source ({getattr(blob, 'size', '?')} bytes) located, "
                        "not analysed"
                    ),
                    evidence=(getattr(blob, "preview", None) or None),
                )


@register
class SourceLineCap(Rule):
    """train_gpt.py is longer than the 1500-line convention.

    ## What it does
    Counts the lines of the shipped `train_gpt.py` (as shipped, before unpacking).

    ## Why is this bad?
    Records keep `train_gpt.py` under 1500 lines by convention so that reviewers can read it
    (R7). This is a note, not a violation.

    ## Illegal example
    ```text
    train_gpt.py: 2400 lines
    ```

    ## Legal example
    ```text
    train_gpt.py: 1180 lines
    ```

    ## References
    - RULES.md R7 (docs/rules.md).
    """

    id = "PG106"
    name = "source-line-cap"
    condition = "R7"
    severity = Severity.INFO
    message = "train_gpt.py has {n} lines (convention: <= {cap})"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        src = ctx.sources.get("train_gpt.py")
        if src is None:
            return
        n = src.raw_text.count("\n") + (0 if src.raw_text.endswith("\n") else 1)
        if n > facts.MAX_SOURCE_LINES:
            yield self.finding(file="train_gpt.py", n=n, cap=facts.MAX_SOURCE_LINES)


@register
class UnjustifiedSuppression(Rule):
    """A suppression without a justification (it is ignored).

    ## What it does
    Reports `# pgolf: allow PGxxx` comments without `-- justification`, and entries of
    `pgolf-audit.json` without a `justification`.

    ## Why is this bad?
    A finding may only be silenced with a reason a maintainer can check; an unexplained
    suppression is ignored and reported (R7).

    ## Illegal example
    ```python
    # pgolf: not-auditable (needs a finding to suppress)
    p = mix[target]  # pgolf: allow PG501
    ```

    ## Legal example
    ```python
    # pgolf: not-auditable (needs a finding to suppress)
    p = mix[target]  # pgolf: allow PG501 -- mix is a full normalized distribution
    ```

    ## References
    - docs/audit.md, section Suppression.
    """

    id = "PG107"
    name = "unjustified-suppression"
    condition = "R7"
    severity = Severity.WARNING
    message = "{problem}; it was not applied"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        for file, line, problem in suppress.collect(ctx).problems:
            yield self.finding(file=file, line=line, problem=problem)


@register
class TrackMismatch(Rule):
    """The folder's track and the track the claim states disagree.

    ## What it does
    Compares the track of the folder path (`records/track_10min_16mb/...` or
    `records/track_non_record_16mb/...`) with the track the claim states ("non-record" in the
    `name` of submission.json, else its `track`). The claim's own statement decides which
    caps apply (a "Non-record: ..." submission is judged as one), and this warning says the
    folder is misplaced.

    ## Why is this bad?
    Record-track caps (R1-R3) and statistics (R6) apply to record claims only; a folder in the
    record track that calls itself non-record (or the reverse) leaves maintainers to guess
    which rules the author meant to meet (R7).

    ## Illegal example
    ```text
    records/track_10min_16mb/2026-05-01_Idea/submission.json:
      {"name": "Non-record: an idea that misses the time cap", ...}
    ```

    ## Legal example
    ```text
    records/track_non_record_16mb/2026-05-01_Idea/submission.json:
      {"name": "Non-record: an idea that misses the time cap", ...}
    ```

    ## References
    - RULES.md "Tracks" and R7 (docs/rules.md).
    """

    id = "PG108"
    name = "track-mismatch"
    condition = "R7"
    severity = Severity.WARNING
    message = (
        "the folder sits in {path} but submission.json states {claimed}; the audit applies "
        "the claim's own track ({claimed}) and the folder belongs in records/{claimed}/"
    )

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        in_path, stated = path_track(ctx), claimed_track(ctx)
        if in_path and stated and in_path != stated:
            yield self.finding(file="submission.json", path=in_path, claimed=stated)


def _normalize(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.replace("\r\n", "\n").strip("\n").split("\n")]


@register
class EmbeddedSourceMismatch(Rule):
    """The source printed at the top of a log differs from the shipped train_gpt.py.

    ## What it does
    Compares the source each log embeds (before its line of 100 `=`) with the shipped
    `train_gpt.py` (as shipped and unpacked; trailing whitespace ignored) and shows a unified
    diff.

    ## Why is this bad?
    The logs are the evidence of the score; they prove nothing about code that differs from
    the code that produced them (R8).

    ## Illegal example
    ```text
    train_seed42.log embeds `lr = 0.04`; train_gpt.py ships `lr = 0.05`
    ```

    ## Legal example
    ```text
    train_seed42.log embeds exactly the shipped train_gpt.py
    ```

    ## References
    - RULES.md R8 (docs/rules.md): embedded source must match.
    """

    id = "PG111"
    name = "embedded-source-mismatch"
    condition = "R8"
    severity = Severity.WARNING
    message = "{log} embeds a source that differs from train_gpt.py ({n} lines differ)"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        src = ctx.sources.get("train_gpt.py")
        if src is None:
            return
        shipped = [_normalize(src.raw_text), _normalize(src.text)]
        seen: set[str] = set()
        for log in ctx.logs:
            emb = getattr(log, "embedded_source", None)
            if not emb or not emb.strip():
                continue
            e = _normalize(emb)
            if any(e == s for s in shipped) or "\n".join(e) in seen:
                continue
            seen.add("\n".join(e))
            diff = list(
                difflib.unified_diff(
                    shipped[0], e, "train_gpt.py", ctx.relpath(log.path), n=1, lineterm=""
                )
            )
            changed = sum(1 for d in diff if d[:1] in "+-" and not d.startswith(("+++", "---")))
            yield self.finding(
                file=ctx.relpath(log.path),
                line=1,
                log=ctx.relpath(log.path),
                n=changed,
                evidence="\n".join(diff[:120]),
            )


@register
class ClaimedVsLogged(Rule):
    """A per-seed score claimed in submission.json is not what that seed's log reports.

    ## What it does
    Compares per-seed claims (`seed_results`, `val_bpb_by_seed`, ...) with the last val_bpb
    metric line of the log of the same seed (tolerance 1e-4), and reports claimed seeds
    that have no log.

    ## Why is this bad?
    The last metric line of the log is the reported score (R8); a claim that differs from it,
    or that rests on a run without a log, is not supported by the evidence.

    ## Illegal example
    ```text
    submission.json: "val_bpb_by_seed": {"42": 1.0100}
    train_seed42.log: final_int8_zlib_roundtrip_exact val_loss:2.3 val_bpb:1.0300
    ```

    ## Legal example
    ```text
    submission.json: "val_bpb_by_seed": {"42": 1.0300}
    train_seed42.log: final_int8_zlib_roundtrip_exact val_loss:2.3 val_bpb:1.0300
    ```

    ## References
    - RULES.md R8 (docs/rules.md): the last val_bpb metric line is the score.
    """

    id = "PG112"
    name = "claimed-vs-logged"
    condition = "R8"
    severity = Severity.WARNING
    message = "{what}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        claims = per_seed(ctx.submission, "val_bpb")
        if not claims:
            return
        by_seed: dict[int, list[float]] = {}
        for log in ctx.runs():
            if log.seed is not None and log.val_bpb is not None:
                by_seed.setdefault(int(log.seed), []).append(float(log.val_bpb))
        for seed, claimed in sorted(claims.items()):
            logged = by_seed.get(seed)
            if not logged:
                yield self.finding(
                    file="submission.json",
                    what=f"seed {seed}: claimed val_bpb {claimed:.8f} has no log with that seed",
                )
            elif all(abs(v - claimed) > facts.MEAN_TOLERANCE for v in logged):
                shown = ", ".join(f"{v:.8f}" for v in logged)
                yield self.finding(
                    file="submission.json",
                    what=f"seed {seed}: claimed val_bpb {claimed:.8f} but its log reports {shown}",
                )


@register
class LogWithoutScore(Rule):
    """A training log has no final val_bpb metric line.

    ## What it does
    Reports logs that look like training logs but end without a val_bpb metric line
    (crashed, cut, or still running).

    ## Why is this bad?
    A seed without a final score cannot support the claim; shipping it next to complete runs
    hints at selection among runs (R8). A note unless no log has a score.

    ## Illegal example
    ```text
    train_seed314.log: ... step:1800/20000 train_loss:2.51 (no final metric line)
    ```

    ## Legal example
    ```text
    train_seed314.log: ... final_int8_zlib_roundtrip_exact val_loss:2.3 val_bpb:1.03
    ```

    ## References
    - RULES.md R8 (docs/rules.md).
    """

    id = "PG113"
    name = "log-without-score"
    condition = "R8"
    severity = Severity.INFO
    message = "{log} has no final val_bpb metric line"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        scored = [lg for lg in ctx.logs if num(getattr(lg, "val_bpb", None)) is not None]
        for log in ctx.logs:
            if num(getattr(log, "val_bpb", None)) is None:
                sev = Severity.WARNING if not scored else Severity.INFO
                rel = ctx.relpath(log.path)
                yield self.finding(file=rel, severity=sev, log=rel)


_SHARD_NAME = re.compile(r"fineweb_(train|val)(_bytes)?_\d+\.bin$")


@register
class ShardFormat(Rule):
    """A shipped data shard does not have the official header or its size is inconsistent.

    ## What it does
    For every `fineweb_*_NNNNNN.bin` shard in the folder, checks the 256-int32 header (magic
    20240520, version 1) and that the token count matches the file size (uint16 tokens).

    ## Why is this bad?
    A malformed shard is read differently by different loaders; evaluation on it does not
    measure the official validation set (R9).

    ## Illegal example
    ```text
    fineweb_val_000000.bin: magic 0, version 7
    ```

    ## Legal example
    ```text
    fineweb_val_000000.bin: magic 20240520, version 1, 1000 tokens, 3024 bytes
    ```

    ## References
    - RULES.md R9 (docs/rules.md): shard format.
    """

    id = "PG121"
    name = "shard-format"
    condition = "R9"
    severity = Severity.WARNING
    message = "{path}: {problem}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        for rel, f in ctx.files.items():
            m = _SHARD_NAME.search(rel)
            if not m or m.group(2):  # byte sidecars have their own layout
                continue
            header_bytes = facts.SHARD_HEADER_INTS * 4
            try:
                with f.path.open("rb") as fh:
                    head = fh.read(header_bytes)
            except OSError as exc:
                yield self.finding(file=rel, path=rel, problem=f"cannot read ({exc.strerror})")
                continue
            if len(head) < header_bytes:
                yield self.finding(file=rel, path=rel, problem="shorter than the 1024-byte header")
                continue
            magic, version, ntok = struct.unpack("<3i", head[:12])
            if magic != facts.SHARD_MAGIC or version != facts.SHARD_VERSION:
                yield self.finding(
                    file=rel,
                    path=rel,
                    problem=f"header magic {magic}, version {version} (expected "
                    f"{facts.SHARD_MAGIC}, {facts.SHARD_VERSION})",
                )
            elif f.size != header_bytes + 2 * ntok:
                yield self.finding(
                    file=rel,
                    path=rel,
                    problem=f"header says {ntok} tokens but the file has "
                    f"{(f.size - header_bytes) / 2:g} tokens of payload",
                )

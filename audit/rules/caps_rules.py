"""PG2xx: caps. R1 artifact bytes (recomputed from files and logs, and no network at
evaluation), R2 training time and R3 evaluation time from the logs."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit import astcache, facts
from audit.claims import claimed_bytes, claimed_times, num
from audit.context import AuditContext
from audit.model import Finding, Rule, Severity, register
from audit.pyast import dotted
from audit.rules._valwork import pre_artifact_phases, train_work, val_work

CAP = int(facts.BYTES_CAP.limit)
ARTIFACT_SUFFIXES = (".ptz", ".pt", ".pth", ".int8", ".zst", ".xz", ".lzma")


def shipped_code_bytes(ctx: AuditContext) -> int:
    """Bytes of the code as shipped: every .py of the folder at its (packed) file size."""
    return sum(f.size for rel, f in ctx.files.items() if rel.endswith(".py"))


def _artifacts(ctx: AuditContext) -> list[tuple[str, int]]:
    """Serialized model files shipped in the folder (torch files always, others named model)."""
    out = []
    for rel, f in ctx.files.items():
        p = Path(rel)
        if p.suffix in (".pt", ".ptz", ".pth") or (
            p.suffix in (*ARTIFACT_SUFFIXES, ".bin") and "model" in p.name.lower()
        ):
            out.append((rel, f.size))
    return out


@register
class ArtifactOverCap(Rule):
    """The artifact (code + compressed model) is larger than 16,000,000 bytes.

    ## What it does
    Checks every log's `Total submission size ...` (the last one), every byte total the claim
    states, and a recomputation from the folder: the shipped model artifact (if present) plus
    every `.py` file at its shipped size, against the decimal cap 16,000,000.

    ## Why is this bad?
    The cap is the challenge (R1): decimal bytes, not MiB; code counts as shipped.

    ## Illegal example
    ```text
    train_seed42.log: Total submission size int8+zlib: 16000412 bytes
    ```

    ## Legal example
    ```text
    train_seed42.log: Total submission size int8+zlib: 15999000 bytes
    ```

    ## References
    - RULES.md R1 (docs/rules.md): 16,000,000 decimal bytes.
    """

    id = "PG201"
    name = "artifact-over-cap"
    condition = "R1"
    message = "{what} is {value:,} bytes, over the cap of 16,000,000"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        checked = False
        # Both tracks are 16 MB tracks, but non-record folders that miss the cap were accepted
        # as informative results: a warning there.
        sev = Severity.ERROR if ctx.is_record_track else Severity.WARNING
        claimed = {id(lg) for lg in ctx.claim_runs(headline=True)}
        for log in ctx.logs:
            total = num(getattr(log, "bytes_total", None))
            if total is None:
                continue
            checked = True
            if total > CAP:
                rel = ctx.relpath(log.path)
                aux = id(log) not in claimed
                line, text = ctx.log_line(log, facts.SIZE_LINES)
                yield self.finding(
                    file=rel,
                    line=line,
                    evidence=text,
                    severity=Severity.INFO if aux else sev,
                    what=f"{rel}: logged artifact" + (" (a log outside the claim)" if aux else ""),
                    value=int(total),
                )
        for key, value in claimed_bytes(ctx.submission):
            checked = True
            if value > CAP:
                yield self.finding(
                    file="submission.json", severity=sev, what=f"claimed `{key}`", value=int(value)
                )
        code = shipped_code_bytes(ctx)
        for rel, size in _artifacts(ctx):
            checked = True
            if size + code > CAP:
                yield self.finding(
                    file=rel,
                    severity=sev,
                    what=f"{rel} ({size:,}) + shipped code ({code:,})",
                    value=size + code,
                )
        if not checked:
            yield self.finding(
                severity=Severity.INFO,
                message="artifact size could not be checked: no log, claim or artifact states it",
            )


@register
class BytesClaimBelowLogs(Rule):
    """The claimed byte total is smaller than what the logs report.

    ## What it does
    Compares byte totals claimed in `submission.json` (top level and per seed) with the
    logged totals: the top-level claim must be at least the largest logged artifact, a
    per-seed claim must equal that seed's log.

    ## Why is this bad?
    An understated size hides how close to (or over) the cap a run was (R1).

    ## Illegal example
    ```text
    submission.json: "bytes_total": 15990000
    train_seed42.log: Total submission size int8+zlib: 15999100 bytes
    ```

    ## Legal example
    ```text
    submission.json: "bytes_total": 15999100
    train_seed42.log: Total submission size int8+zlib: 15999100 bytes
    ```

    ## References
    - RULES.md R1 (docs/rules.md).
    """

    id = "PG202"
    name = "bytes-claim-below-logs"
    condition = "R1"
    severity = Severity.WARNING
    message = "claimed `{key}` = {claimed:,} bytes but {where} reports {logged:,} bytes"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        logged: list[tuple[int | None, int, str]] = []
        for log in ctx.runs():
            total = num(getattr(log, "bytes_total", None))
            if total is not None:
                logged.append((log.seed, int(total), ctx.relpath(log.path)))
        if not logged:
            return
        biggest = max(logged, key=lambda t: t[1])
        for key, value in claimed_bytes(ctx.submission):
            if key.startswith("seed "):
                seed = int(key.split()[1])
                same = [t for t in logged if t[0] == seed]
                if same and all(int(value) != t[1] for t in same):
                    yield self.finding(
                        file="submission.json",
                        key=key,
                        claimed=int(value),
                        where=same[0][2],
                        logged=same[0][1],
                    )
            elif int(value) < biggest[1] and key in ("bytes_total_max", "bytes_max"):
                yield self.finding(
                    file="submission.json",
                    key=key,
                    claimed=int(value),
                    where=biggest[2],
                    logged=biggest[1],
                )
            elif int(value) < min(t[1] for t in logged):
                small = min(logged, key=lambda t: t[1])
                yield self.finding(
                    file="submission.json", key=key, claimed=int(value), where=small[2],
                    logged=small[1],
                )  # fmt: skip


@register
class CodeCountedBelowShipped(Rule):
    """The logs count fewer code bytes than the folder ships.

    ## What it does
    Compares the code size a log counts (`Code size: N bytes`) with the size of the shipped
    `.py` files, and recomputes the total as logged model bytes + shipped code bytes. When
    the log counts its code compressed (`Code size (compressed)`) this is a note, otherwise a
    warning (saying whether the recomputed total is over the cap).

    ## Why is this bad?
    Code counts as shipped (R1): a total computed with fewer code bytes than the submission
    ships understates the artifact.

    ## Illegal example
    ```text
    train_seed42.log: Serialized model int8+zlib: 15990000 bytes / Code size: 9000 bytes
    train_gpt.py: 60000 bytes (total as shipped 16,050,000)
    ```

    ## Legal example
    ```text
    train_seed42.log: Serialized model int8+zlib: 15900000 bytes / Code size: 60000 bytes
    train_gpt.py: 60000 bytes
    ```

    ## References
    - RULES.md R1 (docs/rules.md): count the files as shipped.
    """

    id = "PG203"
    name = "code-counted-below-shipped"
    condition = "R1"
    severity = Severity.WARNING
    message = "{log} counts {counted:,} code bytes, the folder ships {shipped:,}{tail}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        shipped = shipped_code_bytes(ctx)
        if not shipped:
            return
        # One finding per counted code size (every seed of a claim usually shares it), on the
        # log whose recomputed total is largest.
        groups: dict[int, list[tuple[int | None, Any]]] = {}
        for log in ctx.runs():
            counted = num(getattr(log, "bytes_code", None))
            model = num(getattr(log, "bytes_model", None))
            if counted is None or counted >= shipped:
                continue
            recomputed = int(model) + shipped if model is not None else None
            groups.setdefault(int(counted), []).append((recomputed, log))
        for counted, items in sorted(groups.items()):
            recomputed, log = max(items, key=lambda t: t[0] or 0)
            compressed = _counts_compressed(ctx, log)
            over = recomputed is not None and recomputed > CAP
            # Logs of the time often counted the code at its compressed size without saying
            # so, and maintainers accepted that: over the cap this way is a warning.
            sev = Severity.INFO if compressed else Severity.WARNING
            tail = ""
            if recomputed:
                tail = f"; model + shipped code = {recomputed:,} bytes"
                tail += ", over the cap" if over and not compressed else ""
            if compressed:
                tail += " (the log counts the code compressed)"
            if len(items) > 1:
                tail += f"; same in {len(items) - 1} other log(s)"
            rel = ctx.relpath(log.path)
            yield self.finding(
                file=rel, severity=sev, log=rel, counted=counted, shipped=shipped, tail=tail
            )


def _counts_compressed(ctx: AuditContext, log: Any) -> bool:
    try:
        with (ctx.folder / ctx.relpath(log.path)).open("rb") as fh:
            head = fh.read(facts.MAX_TEXT_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return False
    return bool(facts.COMPRESSED_CODE_LINE.search(head))


def _phase_of(ctx: AuditContext, node: ast.AST) -> str:
    """Phase of a statement from audit.phases when available ("train" | "eval" | "unknown")."""
    try:
        from audit.phases import analyze

        value = analyze(ctx).phase_of(node)
    except Exception:  # the phase model is optional evidence; without it the call is "unknown"
        return "unknown"
    return value if isinstance(value, str) else "unknown"


@register
class NetworkAtEval(Rule):
    """The code downloads files or opens network connections.

    ## What it does
    Finds calls that reach the network (`urllib.request.urlopen`, `requests.get`,
    `hf_hub_download`, `snapshot_download`, `load_dataset`, `torch.hub.load`, sockets) and
    shell commands with `wget`/`curl`/`pip install` in the submitted code (a command string,
    or an argv list such as `[sys.executable, "-m", "pip", "install", ...]`). An error when the
    phase model places the call in evaluation, else a warning for review.

    ## Why is this bad?
    Everything the evaluation uses must be inside the 16,000,000-byte artifact (R1);
    downloading weights, tables or data at evaluation bypasses the cap.

    ## Illegal example
    ```python
    import urllib.request
    def load_tables():
        return urllib.request.urlopen("https://example.com/ngram.bin").read()
    ```

    ## Legal example
    ```python
    import zlib
    def load_tables(path):
        with open(path, "rb") as fh:
            return zlib.decompress(fh.read())
    ```

    ## References
    - RULES.md R1 (docs/rules.md): no downloads or network access at evaluation.
    """

    id = "PG204"
    name = "network-at-eval"
    condition = "R1"
    severity = Severity.WARNING
    message = "network access `{call}` in the submitted code{phase}"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        wanted = set(facts.NETWORK_CALLS)
        for rel, src in ctx.sources.items():
            if src.tree is None:
                continue
            # the ordered walk below (it names each call's function) only where a call hits
            if not any(
                type(n) is ast.Call and _network_hit(n, wanted)  # type: ignore[arg-type]
                for n in astcache.walk(src.tree)
            ):
                continue
            for fn_name, node in _calls(src.tree):
                hit = _network_hit(node, wanted)
                if hit is None:
                    continue
                phase = _phase_of(ctx, node)
                sev = Severity.ERROR if phase == "eval" else Severity.WARNING
                yield self.finding(
                    file=rel,
                    line=node.lineno,
                    function=fn_name,
                    severity=sev,
                    evidence=ast.get_source_segment(src.text, node),
                    call=hit,
                    phase=" at evaluation" if phase == "eval" else "",
                )


_SHELL_CALLS = frozenset(
    {
        "os.system",
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.Popen",
        "subprocess.check_output",
    }
)


def _network_hit(node: ast.Call, wanted: set[str]) -> str | None:
    """What makes a call network access: its name, or a shell command that downloads."""
    name = dotted(node.func)
    if name in wanted:
        return name
    if name in _SHELL_CALLS:
        # a command string, or an argv list (["wget", "https://..."]) read as one command
        words = [
            arg.value
            for arg in astcache.walk(node)
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
        ]
        for command in (*words, " ".join(words)):
            if facts.NETWORK_SHELL.search(command):
                return f"{name}({command[:60]!r})"
    return None


def _calls(tree: ast.Module) -> Iterator[tuple[str | None, ast.Call]]:
    def walk(node: ast.AST, fn: str | None) -> Iterator[tuple[str | None, ast.Call]]:
        for child in astcache.children(node):
            name = fn
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = child.name
            if isinstance(child, ast.Call):
                yield fn, child
            yield from walk(child, name)

    yield from walk(tree, None)


class _TimeCap(Rule):
    evidence_lines: tuple[re.Pattern[str], ...] = ()
    field: str = ""
    cap: facts.Cap = facts.TRAIN_TIME_CAP
    what: str = ""

    def _severity(
        self, ctx: AuditContext, value: float, in_claim: bool, all_over: bool = True
    ) -> Severity:
        if not ctx.is_record_track or not in_claim:
            return Severity.INFO
        if value <= self.cap.limit + facts.TIME_TOLERANCE_S:
            return Severity.INFO  # overshoot of the last step
        if ctx.submission is None and not all_over:
            return Severity.WARNING  # no claim says which of the runs are the record
        return Severity.ERROR

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        limit = self.cap.limit
        checked = False
        claimed = {id(lg) for lg in ctx.claim_runs(headline=True)}
        values = [num(getattr(lg, self.field, None)) for lg in ctx.runs()]
        known = [v for v in values if v is not None]
        all_over = bool(known) and all(v > limit + facts.TIME_TOLERANCE_S for v in known)
        for log in ctx.runs():
            value = num(getattr(log, self.field, None))
            if value is None:
                continue
            checked = True
            if value > limit:
                rel = ctx.relpath(log.path)
                in_claim = id(log) in claimed
                sev = self._severity(ctx, value, in_claim, all_over)
                note = "" if in_claim else " (a log outside the claim)"
                line, text = ctx.log_line(log, self.evidence_lines)
                yield self.finding(
                    file=rel,
                    line=line,
                    evidence=text,
                    severity=sev,
                    where=rel + note,
                    value=value,
                    what=self.what,
                )
        for key, value in claimed_times(ctx.submission, self.field):
            checked = True
            if value > limit:
                yield self.finding(
                    file="submission.json",
                    severity=self._severity(ctx, value, True),
                    where=f"claimed `{key}`",
                    value=value,
                    what=self.what,
                )
        if not checked and ctx.runs():
            yield self.finding(
                severity=Severity.INFO,
                message=f"{self.what} could not be checked: no log or claim states it",
            )


@register
class TrainTimeOverCap(_TimeCap):
    """Training took longer than 600 s.

    ## What it does
    Reads the training time of every run from its log (`train_time_total`, the stopping
    line, or the last progress line) and the claimed times, against the 600 s cap. An error
    on the record track; a note on the non-record track, for logs outside the claim (e.g.
    ablations), and for an overshoot of at most 5 s (the wallclock stop acts once per step).

    ## Why is this bad?
    Everything before the artifact is written counts towards the 10 minutes (R2): warmup,
    training, GPTQ calibration, table building.

    ## Illegal example
    ```text
    train_seed42.log: stopping_early: wallclock_cap train_time:612400ms step:2100/20000
    ```

    ## Legal example
    ```text
    train_seed42.log: stopping_early: wallclock_cap train_time:599843ms step:2014/20000
    ```

    ## References
    - RULES.md R2 (docs/rules.md).
    """

    id = "PG211"
    name = "train-time-over-cap"
    condition = "R2"
    message = "{where}: {what} {value:.1f} s is over the 600 s cap"
    field = "train_time_s"
    evidence_lines = facts.TRAIN_TIME_LINES
    cap = facts.TRAIN_TIME_CAP
    what = "training time"


@register
class EvalTimeOverCap(_TimeCap):
    """Evaluation took longer than 600 s.

    ## What it does
    Reads the evaluation time of every run from its log (`eval_time_total` or the final
    metric line's `eval_time`) and the claimed times, against the 600 s cap. An error on the
    record track; a note on the non-record track, for logs outside the claim, and for an
    overshoot of at most 5 s.

    ## Why is this bad?
    Everything after the artifact is loaded counts towards the evaluation budget (R3):
    dequantization, sliding windows, test-time training, caches, PPM.

    ## Illegal example
    ```text
    train_seed42.log: final_ppm val_loss:2.31 val_bpb:0.98 eval_time:640210ms
    ```

    ## Legal example
    ```text
    train_seed42.log: final_ppm val_loss:2.31 val_bpb:0.98 eval_time:502131ms
    ```

    ## References
    - RULES.md R3 (docs/rules.md).
    """

    id = "PG212"
    name = "eval-time-over-cap"
    condition = "R3"
    message = "{where}: {what} {value:.1f} s is over the 600 s cap"
    field = "eval_time_s"
    evidence_lines = facts.EVAL_TIME_LINES
    cap = facts.EVAL_TIME_CAP
    what = "evaluation time"


@register
class WorkBeforeArtifactOverCap(Rule):
    """Timed training work after the training loop pushes the time before the artifact over 600 s.

    ## What it does
    Reads the log between the end of the training loop (the wallclock stop or the last
    progress line) and the serialized artifact, and adds the timed phases it reports there
    (GPTQ/Hessian calibration, fine-tuning, table building; not diagnostic evaluations or
    the compression itself) to the logged training time. A warning when the sum is over 600 s
    by more than 5 s. Phases printed by code that works on validation data are evaluation
    work and count towards R3 instead (PG214).

    ## Why is this bad?
    Everything before the artifact is written counts towards the training budget (R2); a
    wallclock stop at 599 s followed by minutes of calibration or fine-tuning is over it.

    ## Illegal example
    ```text
    stopping_early: wallclock_cap train_time:588000ms step:4534/20000
    ngram_tables:built 12 orders in 96.0s
    Serialized model int6+brotli: 15931373 bytes
    ```

    ## Legal example
    ```text
    stopping_early: wallclock_cap train_time:590000ms step:4534/20000
    GPTQ:collected 67 Hessians in 4.0s
    Serialized model int6+brotli: 15931373 bytes
    ```

    ## References
    - RULES.md R2 (docs/rules.md): warmup, training, GPTQ calibration, table building and any
      fine-tuning before serialization count.
    """

    id = "PG213"
    name = "work-before-artifact-over-cap"
    condition = "R2"
    severity = Severity.WARNING
    message = (
        "{log}: {train:.1f} s of training + {extra:.1f} s of timed work before the artifact "
        "= {total:.1f} s, over the 600 s cap"
    )

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        if not ctx.is_record_track:
            return
        limit = facts.TRAIN_TIME_CAP.limit + facts.TIME_TOLERANCE_S
        for log in ctx.claim_runs(headline=True):
            train = num(getattr(log, "train_time_s", None))
            if train is None or train > limit:
                continue  # PG211 reports a loop that is itself over the cap
            work = train_work(pre_artifact_phases(ctx, log))
            extra = sum(w.seconds for w in work)
            if not work or train + extra <= limit:
                continue
            longest = max(work, key=lambda w: w.seconds)
            line, text = longest.line, longest.text
            rel = ctx.relpath(log.path)
            yield self.finding(
                file=rel,
                line=line,
                evidence=text,
                log=rel,
                train=train,
                extra=extra,
                total=train + extra,
            )


@register
class ValWorkOverEvalCap(_TimeCap):
    """Work on validation data before the artifact pushes the evaluation time over 600 s.

    ## What it does
    Finds the functions that work on validation data before the artifact is written (a
    gradient step on validation data, PG301/PG602; validation data handed to calibration,
    PG302), reads the lines they print between the end of the training loop and the artifact
    (and those their caller prints right after the call from a clock started just before it),
    and adds the durations to the logged evaluation time, once per function (a growing
    per-epoch clock is cumulative). Each added time is cited with its log line. An error on
    the record track when the sum is over 600 s by more than 5 s (PG212 reports a logged
    evaluation that is itself over the cap).

    ## Why is this bad?
    Training never sees validation data (R4), so work on it is evaluation work wherever the
    script runs it, and it counts towards the evaluation budget (R3): fine-tuning on the
    validation tokens for 520 s before serializing, then a 115 s sliding-window evaluation,
    is a 635 s evaluation.

    ## Illegal example
    ```text
    train_seed42.log:169  prequant_ttt:done total_time=523.0s   (printed by a function that
                          runs AdamW steps on val_tokens before torch.save)
    train_seed42.log:184  final_sliding_window val_loss:2.85 val_bpb:1.0397 eval_time:115343ms
    ```

    ## Legal example
    ```text
    train_seed42.log:169  finetune:done total_time=40.0s        (AdamW steps on train shards)
    train_seed42.log:184  final_sliding_window val_loss:2.85 val_bpb:1.0397 eval_time:515343ms
    ```

    ## References
    - RULES.md R3 and R4 (docs/rules.md): test-time training counts towards evaluation.
    """

    id = "PG214"
    name = "val-work-over-eval-cap"
    condition = "R3"
    message = (
        "{where}: {logged} + {extra:.1f} s of work on validation data before the artifact "
        "({added}) = {value:.1f} s of evaluation, over the 600 s cap"
    )
    cap = facts.EVAL_TIME_CAP

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        limit = self.cap.limit + facts.TIME_TOLERANCE_S
        claimed = {id(lg) for lg in ctx.claim_runs(headline=True)}
        for log in ctx.runs():
            logged = num(getattr(log, "eval_time_s", None))
            if logged is not None and logged > limit:
                continue  # PG212 reports an evaluation that is itself over the cap
            work = val_work(pre_artifact_phases(ctx, log))
            extra = sum(w.seconds for w in work)
            value = (logged or 0.0) + extra
            if not work or value <= self.cap.limit:
                continue
            rel = ctx.relpath(log.path)
            in_claim = id(log) in claimed
            added = ", ".join(
                f"`{w.val_function}` {w.seconds:.1f} s at line {w.line}" for w in work
            )
            eval_line, eval_text = ctx.log_line(log, facts.EVAL_TIME_LINES)
            cited = [f"{rel}:{w.line}: {w.text}" for w in work]
            if logged is not None and eval_line is not None:
                cited.append(f"{rel}:{eval_line}: {eval_text}")
            yield self.finding(
                file=rel,
                line=work[0].line,
                evidence="\n".join(cited),
                severity=self._severity(ctx, value, in_claim),
                where=rel + ("" if in_claim else " (a log outside the claim)"),
                logged=f"{logged:.1f} s of logged evaluation"
                if logged is not None
                else "no logged evaluation time",
                extra=extra,
                added=added,
                value=value,
            )

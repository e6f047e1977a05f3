"""run_probes: find the script, start the sandbox, run C1/C3/C2 and turn failures into findings."""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from audit.model import Finding
from audit.probes import c1, c2, c3
from audit.probes.client import ScorerClient
from audit.probes.measure import fmt
from audit.probes.result import ProbeReport, ProbeResult, ScorerFailed
from audit.probes.rules import FAILURE_RULES, NOT_MEASURED_RULES, ProbeNetworkAttempt
from audit.probes.sandbox import DEFAULT_MEMORY_MB, SandboxError, SandboxTimeout, ScorerProcess
from audit.probes.slices import resolve_slice
from pgolf.errors import InputError

DEFAULT_SLICE = 512
PROBES = (("C1", c1.NAME), ("C2", c2.NAME), ("C3", c3.NAME))
# Logged hyperparameters that name paths, runs or hardware of the original machine: never
# passed on (they change where or how fast the scorer runs, not what it computes).
_NOT_PASSED = {"DATA_PATH", "TOKENIZER_PATH", "RUN_ID", "SEED", "DEVICE", "COMPILE"}
_ENV_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")

Progress = Callable[[str, int, int], None]


def _all(status: str, detail: str, **measured: Any) -> list[ProbeResult]:
    return [ProbeResult(cond, name, status, dict(measured), "", detail) for cond, name in PROBES]


def _folder_parts(folder: Path) -> tuple[Path | None, Path | None, dict[str, str], list[str]]:
    """Script, artifact, logged configuration (as env vars) and notes for a record folder."""
    notes: list[str] = []
    script = folder / "train_gpt.py"
    artifacts = sorted(folder.glob("*.ptz")) + sorted(folder.glob("seed*/*.ptz"))
    artifact = artifacts[0] if artifacts else None
    env: dict[str, str] = {}
    try:
        from pgolf.logs import parse_log  # type: ignore[attr-defined]
    except ImportError:
        parse_log = None
    if parse_log is not None:
        for log in sorted(folder.glob("*.log")) + sorted(folder.glob("*.txt")):
            try:
                hyper = dict(parse_log(log).hyperparams)
            except Exception:  # a log the parser cannot read only costs the configuration
                continue
            if hyper:
                env = {
                    k.upper(): str(v)
                    for k, v in hyper.items()
                    if _ENV_KEY.match(k.upper()) and k.upper() not in _NOT_PASSED
                }
                notes.append(f"configuration from the hyperparameter dump of {log.name}")
                break
    return (script if script.is_file() else None), artifact, env, notes


def _precheck(script: Path) -> tuple[str, str] | None:
    """(status, reason) when the script cannot be probed, decided without executing it."""
    try:
        text = script.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{script}: cannot read ({exc.strerror})") from exc
    try:
        ast.parse(text, filename=str(script))
    except SyntaxError as exc:
        return "error", f"syntax error in {script.name} line {exc.lineno}: {exc.msg}"
    if "pgolf_scorer" in text:
        return None
    try:
        from audit.unpack import unpack_source  # type: ignore[attr-defined]

        if "pgolf_scorer" in unpack_source(text).text:
            return None
    except Exception:  # no unpacker yet, or a payload it rejects: judge the raw text
        pass
    return "skipped", (
        f"{script.name} defines no pgolf_scorer(); see docs/scorer-protocol.md to expose "
        "the evaluator to the probes (the script was not executed)"
    )


def _hook_line(script: Path) -> int | None:
    for number, line in enumerate(script.read_text(errors="replace").splitlines(), 1):
        if re.match(r"\s*def\s+pgolf_scorer\b", line):
            return number
    return None


def _findings(script: Path, results: list[ProbeResult], blocked: list[str]) -> list[Finding]:
    line = _hook_line(script)
    findings: list[Finding] = []
    for result in results:
        if result.status == "fail":
            rule = FAILURE_RULES[result.condition]()
            evidence = ", ".join(
                f"{k}={fmt(v) if isinstance(v, float) else v}"
                for k, v in result.measured.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            )
            findings.append(
                rule.finding(
                    file=script.name,
                    line=line,
                    function="pgolf_scorer",
                    evidence=evidence,
                    detail=result.detail,
                )
            )
        elif result.status == "error":
            rule_cls = NOT_MEASURED_RULES[result.condition]
            findings.append(rule_cls().finding(file=script.name, line=line, reason=result.detail))
    if blocked:
        findings.append(
            ProbeNetworkAttempt().finding(
                file=script.name, line=line, attempts="; ".join(blocked[:5])
            )
        )
    return findings


def _planned_calls(slice_len: int, positions: int, *, batched: bool) -> int:
    """Requests the probes will send (for the progress bar)."""
    cuts = c3.cut_points(slice_len)
    c1_calls = len(c1.change_positions(slice_len)) + len({slice_len // 2, *cuts})
    sampled = len(c2.sample_positions(slice_len, positions))
    checks = 2 * len(range(0, sampled, max(1, sampled // c2.BATCH_CHECK_POSITIONS)))
    return 1 + c1_calls + len(cuts) + sampled + (checks if batched else 0)


def run_probes(
    target: Path,
    *,
    timeout_s: float = 300.0,
    artifact: Path | None = None,
    data_dir: Path | None = None,
    positions: int = c2.DEFAULT_POSITIONS,
    context: int = c2.DEFAULT_CONTEXT,
    slice_len: int = DEFAULT_SLICE,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    memory_mb: int | None = DEFAULT_MEMORY_MB,
    progress: Progress | None = None,
) -> ProbeReport:
    """Probe C1, C2 and C3 of the scorer in `target` (a record folder or a script).

    The script runs in a sandboxed subprocess (see audit/probes/sandbox.py) under one
    wall-clock limit `timeout_s`. `env` adds environment variables for the script (for a
    folder, the default is the logged hyperparameter dump); `overrides` are passed to
    `pgolf_scorer(artifact_path, **overrides)`. Failures become PG491/PG591/PG691 findings.
    """
    target = Path(target)
    if not target.exists():
        raise InputError(f"{target}: no such file or folder")
    if not target.is_dir() and not target.is_file():
        # Reading a FIFO or a device would block or never end.
        raise InputError(f"{target}: not a regular file or folder (a FIFO, socket or device)")
    if slice_len < 16:
        raise InputError(f"slice length {slice_len} is too short (at least 16 tokens)")
    notes: list[str] = []
    if target.is_dir():
        script, found_artifact, folder_env, notes = _folder_parts(target)
        artifact = artifact or found_artifact
        env = folder_env if env is None else env
        if script is None:
            reason = f"{target}: no train_gpt.py to probe"
            return ProbeReport(_all("skipped", reason), [], {"target": str(target)})
    else:
        script = target
    info: dict[str, Any] = {
        "script": str(script),
        "artifact": str(artifact) if artifact else None,
        "timeout_s": timeout_s,
        "notes": notes,
    }
    if artifact is None:
        notes.append("no artifact: the scorer was built with artifact_path=None (fresh model)")
    pre = _precheck(script)
    if pre is not None:
        results = _all(*pre)
        return ProbeReport(results, _findings(script, results, []), info)

    started = time.monotonic()
    total = _planned_calls(slice_len, positions, batched=True)
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(label, min(done, total), total)

    results: list[ProbeResult] = []
    with ScorerProcess(
        script,
        artifact=artifact,
        env=env,
        overrides=overrides,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
    ) as proc:
        try:
            desc = proc.start()
        except (SandboxTimeout, SandboxError) as exc:
            desc = {"ok": False, "status": "error", "message": str(exc)}
        if not desc.get("ok"):
            results = _all(desc.get("status", "error"), str(desc.get("message")))
            info["blocked"] = proc.blocked
            return ProbeReport(results, _findings(script, results, proc.blocked), info)
        client = ScorerClient(proc, desc)
        total = _planned_calls(slice_len, positions, batched=client.has_batch)
        info.update(vocab_size=client.vocab_size, level=client.level, batched=client.has_batch)
        if client.vocab_size < 2 or client.level not in ("token", "byte"):
            reason = (
                f"the scorer reports vocab_size={client.vocab_size}, level={client.level!r}: "
                "expected vocab_size >= 2 and level 'token' or 'byte' (docs/scorer-protocol.md)"
            )
            results = _all("error", reason)
            return ProbeReport(results, _findings(script, results, proc.blocked), info)
        piece = resolve_slice(client.vocab_size, client.level, length=slice_len, data_dir=data_dir)
        info["slice"] = {"source": piece.source, "tokens": len(piece.tokens), "real": piece.real}
        if not piece.real:
            notes.append("no validation data found: probes ran on pseudo-random tokens")
        label = "C1"
        client.on_call = lambda: tick(label)
        try:
            base = client.score(piece.tokens)
            info["nan_scores_after_position_0"] = int(np.isnan(base[1:]).sum())
        except ScorerFailed as exc:
            results = _all("error", f"score() failed on the probe slice: {exc}")
            info["blocked"] = proc.blocked
            return ProbeReport(results, _findings(script, results, proc.blocked), info)
        fatal: str | None = None
        for condition, name in (("C1", c1.NAME), ("C3", c3.NAME), ("C2", c2.NAME)):
            label = condition
            if fatal is not None:
                results.append(ProbeResult(condition, name, "error", {}, "", f"not run: {fatal}"))
                continue
            try:
                if condition == "C1":
                    results.append(c1.run(client, piece, base))
                elif condition == "C3":
                    accepts = bool(desc.get("accepts_mask", True))
                    results.append(c3.run(client, piece, base, accepts_mask=accepts))
                else:
                    results.append(c2.run(client, piece, positions=positions, context=context))
            except ScorerFailed as exc:
                results.append(ProbeResult(condition, name, "error", {}, "", str(exc)))
                if exc.fatal:
                    fatal = str(exc)
        info["blocked"] = proc.blocked
        info["score_calls"] = client.calls
        info["tokens_scored"] = client.tokens_scored
    info["elapsed_s"] = round(time.monotonic() - started, 3)
    results.sort(key=lambda r: r.condition)
    return ProbeReport(results, _findings(script, results, info["blocked"]), info)

"""`pgolf run` orchestration: seeds -> subprocesses -> logs -> stats, caps, submission, audit.

Each seed runs as its own subprocess (torchrun when nproc > 1) with SEED set, in its own
working directory `seed<N>/`, its output streamed to `train_seed<N>.log`. run.json is saved
after every state change, so a crash, Ctrl-C or kill keeps every finished seed, and running
the same command with the same --out skips finished seeds and reruns the others.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from pgolf import __version__
from pgolf.caps import Caps, SeedCaps, check_seed, code_bytes, code_files
from pgolf.errors import InputError, PgolfError
from pgolf.logs import RunLog, parse_log
from pgolf.run_display import LiveDisplay, render_summary
from pgolf.run_exec import SeedOutcome, run_seed
from pgolf.run_state import (
    RunState,
    detect_hardware,
    hardware_summary,
    load_state,
    now_iso,
    python_version,
    save_state,
    sha256_file,
    torch_version,
)
from pgolf.stats import SignificanceResult, mean_std, significance
from pgolf.submission import atomic_write_text, normalize_track, read_submission, write_submission

SCRIPT_NAME = "train_gpt.py"
TIMEOUT_GRACE_S = 300.0
AUDIT_FILE = "LEGALITY_AUDIT.md"


def bundled_script() -> Path:
    """The bundled single-file trainer shipped inside the pgolf package."""
    return Path(__file__).with_name(SCRIPT_NAME)


@dataclass
class RunConfig:
    """Everything `pgolf run` was asked to do."""

    seeds: list[int]
    out: Path
    script: Path = field(default_factory=bundled_script)
    data: Path | None = None
    nproc: int = 1
    torchrun_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    caps: Caps = field(default_factory=Caps)
    timeout_s: float | None = None
    dry_run: bool = False
    compare_to: Path | None = None
    baseline_bpb: list[float] = field(default_factory=list)
    alpha: float = 0.01
    min_delta_nats: float = 0.005
    author: str | None = None
    github_id: str | None = None
    name: str | None = None
    track: str = "auto"
    command: list[str] = field(default_factory=list)
    python: str = sys.executable
    audit: bool = True

    @property
    def effective_timeout(self) -> float:
        if self.timeout_s is not None:
            return self.timeout_s
        return self.caps.train_s + self.caps.eval_s + TIMEOUT_GRACE_S


@dataclass
class SeedRow:
    """One line of the final summary."""

    seed: int
    status: str
    reason: str | None
    val_bpb: float | None
    val_loss: float | None
    bytes_total: int | None
    train_time_s: float | None
    eval_time_s: float | None
    caps: SeedCaps | None

    @property
    def caps_text(self) -> str:
        if self.caps is None:
            return "-"
        if self.caps.status == "pass":
            return "pass"
        return " ".join(f"{c.rule}:{c.status}" for c in self.caps.checks if c.status != "pass")


@dataclass
class RunReport:
    """Outcome of a run: rows, stats, caps and significance verdicts, outputs written."""

    out: Path
    rows: list[SeedRow]
    ok_bpb: list[float]
    mean_bpb: float
    std_bpb: float
    caps_verdict: str
    significance: SignificanceResult | None
    significance_note: str | None
    submission_path: Path | None
    audit_path: Path | None
    notes: list[str]

    @property
    def failed(self) -> list[SeedRow]:
        return [row for row in self.rows if row.status != "ok"]


# ----------------------------------------------------------------------------- validation


def validate_config(config: RunConfig) -> None:
    """Usage errors (exit 2) before anything runs."""
    if not config.seeds:
        raise InputError("no seeds given: pass --seeds, e.g. --seeds 42 314 999")
    duplicates = sorted({seed for seed in config.seeds if config.seeds.count(seed) > 1})
    if duplicates:
        raise InputError(f"duplicate seeds: {' '.join(map(str, duplicates))}")
    if not config.script.exists():
        raise InputError(f"{config.script}: script not found")
    if not config.script.is_file():
        raise InputError(f"{config.script}: not a regular file")
    if config.nproc < 1:
        raise InputError(f"--nproc must be at least 1 (got {config.nproc})")
    if config.data is not None and not config.data.is_dir():
        raise InputError(f"{config.data}: data directory not found")
    if config.compare_to is not None and not config.compare_to.is_dir():
        raise InputError(f"{config.compare_to}: reference record folder not found")
    if config.track != "auto" and normalize_track(config.track) is None:
        raise InputError(f"unknown track {config.track!r}")
    if not 0 < config.alpha < 1:
        raise InputError(f"--alpha must be between 0 and 1 (got {config.alpha})")
    reserved = sorted(set(config.env) & {"SEED", "RUN_ID"})
    if reserved:
        raise InputError(f"--env {reserved[0]}=... is set by pgolf run per seed; use --seeds")
    if config.effective_timeout <= 0:
        raise InputError("--timeout must be positive")


def parse_env(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`KEY=VALUE` strings to a dict; a malformed one is a usage error."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise InputError(f"--env {pair!r}: expected KEY=VALUE with KEY a variable name")
        env[key] = value
    return env


# ----------------------------------------------------------------------------- data


@dataclass
class DataInfo:
    path: Path
    tokenizer: Path | None
    fingerprint: str | None
    vocab_size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "tokenizer": str(self.tokenizer) if self.tokenizer else None,
            "fingerprint": self.fingerprint,
            "vocab_size": self.vocab_size,
        }


def resolve_data(data: Path | None, *, build: bool) -> DataInfo:
    """The shard directory (the embedded default, built on first use, when None)."""
    from pgolf import data as pdata

    if data is None:
        if not build:
            path = pdata.default_dataset_dir()
            return DataInfo(path, path / "tokenizer.model", None, None)
        dataset = pdata.ensure_default_dataset(progress=True)
        return DataInfo(
            dataset.path, dataset.tokenizer_path, dataset.fingerprint, dataset.vocab_size
        )
    if (data / "dataset.json").is_file():
        dataset = pdata.Dataset.load(data)
        return DataInfo(
            dataset.path, dataset.tokenizer_path, dataset.fingerprint, dataset.vocab_size
        )
    from pgolf.data.check import find_tokenizer

    fingerprint = pdata.data_fingerprint(data) if build else None
    return DataInfo(data.resolve(), find_tokenizer(data), fingerprint, None)


# ----------------------------------------------------------------------------- commands


def trainer_command(config: RunConfig, script: Path) -> list[str]:
    """argv of one seed: python SCRIPT, or torchrun with the rendezvous options passed through."""
    if config.nproc <= 1:
        return [config.python, str(script)]
    args = list(config.torchrun_args)
    if not any(arg.startswith(("--rdzv", "--nnodes", "--standalone")) for arg in args):
        args.insert(0, "--standalone")
    return [
        config.python,
        "-m",
        "torch.distributed.run",
        *args,
        f"--nproc_per_node={config.nproc}",
        str(script),
    ]


def run_env(config: RunConfig, data: DataInfo) -> dict[str, str]:
    """Variables the run sets on top of the inherited environment (recorded in run.json)."""
    env = {"DATA_PATH": str(data.path)}
    if data.tokenizer is not None:
        env["TOKENIZER_PATH"] = str(data.tokenizer)
    env.update(config.env)
    return env


def seed_env(base: dict[str, str], seed: int) -> dict[str, str]:
    return {
        **os.environ,
        **base,
        "SEED": str(seed),
        "RUN_ID": f"seed{seed}",
        "PYTHONUNBUFFERED": "1",
    }


def dry_run_lines(config: RunConfig) -> list[str]:
    """The exact commands `pgolf run` would execute, one block per seed."""
    data = resolve_data(config.data, build=False)
    out = config.out.resolve()
    script = out / SCRIPT_NAME
    env = run_env(config, data)
    cmd = trainer_command(config, script)
    lines = [
        f"# script {config.script} -> {script}",
        f"# timeout {config.effective_timeout:.0f} s per seed",
    ]
    for seed in config.seeds:
        assignments = {**env, "SEED": str(seed), "RUN_ID": f"seed{seed}", "PYTHONUNBUFFERED": "1"}
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in assignments.items())
        lines.append(
            f"cd {shlex.quote(str(out / f'seed{seed}'))} && {prefix} {shlex.join(cmd)}"
            f" > {shlex.quote(str(out / f'train_seed{seed}.log'))} 2>&1"
        )
    return lines


# ----------------------------------------------------------------------------- state


def _new_state(config: RunConfig, data: DataInfo, script_copy: Path, sha: str) -> RunState:
    return RunState(
        command=config.command,
        trainer_command=trainer_command(config, script_copy),
        env=run_env(config, data),
        script=SCRIPT_NAME,
        script_source=str(config.script.resolve()),
        script_sha256=sha,
        data=data.to_dict(),
        torch_version=torch_version(),
        python_version=python_version(),
        hardware=detect_hardware(),
        caps={
            "bytes_total": config.caps.bytes_total,
            "train_s": config.caps.train_s,
            "eval_s": config.caps.eval_s,
        },
        nproc=config.nproc,
        timeout_s=config.effective_timeout,
        created=now_iso(),
    )


def _check_resumable(state: RunState, fresh: RunState, out: Path) -> None:
    """A run folder holds one claim: same code, config and data for every seed (R6)."""
    mismatches = []
    if state.script_sha256 != fresh.script_sha256:
        mismatches.append("script (sha256 differs)")
    if state.env != fresh.env:
        mismatches.append("environment (--env / data paths differ)")
    if state.data.get("fingerprint") != fresh.data.get("fingerprint"):
        mismatches.append("data (fingerprint differs)")
    if state.nproc != fresh.nproc:
        mismatches.append("--nproc")
    if mismatches:
        raise InputError(
            f"{out}: holds a run with a different {', '.join(mismatches)}; "
            "use a new --out to start another run"
        )


def _prepare_folder(config: RunConfig, data: DataInfo) -> RunState:
    out = config.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the run folder ({exc.strerror or exc})") from exc
    script_copy = out.resolve() / SCRIPT_NAME
    if script_copy.is_symlink() or (script_copy.exists() and not script_copy.is_file()):
        # Copying through a link would write outside the run folder.
        raise InputError(
            f"{out / SCRIPT_NAME}: exists and is not a regular file (a link, folder or FIFO); "
            "use a new --out"
        )
    sha = sha256_file(config.script)
    previous = load_state(out)
    fresh = _new_state(config, data, script_copy, sha)
    if previous is None and script_copy.exists() and sha256_file(script_copy) != sha:
        raise InputError(
            f"{out}: already holds a different {SCRIPT_NAME} and no run.json; "
            "use a new --out (pgolf run never overwrites it)"
        )
    if previous is not None:
        _check_resumable(previous, fresh, out)
        previous.command = config.command
        previous.timeout_s = fresh.timeout_s
        previous.caps = fresh.caps
        state = previous
    else:
        state = fresh
    if not script_copy.exists() or sha256_file(script_copy) != sha:
        try:
            shutil.copyfile(config.script, script_copy)
        except shutil.SameFileError:
            pass
        except OSError as exc:
            raise PgolfError(
                f"{script_copy}: cannot copy the script ({exc.strerror or exc})"
            ) from exc
    for seed in config.seeds:
        seed_dir = out / f"seed{seed}"
        if (seed_dir.exists() or seed_dir.is_symlink()) and (
            seed_dir.is_symlink() or not seed_dir.is_dir()
        ):
            raise InputError(
                f"{seed_dir}: exists and is not a directory; pgolf run needs it as seed "
                f"{seed}'s working dir (move it away or use a new --out)"
            )
        log = out / f"train_seed{seed}.log"
        if log.is_symlink() or (log.exists() and not log.is_file()):
            # The seed's output is written there: never through a link or into a FIFO.
            raise InputError(f"{log}: exists and is not a regular file; use a new --out")
        state.record(seed)
    save_state(out, state)
    return state


class _Terminated(BaseException):
    """SIGTERM received: stop like Ctrl-C."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _seed_finished(out: Path, record_status: str, seed: int) -> bool:
    return record_status == "ok" and (out / f"train_seed{seed}.log").is_file()


def _fill_record(state: RunState, seed: int, outcome: SeedOutcome, out: Path) -> None:
    record = state.record(seed)
    log: RunLog | None = outcome.log
    record.status = outcome.status
    record.reason = outcome.reason
    record.returncode = outcome.returncode
    record.wall_s = round(outcome.wall_s, 3)
    record.finished = now_iso()
    if log is not None:
        record.val_bpb = log.val_bpb
        record.val_loss = log.val_loss
        record.bytes_total = log.bytes_total
        record.train_time_s = log.train_time_s
        record.eval_time_s = log.eval_time_s
        record.steps = log.steps
        record.metric_name = log.metric_name
    artifact = find_artifact(out / f"seed{seed}")
    record.artifact = str(artifact.relative_to(out)) if artifact is not None else None


def find_artifact(seed_dir: Path) -> Path | None:
    """The compressed model a seed wrote (final_model*.ptz, else the newest *.ptz)."""
    if not seed_dir.is_dir():
        return None
    candidates = sorted(seed_dir.glob("final_model*")) or sorted(seed_dir.glob("*.ptz"))
    files = [path for path in candidates if path.is_file()]
    if not files:
        return None
    return max(files, key=lambda path: path.stat().st_mtime)


# ----------------------------------------------------------------------------- reference


def reference_scores(folder: Path) -> list[float]:
    """Per-seed val_bpb of a record folder: from its logs, else its submission.json."""
    by_seed: dict[object, float] = {}
    logs = sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and path.suffix in (".log", ".txt")
        and "requirement" not in path.name.lower()
    )
    for index, path in enumerate(logs):
        log = parse_log(path)
        if log.val_bpb is not None and math.isfinite(log.val_bpb):
            key = log.seed if log.seed is not None else f"#{index}"
            by_seed.setdefault(key, log.val_bpb)
    if by_seed:
        return list(by_seed.values())
    submission = folder / "submission.json"
    if submission.is_file():
        data, _ = read_submission(submission)
        results = data.get("seed_results") or {}
        scores = [
            float(entry["val_bpb"])
            for entry in results.values()
            if isinstance(entry, dict) and isinstance(entry.get("val_bpb"), int | float)
        ]
        if scores:
            return scores
        if isinstance(data.get("val_bpb"), int | float):
            return [float(data["val_bpb"])]
    raise InputError(f"{folder}: no per-seed val_bpb in its logs or submission.json")


# ----------------------------------------------------------------------------- outputs


def _default_identity() -> tuple[str, str]:
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return os.environ.get("PGOLF_AUTHOR", user), os.environ.get("PGOLF_GITHUB_ID", user)


def build_submission(
    config: RunConfig,
    state: RunState,
    rows: list[SeedRow],
    code: int,
    significance_result: SignificanceResult | None,
    tokens_per_byte: float | None,
    caps_verdict: str,
) -> dict[str, Any] | None:
    ok = [row for row in rows if row.status == "ok" and row.val_bpb is not None]
    if not ok:
        return None
    author, github_id = _default_identity()
    mean_bpb, std_bpb = mean_std([row.val_bpb for row in ok if row.val_bpb is not None])
    losses = [row.val_loss for row in ok if row.val_loss is not None]
    if config.track == "auto":
        track = "track_10min_16mb" if caps_verdict == "pass" else "track_non_record_16mb"
    else:
        track = normalize_track(config.track) or "track_non_record_16mb"
    seed_results: dict[str, dict[str, Any]] = {}
    for row in ok:
        entry: dict[str, Any] = {"val_bpb": row.val_bpb}
        if row.val_loss is not None and row.val_loss > 0:
            entry["val_loss"] = row.val_loss
        if row.caps is not None and row.caps.bytes.measured is not None:
            entry["bytes_total"] = int(row.caps.bytes.measured)
        if row.train_time_s is not None:
            entry["train_time_s"] = round(row.train_time_s, 3)
        if row.eval_time_s is not None:
            entry["eval_time_s"] = round(row.eval_time_s, 3)
        seed_results[str(row.seed)] = entry
    sizes = [entry["bytes_total"] for entry in seed_results.values() if "bytes_total" in entry]
    data: dict[str, Any] = {
        "author": config.author or author,
        "github_id": config.github_id or github_id,
        "name": config.name or config.out.resolve().name,
        "val_bpb": round(mean_bpb, 8),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "track": track,
        "bytes_code": code,
        "seeds": [row.seed for row in ok],
        "seed_results": seed_results,
        "hardware": hardware_summary(state.hardware, config.nproc),
    }
    if len(losses) == len(ok) and all(loss > 0 for loss in losses):
        data["val_loss"] = round(mean_std(losses)[0], 8)
    if sizes:
        data["bytes_total"] = max(sizes)
    if len(ok) >= 2 and math.isfinite(std_bpb):
        data["val_bpb_std"] = round(std_bpb, 8)
    data["pgolf"] = {
        "schema": "pgolf.submission/1",
        "version": __version__,
        "script_sha256": state.script_sha256,
        "data_fingerprint": state.data.get("fingerprint"),
        "command": state.command,
        "tokens_per_byte": tokens_per_byte,
        "caps": {str(row.seed): row.caps.to_dict() for row in ok if row.caps is not None},
        "failed_seeds": {
            str(row.seed): {"status": row.status, "reason": row.reason}
            for row in rows
            if row.status != "ok"
        },
        "significance": _significance_dict(significance_result),
    }
    return data


def _significance_dict(result: SignificanceResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    data = dict(result.__dict__)
    for key, value in data.items():
        if isinstance(value, float) and not math.isfinite(value):
            data[key] = None
    return data


def write_audit(out: Path) -> tuple[Path | None, str | None]:
    """LEGALITY_AUDIT.md from the auditor, or a placeholder saying why it is not available."""
    path = out / AUDIT_FILE
    try:
        from audit.engine import audit_folder
        from audit.report import to_markdown
    except Exception as exc:  # any import failure means "not available"
        text = (
            "# Legality audit\n\n"
            "The pgolf auditor is not available in this installation "
            f"({type(exc).__name__}: {exc}).\n"
            f"Run `pgolf audit {out}` once it is installed.\n"
        )
        atomic_write_text(path, text)
        return path, "audit not available: placeholder written"
    try:
        report = audit_folder(out)
        atomic_write_text(path, to_markdown(report))
    except Exception as exc:  # a broken audit must not lose the run's outputs
        text = (
            "# Legality audit\n\n"
            f"The audit of this run folder could not complete ({type(exc).__name__}: {exc}).\n"
            f"Run `pgolf audit {out}` to retry.\n"
        )
        atomic_write_text(path, text)
        return path, f"audit failed: {type(exc).__name__}: {exc}"
    return path, None


def finalize(config: RunConfig, state: RunState) -> RunReport:
    """Parse logs, recompute caps, compute statistics, write submission.json and the audit."""
    out = config.out
    code = code_bytes(code_files(out))
    rows: list[SeedRow] = []
    logs: dict[int, RunLog] = {}
    notes: list[str] = []
    for seed in config.seeds:
        record = state.record(seed)
        log_path = out / f"train_seed{seed}.log"
        log = parse_log(log_path) if log_path.is_file() else None
        if log is not None:
            logs[seed] = log
        seed_caps = None
        if record.status == "ok":
            seed_caps = check_seed(
                log,
                code=code,
                artifact=find_artifact(out / f"seed{seed}"),
                caps=config.caps,
                seed=seed,
            )
        rows.append(
            SeedRow(
                seed=seed,
                status=record.status,
                reason=record.reason,
                val_bpb=log.val_bpb if log and record.status == "ok" else record.val_bpb,
                val_loss=log.val_loss if log and record.status == "ok" else record.val_loss,
                bytes_total=(
                    int(seed_caps.bytes.measured)
                    if seed_caps is not None and seed_caps.bytes.measured is not None
                    else record.bytes_total
                ),
                train_time_s=log.train_time_s if log else record.train_time_s,
                eval_time_s=log.eval_time_s if log else record.eval_time_s,
                caps=seed_caps,
            )
        )
    ok_rows = [row for row in rows if row.status == "ok" and row.val_bpb is not None]
    ok_bpb = [row.val_bpb for row in ok_rows if row.val_bpb is not None]
    mean_bpb, std_bpb = mean_std(ok_bpb)
    statuses = {row.caps.status for row in ok_rows if row.caps is not None}
    caps_verdict = (
        "fail"
        if "fail" in statuses
        else ("unknown" if "unknown" in statuses or not statuses else "pass")
    )
    ratios = [
        row.val_bpb * math.log(2) / row.val_loss
        for row in ok_rows
        if row.val_bpb is not None and row.val_loss
    ]
    tokens_per_byte = sum(ratios) / len(ratios) if ratios else None
    sig_result: SignificanceResult | None = None
    sig_note: str | None = None
    reference: list[float] = []
    if config.compare_to is not None:
        reference = reference_scores(config.compare_to)
    elif config.baseline_bpb:
        reference = list(config.baseline_bpb)
    if reference:
        if not ok_bpb:
            sig_note = "no successful seed to compare"
        elif tokens_per_byte is None:
            sig_note = "no val_loss logged, so the nats margin cannot be measured"
        else:
            sig_result = significance(
                ok_bpb, reference, tokens_per_byte, config.alpha, config.min_delta_nats
            )
    submission = build_submission(
        config, state, rows, code, sig_result, tokens_per_byte, caps_verdict
    )
    submission_path = None
    if submission is not None:
        submission_path = out / "submission.json"
        try:
            write_submission(submission_path, submission)
        except OSError as exc:
            raise PgolfError(f"{submission_path}: cannot write ({exc.strerror or exc})") from exc
    else:
        notes.append("no seed finished: submission.json not written")
    audit_path = None
    if config.audit:
        try:
            audit_path, audit_note = write_audit(out)
        except OSError as exc:
            audit_path, audit_note = None, f"cannot write {AUDIT_FILE}: {exc.strerror or exc}"
        if audit_note:
            notes.append(audit_note)
    return RunReport(
        out=out,
        rows=rows,
        ok_bpb=ok_bpb,
        mean_bpb=mean_bpb,
        std_bpb=std_bpb,
        caps_verdict=caps_verdict,
        significance=sig_result,
        significance_note=sig_note,
        submission_path=submission_path,
        audit_path=audit_path,
        notes=notes,
    )


# ----------------------------------------------------------------------------- main entry


def run(config: RunConfig, console: Console | None = None) -> RunReport | None:
    """Run every unfinished seed, then finalize. Returns None for --dry-run."""
    console = console or Console()
    validate_config(config)
    if config.dry_run:
        for line in dry_run_lines(config):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return None
    if config.compare_to is not None:
        reference_scores(config.compare_to)  # fail early on an unusable reference
    data = resolve_data(config.data, build=True)
    state = _prepare_folder(config, data)
    out = config.out
    base_env = state.env
    cmd = state.trainer_command
    stop_reason: str | None = None
    with _sigterm_as_interrupt(), LiveDisplay(console, config.seeds) as display:
        for seed in config.seeds:
            record = state.record(seed)
            if _seed_finished(out, record.status, seed):
                display.set_status(seed, "skipped", f"finished earlier, val_bpb {record.val_bpb}")
                continue
            if stop_reason is not None:
                continue
            seed_dir = out / f"seed{seed}"
            shutil.rmtree(seed_dir, ignore_errors=True)
            seed_dir.mkdir(parents=True, exist_ok=True)
            record.status, record.reason = "running", None
            record.attempts += 1
            record.started, record.finished = now_iso(), None
            record.log = f"train_seed{seed}.log"
            save_state(out, state)
            display.set_status(seed, "running")
            try:
                outcome = run_seed(
                    cmd,
                    cwd=seed_dir,
                    env=seed_env(base_env, seed),
                    log_path=out / f"train_seed{seed}.log",
                    timeout_s=state.timeout_s,
                    on_line=display.line_handler(seed),
                )
            except (KeyboardInterrupt, _Terminated) as exc:
                record.status = "failed"
                record.reason = (
                    "interrupted (Ctrl-C)"
                    if isinstance(exc, KeyboardInterrupt)
                    else "terminated (SIGTERM)"
                )
                record.finished = now_iso()
                save_state(out, state)
                display.set_status(seed, "failed", record.reason)
                raise PgolfError(
                    f"run interrupted during seed {seed}; finished seeds are kept in "
                    f"{out / 'run.json'}; rerun the same command to resume"
                ) from None
            _fill_record(state, seed, outcome, out)
            save_state(out, state)
            display.set_status(
                seed,
                outcome.status,
                f"val_bpb {outcome.log.val_bpb:.8f}"
                if outcome.status == "ok" and outcome.log and outcome.log.val_bpb is not None
                else (outcome.reason or ""),
            )
            if outcome.disk_full:
                stop_reason = outcome.reason
    report = finalize(config, state)
    render_summary(console, report)
    if stop_reason is not None:
        raise PgolfError(
            f"run stopped: {stop_reason}; finished seeds are kept in {out / 'run.json'}"
        )
    return report

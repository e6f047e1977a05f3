"""README.md of a record folder, generated from the facts of a run (NaiveBaseline shape).

Everything in the README is derived from the run: the per-seed table and the statistics from
the logs, the caps from the files, the reproduction commands from run.json, the audit summary
from the audit of the assembled folder. Nothing is typed in by hand except the blurb.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field

# Dump keys that are facts of one run (seed, timings, totals) rather than configuration.
# Values holding an absolute path (a glob of this machine's shards) are facts of one machine.
_MACHINE_PATH = re.compile(r"(^|[\s:=])(/|~/|[A-Za-z]:\\)")
# Paths and run ids are facts of one machine.
_RUN_FACT = re.compile(r"^seed$|_total$|_time(_ms|_s)?$|_avg$|^step|^run_id$|_path$", re.IGNORECASE)


@dataclass(frozen=True)
class SeedRow:
    seed: int
    status: str  # ok | failed | timeout | ...
    val_bpb: float | None = None
    val_loss: float | None = None
    steps: int | None = None
    train_time_s: float | None = None
    eval_time_s: float | None = None
    bytes_total: int | None = None
    reason: str | None = None
    log: str | None = None
    quote: str | None = None  # the log's own final metric line, verbatim


@dataclass(frozen=True)
class CapRow:
    rule: str  # R1 | R2 | R3
    what: str
    limit: str
    measured: str
    ok: bool | None  # None: could not be measured


@dataclass(frozen=True)
class AuditSummary:
    verdict: str  # pass | review | fail | unavailable
    counts: dict[str, int]
    top_findings: list[str]  # one line each, most severe first


@dataclass
class RecordFacts:
    name: str
    folder_name: str
    track: str
    date: str
    author: str
    github_id: str
    blurb: str
    pgolf_version: str
    seeds: list[SeedRow]
    mean_bpb: float | None
    std_bpb: float | None
    mean_loss: float | None
    caps: list[CapRow]
    code_bytes: int
    script_sha256: str
    data_fingerprint: str | None
    data_description: str
    env: dict[str, str]
    data_dir: str | None  # None: the embedded default dataset
    hyperparams: dict[str, str]
    torch_version: str | None
    hardware: str | None
    nproc: int
    audit: AuditSummary
    files: list[tuple[str, str]]  # (file name, what it is)
    allow_fail_reason: str | None = None
    failed_seeds: list[int] = field(default_factory=list)
    artifacts_included: bool = False
    metric_name: str | None = None
    bundled_trainer: bool = False


def _num(value: float | None, digits: int = 8) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _bytes(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def env_assignments(env: dict[str, str]) -> str:
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))


def render(facts: RecordFacts) -> str:
    """The README.md text of a record folder."""
    out: list[str] = []
    add = out.append
    add(f"# {facts.name}")
    add("")
    add(
        f"This record was produced end to end by pgolf {facts.pgolf_version}: `pgolf run` trained "
        f"and evaluated {'the bundled ' if facts.bundled_trainer else ''}`train_gpt.py` once per "
        f"seed on {facts.data_description}, "
        f"and `pgolf package` assembled, audited and hashed this folder."
    )
    add("")
    if facts.blurb:
        add(facts.blurb)
        add("")
    add(f"- Track: `{facts.track}`")
    add(f"- Author: {facts.author} (`{facts.github_id}`), date {facts.date}")
    if facts.hardware:
        add(
            f"- Hardware: {facts.hardware}"
            + (f", torch {facts.torch_version}" if facts.torch_version else "")
        )
    if facts.allow_fail_reason is not None:
        add("")
        add("## Packaged with --allow-fail")
        add("")
        problems = []
        if facts.audit.verdict == "fail":
            problems.append("the legality audit fails")
        if facts.failed_seeds:
            problems.append("seeds " + ", ".join(map(str, facts.failed_seeds)) + " failed")
        add(
            "This folder was packaged although "
            + (" and ".join(problems) if problems else "checks did not all pass")
            + f". Reason given: {facts.allow_fail_reason}"
        )

    add("")
    add("## Results")
    add("")
    add("| seed | status | val_bpb | val_loss | steps | train time | eval time | bytes total |")
    add("|---:|---|---:|---:|---:|---:|---:|---:|")
    for row in facts.seeds:
        status = row.status if not row.reason else f"{row.status} ({row.reason})"
        add(
            f"| {row.seed} | {status} | {_num(row.val_bpb)} | {_num(row.val_loss)} | "
            f"{row.steps if row.steps is not None else '-'} | {_secs(row.train_time_s)} | "
            f"{_secs(row.eval_time_s)} | {_bytes(row.bytes_total)} |"
        )
    n_ok = sum(1 for r in facts.seeds if r.val_bpb is not None and r.status == "ok")
    add("")
    add(
        f"Mean val_bpb over {n_ok} seeds: `{_num(facts.mean_bpb)}`, sample standard deviation "
        f"(ddof=1): `{_num(facts.std_bpb)}`; mean val_loss `{_num(facts.mean_loss)}` nats. "
        "Each score is the last `val_bpb` metric line of the seed's log"
        + (f" (`{facts.metric_name}`)." if facts.metric_name else ".")
    )

    quotes = [r for r in facts.seeds if r.quote]
    if quotes:
        add("")
        add("Final metric lines, quoted from the logs:")
        add("")
        for row in quotes:
            add(f"- seed {row.seed} (`{row.log}`): `{row.quote}`")
    add("")
    add("## Caps")
    add("")
    add("| rule | what | limit | worst measured | within |")
    add("|---|---|---:|---:|---|")
    for cap in facts.caps:
        within = "n/a" if cap.ok is None else ("yes" if cap.ok else "**NO**")
        add(f"| {cap.rule} | {cap.what} | {cap.limit} | {cap.measured} | {within} |")
    add("")
    add(
        f"Code: `train_gpt.py`, {facts.code_bytes:,} bytes, sha256 `{facts.script_sha256}`. "
        "Bytes total = code bytes + compressed model bytes (decimal bytes)."
    )

    add("")
    add("## Configuration")
    add("")
    if facts.env:
        add("Environment overrides of this run (everything else is the trainer's default):")
        add("")
        for key, value in sorted(facts.env.items()):
            add(f"- `{key}={value}`")
    else:
        add("No environment overrides: the trainer's defaults.")
    if facts.hyperparams:
        add("")
        shown = {
            k: v
            for k, v in facts.hyperparams.items()
            if not _RUN_FACT.search(k) and not _MACHINE_PATH.search(v)
        }
        add(
            "Effective hyperparameters (from the logs): "
            + " ".join(f"`{k}:{v}`" for k, v in sorted(shown.items()))
        )

    add("")
    add("## Reproduce")
    add("")
    seeds = " ".join(str(r.seed) for r in facts.seeds)
    env_flags = "".join(f" --env {shlex.quote(f'{k}={v}')}" for k, v in sorted(facts.env.items()))
    add(
        "With pgolf installed (`pip install -e .` in a checkout of pgolf); this builds the data, "
        "runs every seed and writes the logs and submission.json:"
    )
    add("")
    add("```bash")
    add("pip install -r requirements.txt")
    data_flag = ""
    if facts.data_dir:
        data_flag = f" --data {shlex.quote(facts.data_dir)}"
    else:
        add("pgolf data")
    add(f"pgolf run --seeds {seeds}{data_flag}{env_flags}")
    add("```")
    add("")
    add(
        "Or the script alone, one seed at a time"
        + ("" if facts.data_dir else " (it finds the data `pgolf data` built)")
        + ":"
    )
    add("")
    add("```bash")
    launcher = (
        "python train_gpt.py"
        if facts.nproc <= 1
        else f"torchrun --standalone --nproc_per_node={facts.nproc} train_gpt.py"
    )
    first = facts.seeds[0].seed if facts.seeds else 42
    extra = {"DATA_PATH": facts.data_dir} if facts.data_dir else {}
    assigns = env_assignments({**facts.env, **extra, "SEED": str(first)})
    add(f"{assigns} {launcher}")
    add("```")
    if facts.data_fingerprint:
        add("")
        add(
            f"Data fingerprint (sha256 over the tokens of every shard): `{facts.data_fingerprint}`; "
            "`pgolf data --check DIR` prints it for your copy."
        )

    add("")
    add("## Audit")
    add("")
    counts = ", ".join(f"{n} {sev}" for sev, n in facts.audit.counts.items()) or "no findings"
    add(
        f"`pgolf audit` on this folder: verdict **{facts.audit.verdict}** ({counts}). "
        "The full report is in `LEGALITY_AUDIT.md`."
    )
    if facts.audit.top_findings:
        add("")
        for line in facts.audit.top_findings:
            add(f"- {line}")

    add("")
    add("## Included files")
    add("")
    for name, what in facts.files:
        add(f"- `{name}`: {what}")
    if not facts.artifacts_included:
        add("")
        add(
            "The compressed model artifacts are not included (large binaries); their sizes and "
            "sha256 are recorded in `MANIFEST.json`."
        )
    add("")
    add(f"Check this folder at any time with `pgolf verify {facts.folder_name}`.")
    add("")
    return "\n".join(out)

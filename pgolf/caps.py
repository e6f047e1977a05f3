"""Caps recomputed from real files and logs: R1 bytes, R2 train time, R3 eval time, per seed.

R1 counts the code as shipped (the script plus every other file the evaluation needs, a packed
wrapper at its packed size) plus the compressed artifact, in decimal bytes. The log's own
`Total submission size` claim is compared with that and any disagreement is reported. R2 and
R3 come from the times the trainer logged (train before serialization, eval after loading).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pgolf.logs import RunLog

BYTES_CAP = 16_000_000
TRAIN_CAP_S = 600.0
EVAL_CAP_S = 600.0
CODE_SUFFIXES = (".py", ".c", ".cc", ".cpp", ".cu", ".h", ".hpp", ".so")


@dataclass(frozen=True)
class Caps:
    """The limits a run is judged against."""

    bytes_total: int = BYTES_CAP
    train_s: float = TRAIN_CAP_S
    eval_s: float = EVAL_CAP_S


@dataclass(frozen=True)
class CapCheck:
    """One cap for one seed: `status` is pass, fail or unknown (nothing to measure)."""

    rule: str
    name: str
    measured: float | None
    cap: float
    claimed: float | None
    status: str
    detail: str


@dataclass(frozen=True)
class SeedCaps:
    """R1, R2 and R3 for one seed."""

    seed: int | None
    bytes: CapCheck
    train: CapCheck
    eval: CapCheck

    @property
    def checks(self) -> tuple[CapCheck, CapCheck, CapCheck]:
        return (self.bytes, self.train, self.eval)

    @property
    def status(self) -> str:
        """fail if any cap fails, unknown if one could not be measured, else pass."""
        statuses = {check.status for check in self.checks}
        if "fail" in statuses:
            return "fail"
        return "unknown" if "unknown" in statuses else "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "status": self.status,
            "bytes": asdict(self.bytes),
            "train": asdict(self.train),
            "eval": asdict(self.eval),
        }


def code_files(folder: Path) -> list[Path]:
    """Files of a folder that the evaluation needs as code (top level, sorted)."""
    return sorted(
        path for path in folder.iterdir() if path.is_file() and path.suffix in CODE_SUFFIXES
    )


def code_bytes(files: Iterable[Path]) -> int:
    """Bytes of the files exactly as shipped (a packed wrapper counts at its packed size)."""
    return sum(path.stat().st_size for path in files)


def check_bytes(
    code: int | None, artifact: Path | None, log: RunLog | None, cap: int = BYTES_CAP
) -> CapCheck:
    """R1: code bytes + artifact bytes <= cap, compared with the log's claim."""
    claimed = float(log.bytes_total) if log is not None and log.bytes_total is not None else None
    artifact_size = artifact.stat().st_size if artifact is not None and artifact.is_file() else None
    if code is not None and artifact_size is not None:
        measured = float(code + artifact_size)
        detail = f"code {code:,} + artifact {artifact_size:,} = {int(measured):,} bytes"
        if claimed is not None and claimed != measured:
            detail += f"; the log claims {int(claimed):,}"
    elif claimed is not None:
        measured = claimed
        detail = f"{int(claimed):,} bytes as claimed by the log (artifact file not available)"
    else:
        return CapCheck("R1", "bytes", None, cap, None, "unknown", "no artifact and no size line")
    status = "pass" if measured <= cap else "fail"
    return CapCheck("R1", "bytes", measured, cap, claimed, status, detail)


def check_time(rule: str, name: str, seconds: float | None, cap: float) -> CapCheck:
    """R2 / R3: a logged time against its cap."""
    if seconds is None:
        return CapCheck(rule, name, None, cap, None, "unknown", f"no {name} in the log")
    status = "pass" if seconds <= cap else "fail"
    detail = f"{seconds:.1f} s of {cap:g} s"
    return CapCheck(rule, name, seconds, cap, seconds, status, detail)


def check_seed(
    log: RunLog | None,
    *,
    code: int | None,
    artifact: Path | None,
    caps: Caps | None = None,
    seed: int | None = None,
) -> SeedCaps:
    """All three caps for one seed from its log, its artifact and the shipped code size."""
    limits = caps or Caps()
    return SeedCaps(
        seed=seed if seed is not None else (log.seed if log is not None else None),
        bytes=check_bytes(code, artifact, log, limits.bytes_total),
        train=check_time(
            "R2", "train_time", log.train_time_s if log is not None else None, limits.train_s
        ),
        eval=check_time(
            "R3", "eval_time", log.eval_time_s if log is not None else None, limits.eval_s
        ),
    )

"""run.json: the resumable record of a `pgolf run` folder, saved atomically after every change.

It holds what makes a run reproducible (command, env, script sha256, data fingerprint, torch
version, hardware, caps) and one record per seed with its status (pending, running, ok, failed,
timeout), reason and results. A seed left `running` by a killed runner counts as unfinished.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pgolf.errors import InputError, PgolfError
from pgolf.submission import atomic_write_text

RUN_SCHEMA = "pgolf.run/1"
RUN_FILE = "run.json"
FINISHED = ("ok",)
STATUSES = ("pending", "running", "ok", "failed", "timeout")


@dataclass
class SeedRecord:
    """One seed's status and results."""

    seed: int
    status: str = "pending"
    reason: str | None = None
    val_bpb: float | None = None
    val_loss: float | None = None
    bytes_total: int | None = None
    train_time_s: float | None = None
    eval_time_s: float | None = None
    steps: int | None = None
    metric_name: str | None = None
    log: str | None = None
    artifact: str | None = None
    returncode: int | None = None
    wall_s: float | None = None
    started: str | None = None
    finished: str | None = None
    attempts: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class RunState:
    """Everything in run.json."""

    command: list[str]
    trainer_command: list[str]
    env: dict[str, str]
    script: str
    script_source: str
    script_sha256: str
    data: dict[str, Any]
    torch_version: str | None
    python_version: str
    hardware: dict[str, Any]
    caps: dict[str, float]
    nproc: int
    timeout_s: float
    seeds: dict[str, SeedRecord] = field(default_factory=dict)
    created: str = ""
    updated: str = ""
    schema: str = RUN_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seeds"] = {key: asdict(record) for key, record in self.seeds.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["seeds"] = {
            str(key): SeedRecord.from_dict(record)
            for key, record in (data.get("seeds") or {}).items()
            if isinstance(record, dict)
        }
        return cls(**values)

    def record(self, seed: int) -> SeedRecord:
        return self.seeds.setdefault(str(seed), SeedRecord(seed=seed))


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def torch_version() -> str | None:
    """Installed torch version, read from package metadata (importing torch is slow)."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def detect_hardware() -> dict[str, Any]:
    """GPUs (via nvidia-smi when present) and CPU facts, for run.json and submission.json."""
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "gpus": [],
    }
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            ).stdout
            info["gpus"] = [line.strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def hardware_summary(info: dict[str, Any], nproc: int = 1) -> str:
    """One line such as `8x NVIDIA H100 80GB HBM3` or `CPU x86_64 (2 cores)`."""
    gpus = info.get("gpus") or []
    if gpus:
        names = sorted({str(gpu).split(",")[0] for gpu in gpus})
        used = min(len(gpus), max(nproc, 1))
        return f"{used}x {' / '.join(names)}"
    return f"CPU {info.get('machine', '?')} ({info.get('cpu_count', '?')} cores)"


def python_version() -> str:
    return sys.version.split()[0]


_STR_LIST = "a list of strings"
_STATE_TYPES: dict[str, tuple[str, Any]] = {
    "command": (_STR_LIST, lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "trainer_command": (
        _STR_LIST,
        lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    ),
    "env": (
        "an object of strings",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    ),
    "data": ("an object", lambda v: isinstance(v, dict)),
    "hardware": ("an object", lambda v: isinstance(v, dict)),
    "caps": ("an object", lambda v: isinstance(v, dict)),
    "seeds": ("an object", lambda v: isinstance(v, dict)),
    "nproc": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "timeout_s": ("a number", lambda v: _is_number(v)),
    "script_sha256": ("a string", lambda v: isinstance(v, str)),
}
_SEED_NUMBERS = ("val_bpb", "val_loss", "bytes_total", "train_time_s", "eval_time_s", "wall_s")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_problem(data: dict[str, Any]) -> str | None:
    """The first field of a run.json whose type pgolf cannot use, as `key: expected ...`."""
    for key, (expected, ok) in _STATE_TYPES.items():
        if key in data and not ok(data[key]):
            return f"{key}: expected {expected}, got {type(data[key]).__name__}"
    for name, record in (data.get("seeds") or {}).items():
        where = f"seeds.{name}"
        if not isinstance(record, dict):
            return f"{where}: expected an object, got {type(record).__name__}"
        seed = record.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            return f"{where}.seed: expected an integer, got {seed!r}"
        if record.get("status", "pending") not in STATUSES:
            return f"{where}.status: {record.get('status')!r} is not one of {', '.join(STATUSES)}"
        for key in _SEED_NUMBERS:
            value = record.get(key)
            if value is not None and not _is_number(value):
                return f"{where}.{key}: expected a number, got {value!r}"
    return None


def load_state(folder: Path) -> RunState | None:
    """The run.json of a folder, None if there is none; InputError if it is unreadable."""
    path = folder / RUN_FILE
    if not path.exists() and not path.is_symlink():
        return None
    if path.exists() and not path.is_file() and not path.is_dir():
        raise InputError(f"{path}: cannot resume from it (not a regular file)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("schema") != RUN_SCHEMA:
            raise ValueError(f"not a {RUN_SCHEMA} file")
        problem = _type_problem(data)
        if problem is not None:
            raise ValueError(problem)
        return RunState.from_dict(data)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: cannot resume from it ({exc})") from exc


def save_state(folder: Path, state: RunState) -> None:
    """Write run.json atomically; a full disk becomes a PgolfError naming the file."""
    state.updated = now_iso()
    path = folder / RUN_FILE
    try:
        atomic_write_text(path, json.dumps(state.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise PgolfError(f"{path}: cannot save the run state ({exc.strerror or exc})") from exc

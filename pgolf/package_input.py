"""Reading a finished `pgolf run` folder for packaging: run.json, script, logs, artifacts.

Lenient about the shape of run.json (a few spellings of each key), strict about what a record
needs: every seed recorded as ok must have its log with a final metric and its artifact.
Anything unusable is an InputError naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgolf.errors import InputError

ARTIFACT_NAME = "final_model.int8.ptz"
_DATA_KEYS = ("DATA_PATH", "TOKENIZER_PATH")


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
    def bundled_trainer(self) -> bool:
        """Whether the script that ran is pgolf's own bundled trainer (its installed copy)."""
        source = self.run_json.get("script_source")
        if not source:
            return False
        bundled = Path(__file__).resolve().parent / "train_gpt.py"
        try:
            return Path(str(source)).resolve() == bundled
        except OSError:
            return False

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


# Real record logs are at most tens of MB; anything far larger is a mistake that would be
# copied into the record folder (and into a pull request).
MAX_LOG_BYTES = 200_000_000


def _refuse_unshippable_log(log_path: Path, seed: int) -> None:
    """InputError for a seed log that must not be copied into a record folder."""
    if log_path.is_symlink():
        raise InputError(
            f"{log_path}: is a symlink (to {os.readlink(log_path)}); a record ships the log itself"
        )
    if not log_path.exists():
        return
    if not log_path.is_file():
        raise InputError(f"{log_path}: not a regular file (seed {seed})")
    size = log_path.stat().st_size
    if size > MAX_LOG_BYTES:
        raise InputError(
            f"{log_path}: {size:,} bytes, more than the {MAX_LOG_BYTES:,} a record log may be "
            f"(seed {seed}); trim it before packaging"
        )


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
        _refuse_unshippable_log(log_path, seed)
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

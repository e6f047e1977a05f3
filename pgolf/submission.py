"""submission.json (R7): lenient reading of every historical spelling, strict atomic writing.

`read_submission` never raises on content: invalid JSON, wrong types and missing fields become
problem strings, and the dozens of legacy key spellings seen upstream (mean_val_bpb,
artifact_bytes_max, val_bpb_by_seed, seeds as a dict, "10min_16mb" and "non-record-16mb"
tracks, ...) are mapped onto the published schema `pgolf/schemas/submission.schema.json`.
`write_submission` validates strictly against that schema and writes atomically.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pgolf.errors import InputError

TRACKS = ("track_10min_16mb", "track_non_record_16mb")
# A real submission.json is a few kB; anything this big is not one (and is not read into memory).
MAX_SUBMISSION_BYTES = 10_000_000
REQUIRED = ("author", "github_id", "name", "val_bpb", "date", "track")
OPTIONAL_SCALARS = ("val_loss", "blurb", "bytes_total", "bytes_code", "val_bpb_std", "hardware")

# Legacy top-level spellings -> canonical key; the first present wins, canonical keys first.
_ALIASES: dict[str, tuple[str, ...]] = {
    "val_bpb": ("mean_val_bpb", "val_bpb_mean", "mean_bpb"),
    "val_loss": ("mean_val_loss", "val_loss_mean", "mean_val_loss_nats", "val_loss_nats"),
    "val_bpb_std": ("std_bpb", "val_bpb_stddev", "std_val_bpb"),
    "bytes_total": (
        "bytes_total_max",
        "artifact_bytes_max",
        "artifact_bytes",
        "artifact_size_bytes",
        "artifact_bytes_mean",
    ),
    "bytes_code": ("code_bytes", "code_size_bytes"),
    "hardware": ("gpu", "platform", "gpu_type"),
    "github_id": ("github", "github_username", "github_user"),
    "author": ("authors",),
    "blurb": ("description", "summary"),
}
_SEED_FIELD_ALIASES: dict[str, str] = {
    "artifact_bytes": "bytes_total",
    "bytes": "bytes_total",
    "total_bytes": "bytes_total",
    "val_var_bpb": "val_bpb",
    "bpb": "val_bpb",
    "train_time_seconds": "train_time_s",
    "eval_time_seconds": "eval_time_s",
    "ttt_eval_time_s": "eval_time_s",
    "train_steps": "steps",
}
_MS_FIELDS = {"train_time_ms": "train_time_s", "eval_time_ms": "eval_time_s"}
_BY_SEED = {
    "val_bpb_by_seed": "val_bpb",
    "val_loss_by_seed": "val_loss",
    "bytes_total_by_seed": "bytes_total",
    "artifact_bytes_by_seed": "bytes_total",
    "train_time_ms_by_seed": "train_time_ms",
    "eval_time_ms_by_seed": "eval_time_ms",
    "train_time_s_by_seed": "train_time_s",
    "eval_time_s_by_seed": "eval_time_s",
    "seed_scores": "val_bpb",
}
_SEED_FIELDS = ("val_bpb", "val_loss", "bytes_total", "train_time_s", "eval_time_s", "steps")
_INT_FIELDS = {"bytes_total", "bytes_code", "steps"}


def normalize_track(value: object) -> str | None:
    """Map any historical track spelling to `track_10min_16mb` / `track_non_record_16mb`."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace("-", "_").replace(" ", "_")
    text = text.removeprefix("records/").strip("/")
    if "non_record" in text or "nonrecord" in text or "unlimited" in text:
        return "track_non_record_16mb"
    if re.search(r"10_?min", text) or text in {"record", "records", "track_record"}:
        return "track_10min_16mb"
    return None


def track_of_path(path: Path) -> str | None:
    """The track a folder's path puts it in: its innermost known `track_...` component."""
    for part in reversed(path.parts):
        track = normalize_track(part) if part.startswith("track_") else None
        if track:
            return track
    return None


@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of a strict submission.json."""
    text = resources.files("pgolf").joinpath("schemas/submission.schema.json").read_text("utf-8")
    return json.loads(text)


def validate(data: object) -> list[str]:
    """Strict schema errors of `data` (empty list = valid), one readable line each."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        problems.append(f"{where}: {error.message}")
    if isinstance(data, dict):
        for key in ("val_bpb", "val_loss", "val_bpb_std"):
            value = data.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{key}: {value} is not a finite number")
    return problems


def as_number(value: object) -> float | None:
    """A JSON value as a float: numbers and numeric strings ("1,234"), else None (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            return None
    return None


def _coerce(key: str, value: object, problems: list[str], where: str) -> object:
    """Numbers written as strings become numbers (with a problem noted); others pass through."""
    if key in _INT_FIELDS or key in {"val_bpb", "val_loss", "val_bpb_std"} or key in _SEED_FIELDS:
        if value is None:
            return None
        number = as_number(value)
        if number is None:
            problems.append(f"{where}{key}: {value!r} is not a number")
            return value
        if not isinstance(value, int | float) or isinstance(value, bool):
            problems.append(f"{where}{key}: number written as {type(value).__name__} {value!r}")
        if key in _INT_FIELDS and number.is_integer():
            return int(number)
        return number
    return value


def _seed_entry(raw: object, problems: list[str], where: str) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if isinstance(raw, int | float | str) and not isinstance(raw, bool):
        raw = {"val_bpb": raw}
    if not isinstance(raw, dict):
        problems.append(f"{where}: per-seed result is not an object")
        return entry
    for key, value in raw.items():
        if key in _MS_FIELDS:
            number = as_number(value)
            if number is not None:
                entry.setdefault(_MS_FIELDS[key], number / 1000.0)
            continue
        canonical = _SEED_FIELD_ALIASES.get(key, key)
        if canonical in _SEED_FIELDS:
            entry.setdefault(canonical, _coerce(canonical, value, problems, f"{where}."))
    return entry


def _seed_key(value: object) -> str | None:
    text = str(value).strip()
    text = re.sub(r"^(?:seed[_\-]?)", "", text, flags=re.IGNORECASE)
    return text if re.fullmatch(r"-?\d+", text) else None


def _collect_seed_results(data: dict[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}

    def merge(seed: object, raw: object, where: str) -> None:
        key = _seed_key(seed)
        if key is None:
            problems.append(f"{where}: {seed!r} is not a seed number")
            return
        entry = _seed_entry(raw, problems, f"{where}.{key}")
        if entry:
            target = results.setdefault(key, {})
            for field, value in entry.items():
                target.setdefault(field, value)

    seed_results = data.get("seed_results")
    if isinstance(seed_results, dict):
        for seed, raw in seed_results.items():
            merge(seed, raw, "seed_results")
    elif isinstance(seed_results, list):
        for index, raw in enumerate(seed_results):
            seed = raw.get("seed") if isinstance(raw, dict) else None
            if seed is None:
                problems.append(f"seed_results[{index}]: no seed")
                continue
            merge(seed, raw, "seed_results")
    seeds = data.get("seeds")
    if isinstance(seeds, dict):
        for seed, raw in seeds.items():
            merge(seed, raw, "seeds")
    for legacy, field in _BY_SEED.items():
        values = data.get(legacy)
        if isinstance(values, dict):
            for seed, value in values.items():
                merge(seed, {field: value}, legacy)
    return results


def normalize(
    data: dict[str, Any], *, folder: Path | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Map a raw submission dict onto the canonical keys; returns (data, problems)."""
    problems: list[str] = []
    out: dict[str, Any] = dict(data)
    for key in (*REQUIRED, *OPTIONAL_SCALARS):
        for candidate in (key, *_ALIASES.get(key, ())):
            if candidate in data and data[candidate] is not None:
                value = data[candidate]
                out[key] = _coerce(key, value, problems, "")
                break
    if isinstance(out.get("author"), list):
        out["author"] = ", ".join(str(name) for name in out["author"])
    hardware = out.get("hardware")
    if isinstance(hardware, dict):
        out["hardware"] = ", ".join(f"{k}: {v}" for k, v in hardware.items())
    elif hardware is not None and not isinstance(hardware, str):
        out["hardware"] = str(hardware)
    if "hardware" not in out and "num_gpus" in data and "gpu_type" in data:
        out["hardware"] = f"{data['num_gpus']}x{data['gpu_type']}"
    track_raw = data.get("track", data.get("category"))
    track = normalize_track(track_raw)
    if track is None and folder is not None:
        track = track_of_path(folder.resolve())
    if track is not None:
        out["track"] = track
    elif track_raw is not None:
        problems.append(f"track {track_raw!r} is not a known track")
    seed_results = _collect_seed_results(data, problems)
    if seed_results:
        out["seed_results"] = seed_results
    seeds = data.get("seeds")
    seed_list: list[int] = []
    if isinstance(seeds, list):
        for seed in seeds:
            key = _seed_key(seed)
            if key is None:
                problems.append(f"seeds: {seed!r} is not a seed number")
            else:
                seed_list.append(int(key))
    elif "seed" in data and _seed_key(data["seed"]) is not None:
        seed_list.append(int(str(_seed_key(data["seed"]))))
    for key in seed_results:
        if int(key) not in seed_list:
            seed_list.append(int(key))
    if seed_list:
        out["seeds"] = list(dict.fromkeys(seed_list))
    if isinstance(data.get("pgolf"), dict):
        out["pgolf"] = data["pgolf"]
    for key in REQUIRED:
        if key not in out:
            problems.append(f"required field {key!r} is missing")
    return out, problems


def read_submission(path: Path | str) -> tuple[dict[str, Any], list[str]]:
    """Read a submission.json leniently: (canonical dict, problems). Never raises on content.

    The dict holds every key of the file, with the canonical keys (schema names, canonical
    track, `seed_results` keyed by seed string, `seeds` a list of ints) added or normalised.
    `strict_view` keeps only the schema's keys. Raises `InputError` only if the file cannot
    be read at all.
    """
    file_path = Path(path)
    try:
        info = file_path.stat()
        if not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
            # A FIFO or a device would block or never end.
            raise InputError(f"{file_path}: cannot read (not a regular file)")
        if info.st_size > MAX_SUBMISSION_BYTES:
            return {}, [
                f"{file_path.name}: {info.st_size} bytes, too large for a submission.json "
                f"(limit {MAX_SUBMISSION_BYTES}); not read"
            ]
        raw = file_path.read_bytes()
    except OSError as exc:
        raise InputError(f"{file_path}: cannot read ({exc.strerror or exc})") from exc
    text = raw.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, [f"{file_path.name}: invalid JSON ({exc.msg} at line {exc.lineno})"]
    except RecursionError:
        return {}, [f"{file_path.name}: invalid JSON (nested too deeply)"]
    if not isinstance(data, dict):
        return {}, [f"{file_path.name}: top level is {type(data).__name__}, not an object"]
    return normalize(data, folder=file_path.parent)


def strict_view(data: dict[str, Any]) -> dict[str, Any]:
    """The schema's keys of a (normalized) dict: what a strict file holds."""
    known = schema()["properties"]
    return {key: value for key, value in data.items() if key in known and value is not None}


def write_submission(path: Path | str, data: dict[str, Any]) -> None:
    """Validate strictly against the schema, then write atomically (temp file + rename)."""
    problems = validate(data)
    if problems:
        raise InputError(f"{path}: submission is not valid: " + "; ".join(problems[:5]))
    atomic_write_text(Path(path), json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600): give it the existing file's mode, else umask's.
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temp, mode)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise

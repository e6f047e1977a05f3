"""MANIFEST.json of a record folder: sha256 and size of every file, plus what produced them.

The manifest makes a record folder checkable by anyone later: `pgolf verify` recomputes every
hash and size and reports each difference. It also carries facts that cannot be recomputed
from the folder alone (the data fingerprint, the artifacts that were left out because they are
large binaries, the audit verdict at packaging time and any recorded `--allow-fail` reason).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgolf.errors import InputError

MANIFEST_NAME = "MANIFEST.json"
SCHEMA = "pgolf.manifest/1"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in bounded memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def list_files(folder: Path) -> list[str]:
    """Every regular file under `folder` (relative POSIX paths, sorted), except the manifest.

    Symlinks are listed (so that verify can flag them) but never followed.
    """
    found: list[str] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in files:
            rel = (Path(root) / name).relative_to(folder).as_posix()
            if rel != MANIFEST_NAME:
                found.append(rel)
    return sorted(found)


def hash_folder(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative path: {sha256, size}} of every file of the folder except MANIFEST.json."""
    return {rel: file_entry(folder / rel) for rel in list_files(folder)}


def build_manifest(
    folder: Path,
    *,
    pgolf_version: str,
    data_fingerprint: str | None,
    artifacts: dict[str, dict[str, Any]],
    run: dict[str, Any],
    statistics: dict[str, Any],
    caps: dict[str, Any],
    audit: dict[str, Any],
    allow_fail: dict[str, Any] | None,
    created: str,
) -> dict[str, Any]:
    """The manifest of an assembled folder; `files` is computed from the folder itself."""
    return {
        "schema": SCHEMA,
        "pgolf_version": pgolf_version,
        "created": created,
        "data_fingerprint": data_fingerprint,
        "files": hash_folder(folder),
        "artifacts": artifacts,
        "run": run,
        "statistics": statistics,
        "caps": caps,
        "audit": audit,
        "allow_fail": allow_fail,
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, None when it has none; InputError when it is unusable."""
    path = folder / MANIFEST_NAME
    if not path.exists():
        return None
    if not path.is_file():
        raise InputError(f"{path}: corrupt manifest, not a regular file")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: corrupt manifest, not readable JSON ({exc})") from None
    problems = manifest_problems(data)
    if problems:
        raise InputError(f"{path}: corrupt manifest: {problems[0]}")
    return data


def manifest_problems(data: Any) -> list[str]:
    """Structural problems that make a manifest unusable (first one is shown to the user)."""
    if not isinstance(data, dict):
        return ["top level is not an object"]
    if data.get("schema") != SCHEMA:
        return [f"schema is {data.get('schema')!r}, expected {SCHEMA!r}"]
    files = data.get("files")
    if not isinstance(files, dict):
        return ["'files' is missing or not an object"]
    problems = []
    for rel, entry in files.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or not isinstance(entry.get("size"), int)
        ):
            problems.append(f"entry for {rel!r} lacks a sha256 string and an integer size")
        elif not safe_relpath(rel):
            problems.append(f"entry {rel!r} is not a safe relative path")
    for key in ("artifacts", "statistics", "audit", "run", "caps", "allow_fail"):
        if key in data and data[key] is not None and not isinstance(data[key], dict):
            problems.append(f"'{key}' is not an object")
    fingerprint = data.get("data_fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        problems.append("'data_fingerprint' is not a string")
    for seed, art in (
        (data.get("artifacts") or {}).items() if isinstance(data.get("artifacts"), dict) else ()
    ):
        if not isinstance(art, dict):
            problems.append(f"artifact entry {seed!r} is not an object")
        elif art.get("path") is not None and not (
            isinstance(art["path"], str) and safe_relpath(art["path"])
        ):
            problems.append(f"artifact path {art['path']!r} is not a safe relative path")
        elif art.get("size") is not None and not isinstance(art["size"], int):
            problems.append(f"artifact entry {seed!r} has a size that is not an integer")
    audit = data.get("audit")
    if isinstance(audit, dict) and not isinstance(audit.get("findings", []), list):
        problems.append("'audit.findings' is not a list")
    stats = data.get("statistics")
    if isinstance(stats, dict) and not isinstance(stats.get("seeds", {}), dict):
        problems.append("'statistics.seeds' is not an object")
    return problems


def safe_relpath(rel: str) -> bool:
    parts = Path(rel).parts
    return bool(parts) and not Path(rel).is_absolute() and ".." not in parts and "\\" not in rel


@dataclass(frozen=True)
class FileDifference:
    """One file whose presence, size or hash departs from the manifest."""

    file: str
    kind: str  # missing | extra | size | sha256 | symlink
    expected: str
    actual: str


def diff_files(folder: Path, recorded: dict[str, dict[str, Any]]) -> list[FileDifference]:
    """Every difference between the folder's files and the manifest's `files` table."""
    diffs: list[FileDifference] = []
    present = set(list_files(folder))
    for rel in sorted(recorded):
        entry = recorded[rel]
        path = folder / rel
        if rel not in present:
            diffs.append(FileDifference(rel, "missing", "present", "absent"))
            continue
        if path.is_symlink():
            diffs.append(FileDifference(rel, "symlink", "regular file", "symlink"))
            continue
        if not path.is_file():
            # A FIFO or device would block or never end when read for hashing.
            diffs.append(FileDifference(rel, "type", "regular file", "not a regular file"))
            continue
        size = path.stat().st_size
        if size != entry["size"]:
            diffs.append(FileDifference(rel, "size", str(entry["size"]), str(size)))
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            diffs.append(FileDifference(rel, "sha256", entry["sha256"], digest))
    for rel in sorted(present - set(recorded)):
        diffs.append(FileDifference(rel, "extra", "absent", "present"))
    return diffs

"""Collect the files of a folder safely: no escaping symlinks, bounded reads, binary detection.

The collector never follows a symlink that leaves the folder, never reads more than a
bounded prefix of a file as text, and never raises on file content. Everything it skips is
returned as a problem so that a rule can report it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from audit import facts
from pgolf.errors import InputError

# Folders that are never part of a submission (caches, VCS).
SKIP_DIRS = frozenset({".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"})
MAX_FILES = 5000
MAX_DEPTH = 8


@dataclass(frozen=True)
class FolderFile:
    """One regular file inside the folder (symlinks resolved only if they stay inside)."""

    rel: str  # posix path relative to the folder
    path: Path
    size: int
    binary: bool


@dataclass
class FolderScan:
    root: Path
    files: list[FolderFile] = field(default_factory=list)
    # (relative path, problem) for everything skipped.
    problems: list[tuple[str, str]] = field(default_factory=list)

    def get(self, rel: str) -> FolderFile | None:
        for f in self.files:
            if f.rel == rel:
                return f
        return None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def looks_binary(path: Path) -> bool:
    """True for known binary suffixes or a NUL byte in the first 8 KiB."""
    if path.suffix.lower() in facts.BINARY_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            return b"\0" in fh.read(8192)
    except OSError:
        return True


def scan_folder(folder: Path) -> FolderScan:
    """List the folder's regular files. Raises InputError only if the folder itself is unusable."""
    if not folder.exists():
        raise InputError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    root = folder.resolve()
    scan = FolderScan(root=root)
    try:
        os.listdir(root)
    except OSError as exc:
        raise InputError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        here, depth = stack.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as exc:
            scan.problems.append((_rel(Path(here), root), f"cannot list: {exc.strerror or exc}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            rel = _rel(path, root)
            if entry.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    scan.problems.append((rel, "broken or looping symlink, skipped"))
                    continue
                if not _inside(target, root):
                    scan.problems.append((rel, f"symlink leaves the folder (-> {target}), skipped"))
                    continue
                if target.is_dir():
                    scan.problems.append((rel, "symlink to a folder, skipped"))
                    continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name in SKIP_DIRS:
                    continue
                if depth + 1 > MAX_DEPTH:
                    scan.problems.append((rel, f"nested deeper than {MAX_DEPTH} levels, skipped"))
                    continue
                stack.append((path, depth + 1))
                continue
            try:
                st = path.stat()
            except OSError as exc:
                scan.problems.append((rel, f"cannot stat: {exc.strerror or exc}"))
                continue
            if not path.is_file():
                scan.problems.append((rel, "not a regular file, skipped"))
                continue
            if len(scan.files) >= MAX_FILES:
                scan.problems.append((rel, f"more than {MAX_FILES} files, rest skipped"))
                return scan
            scan.files.append(FolderFile(rel, path, st.st_size, looks_binary(path)))
    scan.files.sort(key=lambda f: f.rel)
    return scan


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def read_text(file: FolderFile, limit: int = facts.MAX_TEXT_BYTES) -> tuple[str, bool]:
    """Read at most `limit` bytes as text (undecodable bytes replaced). Returns (text, truncated)."""
    with file.path.open("rb") as fh:
        data = fh.read(limit + 1)
    truncated = len(data) > limit
    return data[:limit].decode("utf-8", errors="replace"), truncated


def read_head(file: FolderFile, limit: int) -> str:
    with file.path.open("rb") as fh:
        return fh.read(limit).decode("utf-8", errors="replace")

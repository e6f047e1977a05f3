"""Copy the labelled record folders out of the upstream git mirror into a cache directory.

The mirror is a bare git dir (``PGOLF_MIRROR``); folders land in ``$PGOLF_LABELS_CACHE``
(default ``/tmp/pgolf-labels``) as ``<pr>/<folder path>/``, never inside the repository
(upstream code and logs are not ours to commit). The copy keeps the ``records/<track>/`` part
of the path, as in an upstream checkout: the auditor reads the track from it when
submission.json has no ``track``. ``--flat`` copies to ``<pr>/<folder name>/`` instead (the
layout before 2026-11-25, which loses the track). Blobs the mirror omits are skipped.

    PGOLF_MIRROR=/work/.mirror/openai+parameter-golf/repo python benchmarks/fetch_labels.py
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LABELS = Path("/work/shared/labels/dev.tsv")
MAX_BLOB_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Label:
    pr: int
    folder: str
    verdict: str
    reasons: tuple[str, ...]
    evidence: str


def read_labels(path: Path) -> list[Label]:
    """Read a labels TSV (``pr folder verdict reasons evidence``)."""
    rows: list[Label] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            reasons = tuple(r.strip() for r in (row.get("reasons") or "").split(",") if r.strip())
            rows.append(
                Label(
                    pr=int(row["pr"]),
                    folder=row["folder"].strip().rstrip("/"),
                    verdict=row["verdict"].strip(),
                    reasons=reasons,
                    evidence=row.get("evidence") or "",
                )
            )
    return rows


def cache_dir() -> Path:
    return Path(os.environ.get("PGOLF_LABELS_CACHE", "/tmp/pgolf-labels"))


def _git(mirror: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(mirror), *args], check=True, capture_output=True).stdout


def materialise(
    label: Label, mirror: Path, dest_root: Path | None = None, *, flat: bool = False
) -> Path | None:
    """Return the local copy of the label's folder, copying it from the mirror once."""
    dest_root = dest_root or cache_dir()
    if ".." in Path(label.folder).parts or Path(label.folder).is_absolute():
        return None
    dest = dest_root / str(label.pr) / (Path(label.folder).name if flat else label.folder)
    done = dest / ".pgolf-fetched"
    if done.exists():
        return dest
    ref = f"refs/pull/{label.pr}/head"
    try:
        listing = _git(mirror, "ls-tree", "-r", "-l", ref, "--", label.folder + "/")
    except subprocess.CalledProcessError:
        return None
    if not listing.strip():
        return None
    for raw in listing.decode("utf-8", "replace").splitlines():
        meta, _, path = raw.partition("\t")
        parts = meta.split()
        if len(parts) < 4 or parts[1] != "blob":
            continue
        sha, size = parts[2], parts[3]
        if size.isdigit() and int(size) > MAX_BLOB_BYTES:
            continue
        rel = Path(path).relative_to(label.folder)
        if ".." in rel.parts:
            continue
        try:
            blob = _git(mirror, "cat-file", "blob", sha)
        except subprocess.CalledProcessError:
            continue  # the mirror omits large files
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    dest.mkdir(parents=True, exist_ok=True)
    done.write_text(ref + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="labels TSV")
    parser.add_argument(
        "--flat", action="store_true", help="copy to <pr>/<folder name> (drops the track dir)"
    )
    args = parser.parse_args(argv)
    mirror = os.environ.get("PGOLF_MIRROR")
    if not mirror:
        print("PGOLF_MIRROR is not set: nothing to fetch (skipped).")
        return 0
    labels = read_labels(args.labels)
    missing = 0
    for label in labels:
        if materialise(label, Path(mirror), flat=args.flat) is None:
            missing += 1
            print(f"PR {label.pr}: folder {label.folder} not found in the mirror", file=sys.stderr)
    print(f"{len(labels) - missing}/{len(labels)} folders in {cache_dir()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

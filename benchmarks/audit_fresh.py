"""Accuracy of `pgolf audit` on a fresh, blind held-out set of real record claims.

The first held-out set (``audit_heldout.py``) was used to fix the auditor, so it no longer
measures generalisation. This set (``benchmarks/heldout_fresh.tsv``) was labelled afterwards by
reading each folder's code path and logs, and committed before the auditor ever ran on it. It is
disjoint from the dev labels, from the first held-out set and from the folders merged on upstream
main (the script refuses to run otherwise).

- invalid: a mechanism RULES.md forbids is switched on in the configuration that produced the
  logged score; ``conditions`` lists every condition it breaks (first = the main one). A claim is
  *caught* when an unsuppressed error finding has one of its conditions; per-condition recall
  counts a claim under each of its conditions.
- valid: a baseline variant with no eval-time adaptation, caching or mixing switched on, or a
  score-first TTT checked line by line; training reads only train shards; caps within limits in
  the logs. A valid claim *fails* when its report has any unsuppressed error finding.

Folders are copied from ``refs/pull/N/head`` of the mirror (``PGOLF_MIRROR``) into
``$PGOLF_HELDOUT_CACHE/fresh/<pr>/<folder path>`` (default ``/tmp/pgolf-heldout``), never into the
repository. The copy keeps the ``records/<track>/`` part of the path, as in an upstream checkout:
the auditor reads the track from it when submission.json has no ``track``. ``--flat`` copies to
``fresh/<pr>/<folder name>`` instead, the layout of the first run (2026-11-25), which loses it.

    PGOLF_MIRROR=/work/.mirror/openai+parameter-golf/repo python benchmarks/audit_fresh.py -v
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_heldout import INVALID, _line, audit_one, cache_root, copy_folder, merged_folders
from fetch_labels import DEFAULT_LABELS, read_labels

DEFAULT_FRESH = Path(__file__).resolve().parent / "heldout_fresh.tsv"


@dataclass(frozen=True)
class Fresh:
    """One blind label: where the claim is, its verdict, conditions broken, and how."""

    pr: int
    folder: str
    verdict: str
    conditions: tuple[str, ...]
    mechanism: str


def read_fresh(path: Path) -> list[Fresh]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [
            Fresh(
                pr=int(row["pr"]),
                folder=row["folder"].strip().rstrip("/"),
                verdict=row["verdict"].strip(),
                conditions=tuple(c.strip() for c in row["conditions"].split(",") if c.strip()),
                mechanism=row["mechanism"].strip(),
            )
            for row in csv.DictReader(fh, delimiter="\t")
        ]


def check_disjoint(rows: list[Fresh], mirror: Path, labels_path: Path) -> None:
    """Refuse a fresh row that is a dev label, a first held-out claim or a merged folder."""
    dev = read_labels(labels_path) if labels_path.exists() else []
    used_prs = {lb.pr for lb in dev} | {item.pr for item in INVALID}
    used_folders = {lb.folder for lb in dev} | {item.folder for item in INVALID}
    used_folders |= set(merged_folders(mirror))
    for r in rows:
        if r.pr in used_prs or r.folder in used_folders:
            raise SystemExit(f"#{r.pr} {r.folder} is not fresh (dev, first held-out or merged)")


def run(rows: list[Fresh], mirror: Path, verbose: bool, flat: bool = False) -> list[dict]:
    out = []
    for r in rows:
        base = cache_root() / ("fresh-flat" if flat else "fresh") / str(r.pr)
        dest = base / Path(r.folder).name if flat else base / r.folder
        local = copy_folder(mirror, f"refs/pull/{r.pr}/head", r.folder, dest)
        row: dict = {"pr": r.pr, "folder": r.folder, "verdict": r.verdict}
        if local is None:
            out.append({**row, "missing": True})
            continue
        row.update(conditions=list(r.conditions), mechanism=r.mechanism, **audit_one(local))
        row["failed"] = sorted({e["condition"] for e in row["errors"]})
        row["caught"] = bool(set(r.conditions) & set(row["failed"]))
        out.append(row)
        if verbose:
            if r.verdict == "invalid":
                mark = "caught" if row["caught"] else "MISSED"
                print(f"[invalid] {mark} #{r.pr} {','.join(r.conditions)} ({row['seconds']}s)")
            else:
                print(f"[valid] {'FAIL' if row['errors'] else 'pass'} #{r.pr} ({row['seconds']}s)")
            for e in row["errors"][:6]:
                print("    " + _line(e))
            if row["crash"]:
                print("    CRASH " + row["crash"])
    return out


def summarise(rows: list[dict]) -> None:
    got = [r for r in rows if not r.get("missing")]
    missing = [r for r in rows if r.get("missing")]
    invalid = [r for r in got if r["verdict"] == "invalid"]
    valid = [r for r in got if r["verdict"] == "valid"]
    if missing:
        print("missing: " + ", ".join(f"#{r['pr']}" for r in missing))
    per_cond: dict[str, list[dict]] = defaultdict(list)
    for r in invalid:
        for c in r["conditions"]:
            per_cond[c].append(r)
    print(f"\ninvalid fresh: {len(invalid)} claims")
    print(f"  {'condition':<10} {'invalid':>7} {'caught':>6} {'recall':>7}")
    for c in sorted(per_cond):
        rs = per_cond[c]
        hit = [r for r in rs if c in r["failed"]]
        print(f"  {c:<10} {len(rs):>7} {len(hit):>6} {100 * len(hit) / len(rs):>6.1f}%")
        missed = [str(r["pr"]) for r in rs if c not in r["failed"]]
        if missed:
            print(f"  {'':<10} missed: {', '.join(missed)}")
    if invalid:
        hit_all = [r for r in invalid if r["caught"]]
        pct = 100 * len(hit_all) / len(invalid)
        print(f"  {'overall':<10} {len(invalid):>7} {len(hit_all):>6} {pct:>6.1f}%")
        main_hit = [r for r in invalid if r["conditions"][0] in r["failed"]]
        print(f"  main condition caught: {len(main_hit)}/{len(invalid)}")
    for r in invalid:
        if not r["caught"]:
            other = ", ".join(r["failed"]) or "none"
            print(f"    missed #{r['pr']} {','.join(r['conditions'])} (errors on: {other})")
    if valid:
        failed = [r for r in valid if r["errors"]]
        pct = 100 * len(failed) / len(valid)
        print(f"\nvalid fresh: {len(valid)} claims; false positives: {len(failed)} ({pct:.1f}%)")
        for r in failed:
            print(f"    #{r['pr']}: " + " | ".join(_line(e) for e in r["errors"][:3]))
    crashes = [r for r in got if r.get("crash")]
    for r in crashes:
        print(f"    CRASH #{r['pr']}: {r['crash']}")
    warn_rules = Counter(rule for r in valid for rule in {w["rule"] for w in r["warnings"]})
    if warn_rules:
        print(
            "  valid folders with a warning, per rule: "
            + ", ".join(f"{k}={v}" for k, v in sorted(warn_rules.items()))
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", type=Path, default=DEFAULT_FRESH, help="fresh labels TSV")
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="dev labels TSV")
    parser.add_argument("--only", default="", help="comma-separated PR numbers to audit")
    parser.add_argument("--json", type=Path, default=None, help="write per-claim results here")
    parser.add_argument(
        "--flat", action="store_true", help="copy to <pr>/<folder name> (drops the track dir)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every claim")
    args = parser.parse_args(argv)
    mirror = os.environ.get("PGOLF_MIRROR")
    if not mirror or not Path(mirror).exists():
        print("PGOLF_MIRROR is not set: skipping the fresh held-out benchmark.")
        return 0
    rows = read_fresh(args.fresh)
    check_disjoint(rows, Path(mirror), args.labels)
    if args.only:
        wanted = {int(x) for x in args.only.split(",") if x.strip()}
        rows = [r for r in rows if r.pr in wanted]
    t0 = time.perf_counter()
    results = run(rows, Path(mirror), args.verbose, args.flat)
    summarise(results)
    print(f"\nelapsed {time.perf_counter() - t0:.1f}s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

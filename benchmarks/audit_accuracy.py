"""Accuracy of `pgolf audit` on real, labelled upstream record claims.

For every labelled pull request the record folder is copied out of the upstream mirror
(``PGOLF_MIRROR``, via benchmarks/fetch_labels.py, cached outside the repository) and audited
with `audit.engine.audit_folder`. A claim is *failed* on a condition when the report has an
unsuppressed error finding of that condition. Printed per condition and overall:

- recall: share of invalid claims failed with a matching condition (target >= 90%);
- false-positive rate: share of valid claims failed at all (target <= 5%).

    PGOLF_MIRROR=/work/.mirror/openai+parameter-golf/repo python benchmarks/audit_accuracy.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fetch_labels import DEFAULT_LABELS, Label, materialise, read_labels

# Label reasons -> RULES.md conditions ("other" has no condition a static rule could match).
REASON_TO_CONDITION = {
    "ngram_unnormalized": "C2",
    "val_in_train": "R4",
    "bytes_cap": "R1",
    "train_time": "R2",
    "eval_time": "R3",
    "C1": "C1",
    "C2": "C2",
    "C3": "C3",
    "C4": "C4",
}


def expected_conditions(label: Label) -> set[str]:
    return {REASON_TO_CONDITION[r] for r in label.reasons if r in REASON_TO_CONDITION}


def failed_conditions(report: object) -> tuple[set[str], list[str]]:
    """Conditions with an unsuppressed error finding, and a short line per such finding."""
    conds: set[str] = set()
    lines: list[str] = []
    for f in getattr(report, "findings", []):
        sev = getattr(f.severity, "value", f.severity)
        if sev != "error" or f.suppressed:
            continue
        conds.add(f.condition)
        lines.append(f"{f.rule} {f.condition} {f.file}:{f.line} {(f.message or '')[:90]}")
    return conds, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="labels TSV")
    parser.add_argument("--only", default="", help="comma-separated PR numbers to audit")
    parser.add_argument("--json", type=Path, default=None, help="write per-claim results here")
    parser.add_argument(
        "--flat", action="store_true", help="copy to <pr>/<folder name> (drops the track dir)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every claim")
    args = parser.parse_args(argv)
    mirror = os.environ.get("PGOLF_MIRROR")
    if not mirror:
        print("PGOLF_MIRROR is not set: skipping the accuracy benchmark.")
        return 0
    if not args.labels.exists():
        print(f"labels file {args.labels} not found: skipping the accuracy benchmark.")
        return 0
    from audit.engine import audit_folder

    labels = read_labels(args.labels)
    if args.only:
        wanted = {int(x) for x in args.only.split(",") if x.strip()}
        labels = [lb for lb in labels if lb.pr in wanted]
    rows = []
    t0 = time.perf_counter()
    for label in labels:
        folder = materialise(label, Path(mirror), flat=args.flat)
        if folder is None:
            rows.append({"pr": label.pr, "verdict": label.verdict, "missing": True})
            continue
        t = time.perf_counter()
        try:
            report = audit_folder(folder)
            conds, lines = failed_conditions(report)
            error = None
        except Exception as exc:  # a crash is a result too: it counts as not failed
            conds, lines, error = set(), [], f"{type(exc).__name__}: {exc}"
        rows.append(
            {
                "pr": label.pr,
                "verdict": label.verdict,
                "expected": sorted(expected_conditions(label)),
                "reasons": list(label.reasons),
                "failed": sorted(conds),
                "findings": lines,
                "error": error,
                "seconds": round(time.perf_counter() - t, 2),
            }
        )
        if args.verbose:
            r = rows[-1]
            print(
                f"#{label.pr} {label.verdict} expected={r['expected']} failed={r['failed']} {r['seconds']}s"
            )
            for ln in lines[:8]:
                print("    " + ln)
            if error:
                print("    ERROR " + error)
    elapsed = time.perf_counter() - t0
    print_summary(rows, elapsed)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def print_summary(rows: list[dict], elapsed: float) -> None:
    present = [r for r in rows if not r.get("missing")]
    invalid = [r for r in present if r["verdict"] == "invalid" and r["expected"]]
    valid = [r for r in present if r["verdict"] == "valid"]
    per_cond: dict[str, list[dict]] = defaultdict(list)
    for r in invalid:
        for c in r["expected"]:
            per_cond[c].append(r)
    print(
        f"\naudited {len(present)} folders in {elapsed:.1f}s ({len(rows) - len(present)} missing)"
    )
    print(f"{'condition':<10} {'invalid':>7} {'caught':>6} {'recall':>7}")
    for c in sorted(per_cond):
        rs = per_cond[c]
        hit = [r for r in rs if c in r["failed"]]
        print(f"{c:<10} {len(rs):>7} {len(hit):>6} {100 * len(hit) / len(rs):>6.1f}%")
        missed = [str(r["pr"]) for r in rs if c not in r["failed"]]
        if missed:
            print(f"{'':<10} missed: {', '.join(missed)}")
    hit_any = [r for r in invalid if set(r["expected"]) & set(r["failed"])]
    if invalid:
        print(
            f"{'overall':<10} {len(invalid):>7} {len(hit_any):>6} {100 * len(hit_any) / len(invalid):>6.1f}%"
        )
    fp = [r for r in valid if r["failed"]]
    if valid:
        print(
            f"false positives: {len(fp)}/{len(valid)} valid claims failed ({100 * len(fp) / len(valid):.1f}%)"
        )
        for r in fp:
            print(f"    #{r['pr']}: {', '.join(r['failed'])}; " + " | ".join(r["findings"][:3]))
    fp_by_cond: dict[str, int] = defaultdict(int)
    for r in valid:
        for c in r["failed"]:
            fp_by_cond[c] += 1
    if fp_by_cond:
        print(
            "valid claims failed, per condition: "
            + ", ".join(f"{c}={n}" for c, n in sorted(fp_by_cond.items()))
        )


if __name__ == "__main__":
    raise SystemExit(main())

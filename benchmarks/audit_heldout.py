"""Accuracy of `pgolf audit` on real record claims held out from the labelled dev set.

Two sets disjoint from ``/work/shared/labels/dev.tsv`` (no dev folder; no dev PR among the invalid):

- valid: every record folder merged on ``refs/heads/main`` of the upstream mirror that is
  not a dev folder; those the upstream README leaderboard links are marked as records.
  A valid folder *fails* when its report has an unsuppressed error finding.
- invalid: a hand-labelled list (``INVALID`` below) of pull requests whose record folder
  contains a mechanism RULES.md forbids, each checked by reading the code and the logged
  configuration (not by keyword). A claim is *caught* when the report has an unsuppressed
  error finding of the labelled condition.

Folders are copied out of the mirror (``PGOLF_MIRROR``) into ``$PGOLF_HELDOUT_CACHE``
(default ``/tmp/pgolf-heldout``), never into the repository; files the mirror omits
(>= 4 MiB) are skipped. Without ``PGOLF_MIRROR`` the benchmark skips. Copies keep the
``records/<track>/`` part of the path (the auditor reads the track from it); ``--flat`` copies
the invalid set to ``pr/<pr>/<folder name>`` instead, the layout before 2026-11-25.

    PGOLF_MIRROR=/work/.mirror/openai+parameter-golf/repo python benchmarks/audit_heldout.py -v
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fetch_labels import DEFAULT_LABELS, read_labels

TRACK_DIRS = ("records/track_10min_16mb/", "records/track_non_record_16mb/")
MAX_BLOB_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Invalid:
    """A self-labelled invalid claim: where it is, the condition broken, and how."""

    pr: int
    folder: str
    condition: str
    mechanism: str


# Each row was labelled by reading the folder's code at the PR head and its logs' hyperparameter
# dump: the mechanism is present and switched on in the configuration that produced the score.
INVALID: list[Invalid] = [
    Invalid(
        1399,
        "records/track_10min_16mb/2026-04-05_PreQuantTTT_ETLB_MuonEqR_DepthRecurrence_AllInt6",
        "C3",
        "pre-quant TTT: AdamW steps over val chunks before serialize(); adapted weights are the artifact (PRE_QUANT_TTT=1 in logs)",
    ),
    Invalid(
        1485,
        "records/track_10min_16mb/2026-04-09_SP8192_Recur345_Par7_EMA_QK5_PreQuantTTT",
        "C3",
        "pre-quant AdamW TTT, 6 epochs over val_tokens before serialize() (prequant_ttt_enabled: True)",
    ),
    Invalid(
        1735,
        "records/track_10min_16mb/2026-04-18_SP8192_ParallelPreQuantTTT",
        "C3",
        "pre-quant AdamW TTT, 21 epochs over val before GPTQ and serialize() (prequant_ttt_enabled: True)",
    ),
    Invalid(
        1852,
        "records/track_10min_16mb/2026-04-27_PreQuantTTT_VoidCompass_QK525",
        "C3",
        "packed code; prequant_ttt() returns a model tuned 21 epochs on val tokens, then serialize()",
    ),
    Invalid(
        1414,
        "records/track_non_record_16mb/2026-04-06_DiscTTT_SLOT24_3seed_8xH100",
        "C3",
        "SLOT: per-window delta + logit bias optimized 24 steps on the scored positions' targets, then those positions scored",
    ),
    Invalid(
        753,
        "records/track_10min_16mb/2026-03-25_PodracingII_backoff7gram_8xH100",
        "C2",
        "hashed 7-gram backoff: full_key = ctx_hash ^ target*prime, count ratio of the realized token mixed in (ngram_eval order=7 logged)",
    ),
    Invalid(
        802,
        "records/track_10min_16mb/2026-03-25_10L_NgramBackoff_EntropyAlpha",
        "C2",
        "hashed 2-7-gram backoff, full_key XORs the target token; p_ng of the realized token only (ngram_cache:enabled logged)",
    ),
    Invalid(
        864,
        "records/track_10min_16mb/2026-03-26_11L_ParallelMuon_NgramBackoff",
        "C2",
        "_batch_hash_full hashes targets into the key; chunked n-gram backoff boosts only the realized token (ngram_chunk logged)",
    ),
    Invalid(
        1854,
        "records/track_10min_16mb/2026-04-27_PR1797Base_PPMD_0.90236",
        "C2",
        "byte PPM-D mixture: NN token log-prob spread as logp/n_bytes over the realized bytes, mixed per byte (ppm_enabled: True)",
    ),
    Invalid(
        1873,
        "records/track_10min_16mb/records/track_10min_16mb/2026-04-27_SP10240Casefold_TTT_GPTQ_PPM-D_BPB0.8201",
        "C2",
        "minified code with Python 3.12 f-strings; token-level NN/PPM mixture whose gate is the PPM confidence at the realized token's last byte (ppm_enabled: True)",
    ),
    Invalid(
        1488,
        "records/track_10min_16mb/2026-04-09_SP1024_SLOT24_QK525_PreQuantTTT10",
        "C3",
        "pre-quant AdamW TTT 10 epochs on val before serialize (prequant_ttt:epoch logged), then SLOT-24 on scored windows (final_slot)",
    ),
    Invalid(
        2103,
        "records/track_10min_16mb/2026-04-30_SP1024_ValueResid_PPMMix",
        "C2",
        "byte PPM mixture: realized token prob spread as p ** (1/L) over its bytes, mixed with PPM per byte (ppm_mix_bpb is the headline)",
    ),
    Invalid(
        1498,
        "records/track_10min_16mb/2026-04-09_PreQuantTTT11_ValCalibGPTQ_SLOT24_Quad_Synthesis",
        "R4",
        "GPTQ Hessians collected from val tokens (GPTQ_CALIB_SOURCE=val, default and run.sh) and baked into the artifact; no logs (score pending)",
    ),
    Invalid(
        846,
        "records/track_10min_16mb/2026-03-27_TwoPassNgram_0.1434",
        "C4",
        "two-pass n-gram eval: first 15 chunks rescored with the cache built from all val (ngram_pass2 logged); target-keyed cache too",
    ),
    Invalid(
        912,
        "records/track_10min_16mb/2026-03-26_10L_TwoPass_Order11_Ngram",
        "C4",
        "pass 1 stores model probs over val, then a cache over ALL val tokens rescores every position (leave-one-out); reported score is the rescore",
    ),
]


def cache_root() -> Path:
    return Path(os.environ.get("PGOLF_HELDOUT_CACHE", "/tmp/pgolf-heldout"))


def _git(mirror: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(mirror), *args], check=True, capture_output=True).stdout


def copy_folder(mirror: Path, ref: str, folder: str, dest: Path) -> Path | None:
    """Copy ``folder`` at ``ref`` out of the mirror into ``dest`` once; None if absent."""
    done = dest / ".pgolf-fetched"
    if done.exists():
        return dest
    try:
        listing = _git(mirror, "ls-tree", "-r", "-l", "-z", ref, "--", folder + "/")
    except subprocess.CalledProcessError:
        return None
    entries = [e for e in listing.decode("utf-8", "replace").split("\0") if e]
    if not entries:
        return None
    for raw in entries:
        meta, _, path = raw.partition("\t")
        parts = meta.split()
        if len(parts) < 4 or parts[1] != "blob":
            continue
        sha, size = parts[2], parts[3]
        if size.isdigit() and int(size) >= MAX_BLOB_BYTES:
            continue  # the mirror omits large files
        rel = Path(path).relative_to(folder)
        if ".." in rel.parts:
            continue
        try:
            blob = _git(mirror, "cat-file", "blob", sha)
        except subprocess.CalledProcessError:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    dest.mkdir(parents=True, exist_ok=True)
    done.write_text(ref + "\n")
    return dest


def merged_folders(mirror: Path) -> list[str]:
    out = _git(mirror, "ls-tree", "-d", "--name-only", "refs/heads/main", *TRACK_DIRS)
    return [ln.strip() for ln in out.decode("utf-8", "replace").splitlines() if ln.strip()]


def leaderboard_folders(mirror: Path) -> set[str]:
    """Record folders the upstream README links (its leaderboards)."""
    readme = _git(mirror, "show", "refs/heads/main:README.md").decode("utf-8", "replace")
    return {m.rstrip("/") for m in re.findall(r"\((records/[^)]*?)/README\.md\)", readme)}


def heldout_valid(mirror: Path, labels_path: Path) -> list[tuple[str, bool]]:
    """(folder, on the leaderboard) for every merged folder outside the dev labels."""
    dev = {lb.folder for lb in read_labels(labels_path)} if labels_path.exists() else set()
    board = leaderboard_folders(mirror)
    return [(f, f in board) for f in merged_folders(mirror) if f not in dev]


def findings_of(report: object) -> tuple[list[dict], list[dict]]:
    """Unsuppressed error and warning findings as plain dicts."""
    errors: list[dict] = []
    warnings: list[dict] = []
    for f in getattr(report, "findings", []):
        if f.suppressed:
            continue
        sev = getattr(f.severity, "value", f.severity)
        row = {
            "rule": f.rule,
            "condition": f.condition,
            "file": f.file,
            "line": f.line,
            "message": (f.message or "")[:160],
        }
        if sev == "error":
            errors.append(row)
        elif sev == "warning":
            warnings.append(row)
    return errors, warnings


def audit_one(folder: Path) -> dict:
    from audit.engine import audit_folder

    t = time.perf_counter()
    try:
        errors, warnings = findings_of(audit_folder(folder))
        crash = None
    except Exception as exc:  # a crash is a result too: it counts as not failed
        errors, warnings, crash = [], [], f"{type(exc).__name__}: {exc}"
    return {
        "errors": errors,
        "warnings": warnings,
        "crash": crash,
        "seconds": round(time.perf_counter() - t, 2),
    }


def _line(e: dict) -> str:
    return f"{e['rule']} {e['condition']} {e['file']}:{e['line']} {e['message'][:90]}"


def run_valid(mirror: Path, labels_path: Path, verbose: bool) -> list[dict]:
    rows = []
    for folder, board in heldout_valid(mirror, labels_path):
        local = copy_folder(mirror, "refs/heads/main", folder, cache_root() / "main" / folder)
        if local is None:
            rows.append({"folder": folder, "leaderboard": board, "missing": True})
            continue
        row = {
            "folder": folder,
            "leaderboard": board,
            "has_code": any(local.rglob("*.py")),
            **audit_one(local),
        }
        rows.append(row)
        if verbose:
            mark = "FAIL" if row["errors"] else "pass"
            print(f"[valid] {mark} {folder} ({row['seconds']}s)")
            for e in row["errors"][:6]:
                print("    " + _line(e))
    return rows


def run_invalid(mirror: Path, labels_path: Path, verbose: bool, flat: bool = False) -> list[dict]:
    dev_prs = {lb.pr for lb in read_labels(labels_path)} if labels_path.exists() else set()
    rows = []
    for item in INVALID:
        if item.pr in dev_prs:
            raise SystemExit(f"PR {item.pr} is in the dev labels: not held out")
        base = cache_root() / "pr" / str(item.pr)
        dest = base / Path(item.folder).name if flat else base / item.folder
        local = copy_folder(mirror, f"refs/pull/{item.pr}/head", item.folder, dest)
        if local is None:
            rows.append({"pr": item.pr, "folder": item.folder, "missing": True})
            continue
        row = {
            "pr": item.pr,
            "folder": item.folder,
            "condition": item.condition,
            "mechanism": item.mechanism,
            **audit_one(local),
        }
        row["caught"] = any(e["condition"] == item.condition for e in row["errors"])
        rows.append(row)
        if verbose:
            mark = "caught" if row["caught"] else "MISSED"
            print(f"[invalid] {mark} #{item.pr} {item.condition} ({row['seconds']}s)")
            for e in row["errors"][:6]:
                print("    " + _line(e))
    return rows


def summarise(valid: list[dict], invalid: list[dict]) -> None:
    # A merged folder without any code file is a stray log, not a claim the auditor could pass.
    strays = [r for r in valid if not r.get("missing") and not r["has_code"]]
    present = [r for r in valid if not r.get("missing") and r["has_code"]]
    failed = [r for r in present if r["errors"]]
    board = [r for r in present if r["leaderboard"]]
    board_failed = [r for r in board if r["errors"]]
    missing = sum(1 for r in valid if r.get("missing"))
    print(
        f"\nvalid held-out: {len(present)} folders with code"
        f" ({len(strays)} without any code file, {missing} missing)"
    )
    for r in strays:
        print(f"    no code: {r['folder']}: " + " | ".join(_line(e) for e in r["errors"][:2]))
    if present:
        print(
            f"  false positives: {len(failed)}/{len(present)}"
            f" ({100 * len(failed) / len(present):.1f}%);"
            f" leaderboard records {len(board_failed)}/{len(board)}"
        )
    for r in failed:
        print(f"    {r['folder']}: " + " | ".join(_line(e) for e in r["errors"][:3]))
    crashes = [r for r in present if r.get("crash")]
    for r in crashes:
        print(f"    CRASH {r['folder']}: {r['crash']}")
    unparsed = [r for r in present if any(w["rule"] == "PG103" for w in r["warnings"])]
    for r in unparsed:
        print(f"    code not parsed (passes unaudited): {r['folder']}")
    err_rules = Counter(e["rule"] for r in present for e in r["errors"])
    warn_rules = Counter(w["rule"] for r in present for w in r["warnings"])
    warn_folders = Counter(rule for r in present for rule in {w["rule"] for w in r["warnings"]})
    if err_rules:
        print(
            "  error findings per rule: "
            + ", ".join(f"{k}={v}" for k, v in sorted(err_rules.items()))
        )
    if warn_rules:
        print(
            "  warnings per rule (findings/folders): "
            + ", ".join(f"{k}={v}/{warn_folders[k]}" for k, v in sorted(warn_rules.items()))
        )
    got = [r for r in invalid if not r.get("missing")]
    if not got:
        return
    per_cond: dict[str, list[dict]] = defaultdict(list)
    for r in got:
        per_cond[r["condition"]].append(r)
    print(f"\ninvalid held-out: {len(got)} claims ({len(invalid) - len(got)} missing)")
    print(f"  {'condition':<10} {'invalid':>7} {'caught':>6} {'recall':>7}")
    for c in sorted(per_cond):
        rs = per_cond[c]
        hit = [r for r in rs if r["caught"]]
        print(f"  {c:<10} {len(rs):>7} {len(hit):>6} {100 * len(hit) / len(rs):>6.1f}%")
    hit_all = [r for r in got if r["caught"]]
    print(
        f"  {'overall':<10} {len(got):>7} {len(hit_all):>6} {100 * len(hit_all) / len(got):>6.1f}%"
    )
    for r in got:
        if not r["caught"]:
            other = ", ".join(sorted({e["condition"] for e in r["errors"]})) or "none"
            print(f"    missed #{r['pr']} {r['condition']} (errors on: {other}): {r['mechanism']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="dev labels TSV")
    parser.add_argument(
        "--set", choices=("both", "valid", "invalid"), default="both", help="which set"
    )
    parser.add_argument("--json", type=Path, default=None, help="write per-folder results here")
    parser.add_argument(
        "--flat", action="store_true", help="copy to <pr>/<folder name> (drops the track dir)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every folder")
    args = parser.parse_args(argv)
    mirror = os.environ.get("PGOLF_MIRROR")
    if not mirror or not Path(mirror).exists():
        print("PGOLF_MIRROR is not set: skipping the held-out benchmark.")
        return 0
    t0 = time.perf_counter()
    valid = run_valid(Path(mirror), args.labels, args.verbose) if args.set != "invalid" else []
    invalid = (
        run_invalid(Path(mirror), args.labels, args.verbose, args.flat)
        if args.set != "valid"
        else []
    )
    summarise(valid, invalid)
    print(f"\nelapsed {time.perf_counter() - t0:.1f}s")
    if args.json:
        args.json.write_text(json.dumps({"valid": valid, "invalid": invalid}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

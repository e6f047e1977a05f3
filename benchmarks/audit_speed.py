"""Speed of `pgolf audit` relative to just unpacking and parsing the same code.

For the labelled dev folders (copied out of ``PGOLF_MIRROR`` by fetch_labels.py), measures
side by side in one process:

- parse: for every .py file, `audit.unpack.unpack_source` + `ast.parse` (the floor any static
  audit pays);
- audit: `audit.engine.audit_folder` on every folder, one call after another.

Prints both times and their ratio (target <= 3), plus the slowest folders and, per rule, the
time the code rules take (so the cost can be attributed).

    PGOLF_MIRROR=/work/.mirror/openai+parameter-golf/repo python benchmarks/audit_speed.py
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fetch_labels import DEFAULT_LABELS, materialise, read_labels


def _py_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if p.is_file() and not p.is_symlink())


def time_parse(folders: list[Path]) -> float:
    from audit.unpack import unpack_source

    t0 = time.perf_counter()
    for folder in folders:
        for py in _py_files(folder):
            text = py.read_bytes().decode("utf-8", errors="replace")
            out = unpack_source(text)
            with contextlib.suppress(SyntaxError, ValueError, RecursionError):
                ast.parse(out.text)
    return time.perf_counter() - t0


def _label(folder: Path) -> str:
    """The PR number a copied folder sits under (<cache>/<pr>/[records/<track>/]<name>)."""
    for part in folder.parts[::-1]:
        if part.isdigit():
            return f"#{part}"
    return folder.name


def time_audit(folders: list[Path]) -> tuple[float, list[tuple[float, str]]]:
    from audit.engine import audit_folder

    per: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    for folder in folders:
        t = time.perf_counter()
        audit_folder(folder)
        per.append((time.perf_counter() - t, _label(folder)))
    return time.perf_counter() - t0, per


def time_rules(folders: list[Path]) -> dict[str, float]:
    """Per-rule time of the code rules (C1-C4), on contexts built once per folder."""
    from audit.context import build_context
    from audit.engine import load_rules

    rules = [cls() for cls in load_rules() if cls.condition in {"C1", "C2", "C3", "C4"}]
    spent: dict[str, float] = defaultdict(float)
    for folder in folders:
        ctx = build_context(folder)
        t = time.perf_counter()
        from audit.rules import _scoring

        _scoring.analyze(ctx)
        spent["(scoring model)"] += time.perf_counter() - t
        for rule in rules:
            t = time.perf_counter()
            with contextlib.suppress(Exception):  # the engine isolates crashes the same way
                list(rule.check(ctx))
            spent[rule.id] += time.perf_counter() - t
    return dict(spent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="labels TSV")
    parser.add_argument("--limit", type=int, default=0, help="only the first N folders")
    parser.add_argument("--per-rule", action="store_true", help="also time each code rule")
    args = parser.parse_args(argv)
    mirror = os.environ.get("PGOLF_MIRROR")
    if not mirror:
        print("PGOLF_MIRROR is not set: skipping the speed benchmark.")
        return 0
    if not args.labels.exists():
        print(f"labels file {args.labels} not found: skipping the speed benchmark.")
        return 0
    labels = read_labels(args.labels)
    if args.limit:
        labels = labels[: args.limit]
    folders = [f for f in (materialise(lb, Path(mirror)) for lb in labels) if f is not None]
    parse_s = time_parse(folders)
    audit_s, per = time_audit(folders)
    print(f"folders: {len(folders)}")
    print(f"unpack+parse: {parse_s:.2f}s")
    print(f"audit:        {audit_s:.2f}s")
    print(f"ratio audit/parse: {audit_s / max(parse_s, 1e-9):.2f} (target <= 3)")
    print(
        "slowest folders: "
        + ", ".join(f"{name} {s:.1f}s" for s, name in sorted(per, reverse=True)[:5])
    )
    if args.per_rule:
        spent = time_rules(folders)
        print(
            "code rules: "
            + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]))
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

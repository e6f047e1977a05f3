"""Overhead of `pgolf run`: wall time of a 3-seed run over the trainer's own logged time.

    python benchmarks/run_overhead.py                 # bundled trainer, ~30 s of training per seed
    python benchmarks/run_overhead.py --train-s 10    # shorter
    python benchmarks/run_overhead.py --fake          # fake trainer: isolates pgolf's own cost

ratio = wall time of `pgolf run --seeds 1 2 3` / sum over seeds of (logged train + eval time).
Target <= 1.10. The run is also split into its parts: the trainer's startup outside its own
timers (Python and torch import, data loading: per-seed subprocess wall minus logged times) and
pgolf's own cost (total wall minus the subprocesses' wall). Results are appended to
benchmarks/RESULTS.md under the heading `run_overhead.py`.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
FAKE = ROOT / "tests" / "fixtures" / "run" / "fake_trainer.py"
TARGET = 1.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", default=["1", "2", "3"], help="seeds to run")
    parser.add_argument("--train-s", type=float, default=30.0, help="training wallclock per seed")
    parser.add_argument("--fake", action="store_true", help="use the fake trainer (sleeps)")
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pgolf-bench-") as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "pgolf.cli", "run", "--seeds", *args.seeds]
        command += ["--out", str(out), "--no-audit"]
        if args.fake:
            sleep_ms = int(args.train_s * 1000)
            command += ["--script", str(FAKE)]
            for pair in (
                "FAKE_MODE=slow",
                f"FAKE_SLEEP_S={args.train_s}",
                f"FAKE_TRAIN_MS={sleep_ms}",
                "FAKE_EVAL_MS=0",
            ):
                command += ["--env", pair]
        else:
            # Train until the wallclock cap; evaluation covers the whole (small) val split.
            for pair in ("ITERATIONS=100000", f"MAX_WALLCLOCK_SECONDS={args.train_s}"):
                command += ["--env", pair]
        # The default dataset is built once before timing (first use builds it).
        subprocess.run([sys.executable, "-m", "pgolf.cli", "data"], check=True, capture_output=True)
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"pgolf run failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr}")
        state = json.loads((out / "run.json").read_text())
    seeds = state["seeds"].values()
    logged = sum((s["train_time_s"] or 0.0) + (s["eval_time_s"] or 0.0) for s in seeds)
    subprocess_wall = sum(s["wall_s"] or 0.0 for s in seeds)
    ratio = wall / logged
    startup = subprocess_wall - logged
    pgolf_cost = wall - subprocess_wall
    verdict = "meets" if ratio <= TARGET else "misses"
    trainer = "fake trainer (sleep)" if args.fake else "bundled trainer"
    lines = [
        f"- {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} "
        f"{platform.python_version()}, {trainer}, {len(args.seeds)} seeds, "
        f"~{args.train_s:g} s training per seed:",
        f"  wall {wall:.1f} s / logged train+eval {logged:.1f} s = **ratio {ratio:.3f}** "
        f"({verdict} the {TARGET} target); trainer startup outside its timers {startup:.1f} s, "
        f"pgolf's own cost {pgolf_cost:.2f} s "
        f"(runner-only ratio {wall / subprocess_wall:.3f}).",
    ]
    print("\n".join(lines))
    if not args.no_write:
        _append(lines)


def _append(lines: list[str]) -> None:
    heading = "## run_overhead.py"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if heading not in text:
        text = text.rstrip("\n") + (
            f"\n\n{heading}\n\n`pgolf run` wall time over the trainer's logged train+eval time "
            f"for a 3-seed run (target <= {TARGET}).\n\n"
        )
        text += "\n".join(lines) + "\n"
    else:
        before, after = text.split(heading, 1)
        # Insert at the end of this section (before the next `## ` heading).
        cut = after.find("\n## ")
        section, rest = (after, "") if cut < 0 else (after[:cut], after[cut:])
        text = before + heading + section.rstrip("\n") + "\n" + "\n".join(lines) + "\n" + rest
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()

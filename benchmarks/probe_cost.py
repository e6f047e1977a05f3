"""Benchmark: cost of the C2 probe against one full evaluation pass of the bundled model.

Both are measured side by side in the same sandboxed scorer process (the one `pgolf probe`
uses): `score()` over the whole validation split of the embedded default dataset (one full
evaluation pass), then the C2 probe at 32 positions over the 1024-token vocabulary, rows
through `score_batch`, then the full pass again. The ratio divides the C2 time by the mean of
the two full passes, both in wall-clock seconds and in CPU seconds of the scorer process
(read from /proc; steadier on a shared machine). Target: ratio <= 2.0. Appends a section to
benchmarks/RESULTS.md.

    python benchmarks/probe_cost.py                     # default config, PPM off
    python benchmarks/probe_cost.py --env PPM_ENABLED=1 --context 8 16 32
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from audit.probes import c2
from audit.probes.client import ScorerClient
from audit.probes.sandbox import ScorerProcess
from audit.probes.slices import TokenSlice

ROOT = Path(__file__).resolve().parents[1]
TRAINER = ROOT / "pgolf" / "train_gpt.py"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; nan elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(pid: int, work: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of the scorer process, result) of `work()`."""
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    value = work()
    return time.perf_counter() - t0, cpu_seconds(pid) - c0, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=c2.DEFAULT_POSITIONS)
    parser.add_argument("--context", type=int, nargs="+", default=[c2.DEFAULT_CONTEXT])
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-append", action="store_true", help="do not touch RESULTS.md")
    opts = parser.parse_args()

    from pgolf.data import ensure_default_dataset
    from pgolf.data.shards import read_shard

    dataset = ensure_default_dataset(1024, progress=False)
    val_files = sorted(p for p in dataset.path.glob("fineweb_val_*.bin") if "bytes" not in p.name)
    val = np.concatenate([read_shard(p) for p in val_files]).astype(np.int64)
    env = dict(kv.split("=", 1) for kv in opts.env)
    rows: list[str] = []
    with ScorerProcess(TRAINER, env=env, timeout_s=3600, memory_mb=None) as proc:
        info = proc.start()
        if not info.get("ok"):
            raise SystemExit(f"the bundled scorer did not start: {info.get('message')}")
        client = ScorerClient(proc, info)
        client.score(val[:4096])  # warm-up: thread pools, allocator
        pid = proc._proc.pid if proc._proc is not None else -1
        piece = TokenSlice(val[:512], "embedded default val", True)
        before = timed(pid, lambda: client.score(val))
        for context in opts.context:
            probe = timed(
                pid, lambda c=context: c2.run(client, piece, positions=opts.positions, context=c)
            )
            after = timed(pid, lambda: client.score(val))
            full = ((before[0] + after[0]) / 2, (before[1] + after[1]) / 2)
            wall_ratio, cpu_ratio = probe[0] / full[0], probe[1] / full[1]
            result = probe[2]
            rows.append(
                f"| {context} | {result.measured['positions']} | {probe[0]:.2f} | {full[0]:.2f} "
                f"| **{wall_ratio:.2f}** | {probe[1]:.2f} | {full[1]:.2f} | **{cpu_ratio:.2f}** "
                f"| {result.status} |"
            )
            print(
                f"context {context}: C2 {probe[0]:.2f} s wall / {probe[1]:.2f} s cpu; full pass "
                f"{full[0]:.2f} s wall / {full[1]:.2f} s cpu ({len(val)} tokens); ratio "
                f"{wall_ratio:.2f} wall, {cpu_ratio:.2f} cpu (target <= 2.0); C2 {result.status}"
            )
            before = after
    if opts.no_append:
        return
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    config = " ".join(opts.env) or "default config (PPM_ENABLED=0)"
    block = "\n".join(
        [
            f"- {stamp}, {platform.machine()} {platform.python_version()}, {os.cpu_count()} "
            f"cores; bundled model, {config}, fresh weights; embedded default ({len(val)} val "
            f"tokens, vocab 1024); C2 at {opts.positions} positions through score_batch, in "
            f"the probe sandbox:",
            "",
            "  | C2 context | positions | C2 wall s | full pass wall s | wall ratio "
            "| C2 cpu s | full pass cpu s | cpu ratio | C2 status |",
            "  |---|---|---|---|---|---|---|---|---|",
            *[f"  {row}" for row in rows],
            "",
        ]
    )
    append_section(RESULTS, "## probe_cost.py", HEADER, block)


HEADER = (
    "The C2 probe (32 positions x 1024 symbols, batched) over one full evaluation pass of "
    "the bundled model on the embedded default, measured in the same sandboxed process "
    "(target <= 2.0)."
)


def append_section(path: Path, heading: str, intro: str, block: str) -> None:
    """Add `block` at the end of this benchmark's section, creating the section if needed."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    at = text.find(f"\n{heading}\n")
    if at < 0:
        text = text.rstrip("\n") + f"\n\n{heading}\n\n{intro}\n\n{block}"
    else:
        nxt = text.find("\n## ", at + len(heading) + 2)
        nxt = len(text) if nxt < 0 else nxt + 1
        text = text[:nxt].rstrip("\n") + "\n\n" + block + "\n" + text[nxt:]
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

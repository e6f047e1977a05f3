"""Benchmark: cost of the C2 probe against one full evaluation pass of the bundled model.

Both are measured side by side in the same sandboxed scorer process (the one `pgolf probe`
uses): first `score()` over the whole validation split of the embedded default dataset (one
full evaluation pass), then the C2 probe at 32 positions over the 1024-token vocabulary,
rows through `score_batch`. Prints the ratio (target <= 2.0) and appends a section to
benchmarks/RESULTS.md.

    python benchmarks/probe_cost.py                     # default config, PPM off
    python benchmarks/probe_cost.py --env PPM_ENABLED=1 --context 8 16 32
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import time
from pathlib import Path

import numpy as np

from audit.probes import c2
from audit.probes.client import ScorerClient
from audit.probes.sandbox import ScorerProcess
from audit.probes.slices import TokenSlice

ROOT = Path(__file__).resolve().parents[1]
TRAINER = ROOT / "pgolf" / "train_gpt.py"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


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
        t0 = time.perf_counter()
        client.score(val)
        full_s = time.perf_counter() - t0
        print(f"full evaluation pass: {len(val)} val tokens in {full_s:.2f} s")
        piece = TokenSlice(val[:512], "embedded default val", True)
        for context in opts.context:
            t0 = time.perf_counter()
            result = c2.run(client, piece, positions=opts.positions, context=context)
            c2_s = time.perf_counter() - t0
            ratio = c2_s / full_s
            rows.append(
                f"| {context} | {result.measured['positions']} | {c2_s:.2f} | {full_s:.2f} "
                f"| **{ratio:.2f}** | {result.status} |"
            )
            print(
                f"C2 probe, context {context}: {c2_s:.2f} s, status {result.status}; "
                f"ratio C2 / full pass = {ratio:.2f} (target <= 2.0)"
            )
    if opts.no_append:
        return
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    config = " ".join(opts.env) or "default config (PPM_ENABLED=0)"
    section = [
        "",
        f"## benchmarks/probe_cost.py ({stamp})",
        "",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}; bundled model, "
        f"{config}, fresh weights, embedded default ({len(val)} val tokens), vocab 1024, "
        f"C2 at {opts.positions} positions through score_batch, in the probe sandbox.",
        "",
        "| C2 context tokens | positions | C2 s | full eval pass s | ratio | C2 status |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(section))


if __name__ == "__main__":
    main()

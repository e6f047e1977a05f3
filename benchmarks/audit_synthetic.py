"""Accuracy of `pgolf audit` on synthetic record folders for the caps and data separation.

The labelled real claims have few cap (R1-R3) or data-separation (R4) cases, so this script
writes its own record folders: one small trainer whose training data, pre-artifact steps and
artifact contents vary by mechanism, and logs whose sizes and times vary around the caps.
Every invalid variant has a legal twin that differs only in the illegal detail (the train
glob instead of the val glob, a size or time just under the cap, ...). The mechanisms are
ours; no upstream code is used.

Each folder is audited with `audit.engine.audit_folder`. An invalid folder is *caught* when
the report has an unsuppressed error finding of its condition; a legal twin *fails* when it
has any unsuppressed error finding. Printed per condition and overall: recall (target >= 90%)
and the false-positive rate (target <= 5%).

    python benchmarks/audit_synthetic.py [-v] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_accuracy import failed_conditions

TRACK = "records/track_10min_16mb"
SEEDS = (42, 314, 999)

TRAINER = '''"""Synthetic record trainer written by benchmarks/audit_synthetic.py (never run)."""
import copy
import glob
import os

import numpy as np
import torch
import torch.nn.functional as F


class Hyperparameters:
    data_path = os.environ.get("DATA_PATH", "./data/datasets/fineweb10B_sp1024")
    train_files = os.environ.get("TRAIN_FILES", os.path.join(data_path, "fineweb_train_*.bin"))
    val_files = os.path.join(data_path, "fineweb_val_*.bin")
    iterations = int(os.environ.get("ITERATIONS", "200"))
    warmup_steps = int(os.environ.get("WARMUP_STEPS", "20"))


def load_shard(path):
    return torch.from_numpy(np.fromfile(path, dtype=np.uint16, offset=1024).astype(np.int64))


def load_tokens(pattern):
    return torch.cat([load_shard(f) for f in sorted(glob.glob(pattern))])


def batch(tokens, step, n=256):
    chunk = tokens[step * n : step * n + n + 1]
    return chunk[:-1], chunk[1:]


def eval_val(model, tokens):
    model.eval()
    with torch.no_grad():
        loss = F.cross_entropy(model(tokens[:-1]), tokens[1:])
    model.train()
    return loss.item()
{helpers}

def main():
    args = Hyperparameters()
    model = torch.nn.Sequential(torch.nn.Embedding(1024, 64), torch.nn.Linear(64, 1024))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    val_tokens = load_tokens(args.val_files)
    train_tokens = {train_tokens}
{before_loop}
    for step in range(args.iterations):
        x, y = batch(train_tokens, step)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
{in_loop}
{after_loop}
    torch.save({artifact}, "final_model.pt")
    state = torch.load("final_model.pt")
    model.load_state_dict(state["model"])
    val_loss = eval_val(model, val_tokens)
    print(f"final_int8_zstd_roundtrip_exact val_loss:{{val_loss:.8f}}")


if __name__ == "__main__":
    main()
'''

DEFAULT_SLOTS = {
    "helpers": "",
    "train_tokens": "load_tokens(args.train_files)",
    "before_loop": "",
    "in_loop": "",
    "after_loop": "",
    "artifact": '{"model": model.state_dict()}',
}

HELPERS = {
    "pattern": """

def shard_pattern(args):
    return {which}
""",
    "holder": """

class TokenStore:
    def __init__(self, args):
        self.tokens = load_tokens({which})
        self.heldout = load_tokens(args.val_files)
""",
    "calibrate": """

def collect_hessians(model, tokens):
    hessians = {}
    with torch.no_grad():
        x = model[0](tokens[:4096])
        hessians["head"] = x.T @ x / x.shape[0]
    return hessians
""",
    "temperature": """

def fit_temperature(model, tokens):
    t = torch.ones((), requires_grad=True)
    opt = torch.optim.Adam([t], lr=0.01)
    for _ in range(50):
        loss = F.cross_entropy(model(tokens[:-1]) / t, tokens[1:])
        loss.backward()
        opt.step()
        opt.zero_grad()
    return t.detach()
""",
    "counts": """

def bigram_counts(tokens):
    table = torch.zeros(1024, 1024)
    table.index_put_((tokens[:-1], tokens[1:]), torch.ones(len(tokens) - 1), accumulate=True)
    return table
""",
}

WARMUP = """    for _ in range(args.warmup_steps):
        x, y = batch({which}, 0)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()"""


def _code(**slots: str) -> str:
    return TRAINER.format(**{**DEFAULT_SLOTS, **slots})


@dataclass
class Case:
    name: str
    condition: str  # the condition the invalid variant breaks
    mechanism: str
    invalid: dict  # edits: {"code": slots, "log": {...}, "readme_env": "..."}
    legal: dict


def data_cases() -> list[Case]:
    cases = []

    def case(name: str, mechanism: str, bad: dict, good: dict) -> None:
        cases.append(Case(name, "R4", mechanism, {"code": bad}, {"code": good}))

    case(
        "train-loader-from-val-glob",
        "training batches read from the val shards",
        {"train_tokens": "load_tokens(args.val_files)"},
        {"train_tokens": "load_tokens(args.train_files)"},
    )
    case(
        "val-concatenated-into-train",
        "val tokens appended to the training tokens",
        {"train_tokens": "torch.cat([load_tokens(args.train_files), val_tokens])"},
        {
            "train_tokens": "torch.cat([load_tokens(args.train_files), load_tokens(args.train_files)])"
        },
    )
    case(
        "pattern-through-a-helper",
        "a helper returns the val glob for the training loader",
        {
            "helpers": HELPERS["pattern"].format(which="args.val_files"),
            "train_tokens": "load_tokens(shard_pattern(args))",
        },
        {
            "helpers": HELPERS["pattern"].format(which="args.train_files"),
            "train_tokens": "load_tokens(shard_pattern(args))",
        },
    )
    case(
        "tokens-in-an-object",
        "an object attribute holds val tokens that training reads",
        {
            "helpers": HELPERS["holder"].format(which="args.val_files"),
            "train_tokens": "TokenStore(args).tokens",
        },
        {
            "helpers": HELPERS["holder"].format(which="args.train_files"),
            "train_tokens": "TokenStore(args).tokens",
        },
    )
    case(
        "warmup-on-val",
        "warmup optimizer steps on val batches",
        {"before_loop": WARMUP.format(which="val_tokens")},
        {"before_loop": WARMUP.format(which="train_tokens")},
    )
    case(
        "calibration-on-val",
        "Hessians for quantization collected on val and stored in the artifact",
        {
            "helpers": HELPERS["calibrate"],
            "after_loop": "    hessians = collect_hessians(model, val_tokens)",
            "artifact": '{"model": model.state_dict(), "hessians": hessians}',
        },
        {
            "helpers": HELPERS["calibrate"],
            "after_loop": "    hessians = collect_hessians(model, train_tokens)",
            "artifact": '{"model": model.state_dict(), "hessians": hessians}',
        },
    )
    case(
        "temperature-fit-on-val",
        "a temperature fitted by gradient on val before the artifact",
        {
            "helpers": HELPERS["temperature"],
            "after_loop": "    temp = fit_temperature(model, val_tokens)",
            "artifact": '{"model": model.state_dict(), "temp": temp}',
        },
        {
            "helpers": HELPERS["temperature"],
            "after_loop": "    temp = fit_temperature(model, train_tokens[-65536:])",
            "artifact": '{"model": model.state_dict(), "temp": temp}',
        },
    )
    case(
        "val-table-in-artifact",
        "a count table built from val stored in the artifact",
        {
            "helpers": HELPERS["counts"],
            "artifact": '{"model": model.state_dict(), "table": bigram_counts(val_tokens)}',
        },
        {
            "helpers": HELPERS["counts"],
            "artifact": '{"model": model.state_dict(), "table": bigram_counts(train_tokens)}',
        },
    )
    case(
        "checkpoint-selected-on-val",
        "the checkpoint kept is the one with the best val loss",
        {
            "before_loop": "    best, best_state = float('inf'), None",
            "in_loop": (
                "        if step % 50 == 0:\n"
                "            score = eval_val(model, val_tokens)\n"
                "            if score < best:\n"
                "                best, best_state = score, copy.deepcopy(model.state_dict())"
            ),
            "after_loop": "    model.load_state_dict(best_state)",
        },
        {
            "in_loop": (
                "        if step % 50 == 0:\n"
                "            print('step', step, 'val_loss', eval_val(model, val_tokens))"
            ),
        },
    )
    cases.append(
        Case(
            "train-files-configured-to-val",
            "R4",
            "the README's run command points TRAIN_FILES at the val shards",
            {"readme_env": "TRAIN_FILES=./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin"},
            {"readme_env": "TRAIN_FILES=./data/datasets/fineweb10B_sp1024/fineweb_train_*.bin"},
        )
    )
    return cases


def cap_cases() -> list[Case]:
    cap = 16_000_000
    return [
        Case(
            "artifact-over-byte-cap",
            "R1",
            "code + compressed model logged above 16,000,000 bytes",
            {"log": {"model_bytes": cap - 500}},
            {"log": {"model_bytes": cap - 5_000}},
        ),
        Case(
            "one-seed-over-byte-cap",
            "R1",
            "one seed's artifact above the cap, the others below",
            {"log": {"model_bytes": cap - 5_000, "seed999_model_bytes": cap + 10}},
            {"log": {"model_bytes": cap - 5_000, "seed999_model_bytes": cap - 4_000}},
        ),
        # An overshoot of at most 5 s is a note by design (audit.facts.TIME_TOLERANCE_S: the
        # wallclock stop acts once per step), so the invalid variants are over by more.
        Case(
            "train-time-over-cap",
            "R2",
            "the logged training time is above 600 s",
            {"log": {"train_ms": 606_000}},
            {"log": {"train_ms": 598_500}},
        ),
        Case(
            "one-seed-train-time-over-cap",
            "R2",
            "one seed trained past 600 s",
            {"log": {"seed314_train_ms": 640_000}},
            {"log": {"seed314_train_ms": 599_900}},
        ),
        Case(
            "eval-time-over-cap",
            "R3",
            "the logged evaluation time is above 600 s",
            {"log": {"eval_ms": 612_000}},
            {"log": {"eval_ms": 590_000}},
        ),
    ]


def _log(seed: int, code_bytes: int, params: dict) -> str:
    model = params.get(f"seed{seed}_model_bytes", params.get("model_bytes", 15_000_000))
    train = params.get(f"seed{seed}_train_ms", params.get("train_ms", 590_000))
    evalt = params.get(f"seed{seed}_eval_ms", params.get("eval_ms", 120_000))
    bpb = {42: 1.03, 314: 1.031, 999: 1.029}[seed]
    steps = 200
    lines = [
        "=" * 100,
        "Running Python 3.11.7",
        "Running PyTorch 2.13.0",
        f"seed:{seed}",
        "iterations:200",
        f"run_id:synthetic_seed{seed}",
        f"step:1/{steps} train_loss:6.9300 train_time:3000ms step_avg:3000.00ms",
        f"step:{steps}/{steps} train_loss:3.1000 train_time:{train}ms step_avg:{train / steps:.2f}ms",
        f"train_time_total:{train}ms",
        f"Serialized model int8+zstd: {model} bytes",
        f"Code size: {code_bytes} bytes",
        f"Total submission size int8+zstd: {model + code_bytes} bytes",
        f"final_int8_zstd_roundtrip val_loss:2.3000 val_bpb:{bpb:.4f} eval_time:{evalt - 1000}ms",
        f"final_int8_zstd_roundtrip_exact val_loss:2.30000000 val_bpb:{bpb:.8f}",
        f"eval_time_total:{evalt}ms",
    ]
    return "\n".join(lines) + "\n"


def write_folder(root: Path, name: str, edits: dict) -> Path:
    folder = root / TRACK / name
    folder.mkdir(parents=True)
    code = _code(**edits.get("code", {}))
    (folder / "train_gpt.py").write_text(code)
    code_bytes = len(code.encode())
    params = edits.get("log", {})
    sizes = []
    for seed in SEEDS:
        (folder / f"train_seed{seed}.log").write_text(_log(seed, code_bytes, params))
        model = params.get(f"seed{seed}_model_bytes", params.get("model_bytes", 15_000_000))
        sizes.append(model + code_bytes)
    env = edits.get("readme_env", "")
    command = f"{env} SEED=42 torchrun --standalone --nproc_per_node=8 train_gpt.py".strip()
    (folder / "README.md").write_text(
        f"# Synthetic record {name}\n\nWritten by benchmarks/audit_synthetic.py.\n\n"
        f"## Run\n\n```bash\n{command}\n```\n\n"
        "| seed | val_bpb |\n|---|---|\n| 42 | 1.0300 |\n| 314 | 1.0310 |\n| 999 | 1.0290 |\n"
    )
    submission = {
        "author": "Synthetic",
        "github_id": "synthetic",
        "name": f"Synthetic {name}",
        "blurb": "A synthetic record folder for pgolf's audit benchmark.",
        "date": "2026-11-25",
        "track": "track_10min_16mb",
        "val_bpb": 1.03,
        "val_loss": 2.3,
        "val_bpb_std": 0.001,
        "bytes_total": max(sizes),
        "seeds": list(SEEDS),
        "val_bpb_by_seed": {"42": 1.03, "314": 1.031, "999": 1.029},
    }
    (folder / "submission.json").write_text(json.dumps(submission, indent=2) + "\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="print every folder")
    parser.add_argument("--keep", type=Path, help="write the folders here and keep them")
    args = parser.parse_args(argv)
    from audit.engine import audit_folder

    root = args.keep or Path(tempfile.mkdtemp(prefix="pgolf-synthetic-"))
    cases = data_cases() + cap_cases()
    rows = []
    try:
        for case in cases:
            for kind, edits in (("invalid", case.invalid), ("legal", case.legal)):
                folder = write_folder(root, f"{case.name}-{kind}", edits)
                failed, lines = failed_conditions(audit_folder(folder))
                rows.append((case, kind, failed, lines))
                if args.verbose:
                    print(f"{case.condition} {kind:<7} {case.name}: failed={sorted(failed)}")
                    for line in lines[:6]:
                        print("    " + line)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print_summary(rows)
    return 0


def print_summary(rows: list[tuple]) -> None:
    invalid = [r for r in rows if r[1] == "invalid"]
    legal = [r for r in rows if r[1] == "legal"]
    print(f"\n{len(rows)} synthetic folders ({len(invalid)} invalid, {len(legal)} legal twins)")
    print(f"{'condition':<10} {'invalid':>7} {'caught':>6} {'recall':>7}")
    for cond in sorted({r[0].condition for r in invalid}):
        rs = [r for r in invalid if r[0].condition == cond]
        hit = [r for r in rs if cond in r[2]]
        print(f"{cond:<10} {len(rs):>7} {len(hit):>6} {100 * len(hit) / len(rs):>6.1f}%")
        for r in rs:
            if cond not in r[2]:
                print(f"           missed: {r[0].name} ({r[0].mechanism})")
    hit = [r for r in invalid if r[0].condition in r[2]]
    print(f"{'overall':<10} {len(invalid):>7} {len(hit):>6} {100 * len(hit) / len(invalid):>6.1f}%")
    bad = [r for r in legal if r[2]]
    print(
        f"false positives: {len(bad)}/{len(legal)} legal twins failed "
        f"({100 * len(bad) / len(legal):.1f}%)"
    )
    for r in bad:
        print(f"           failed: {r[0].name} legal twin on {sorted(r[2])}: {r[3][:2]}")


if __name__ == "__main__":
    sys.exit(main())

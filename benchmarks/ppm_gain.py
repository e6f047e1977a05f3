"""Gain of the bundled evaluator's legal PPM mixture over the network alone.

    .venv/bin/python benchmarks/ppm_gain.py --artifact RUN_DIR/final_model.int8.ptz [--tune]

Scores the whole validation split of the embedded default dataset (or --data DIR) once
with the network alone and once with PPM_ENABLED=1 at the trainer's defaults, and prints
both val_bpb, the gain and the PPM pass time. The PPM defaults are never chosen on
validation data (R4): --tune sweeps PPM_ORDER x PPM_LAMBDA_MAX on the tail of the TRAIN
split instead. The network has trained on (part of) that tail, so it looks better there
than on unseen text and the sweep understates what PPM adds: weights picked there are
on the conservative side.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch

from pgolf import train_gpt as tg


def load_split(data: Path, split: str) -> np.ndarray:
    files = tg.shard_files(str(data / f"fineweb_{split}_*.bin"))
    return np.concatenate([tg.load_shard(f) for f in files]).astype(np.int64)


def bpb(nll: np.ndarray, n_bytes: np.ndarray) -> float:
    return tg.bpb_of(nll, n_bytes)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--artifact", required=True, help="final_model.int8.ptz of a run")
    parser.add_argument("--data", default="", help="shard dir (default: embedded default)")
    parser.add_argument("--tune", action="store_true", help="sweep PPM knobs on the train tail")
    parser.add_argument("--tail", type=int, default=100_000, help="train tail tokens for --tune")
    opts = parser.parse_args()

    args = tg.Hyperparameters()
    data = Path(opts.data or args.data_path)
    device = torch.device("cpu")
    model = tg.load_artifact(opts.artifact, args, device)
    sp = spm.SentencePieceProcessor(model_file=str(data / "tokenizer.model"))
    luts = tg.build_byte_luts(sp, args.vocab_size)

    if opts.tune:
        train = load_split(data, "train")
        tail = train[-opts.tail :]
        tail_bytes = tg.target_bytes(tail, luts)
        net = tg.network_nll(model, tail[None, :], args, device)[0]
        print(f"tune slice: {tail.size} train tokens, network alone {bpb(net, tail_bytes):.4f} bpb")
        print("order lam_max  mixed_bpb   gain")
        for order in (2, 3, 4, 6):
            for lam in (0.3, 0.45, 0.6, 0.75, 0.9):
                args.ppm_order, args.ppm_lambda_max = order, lam
                mixed = tg.ppm_mix(tail, net, args, None)
                gain = bpb(net, tail_bytes) - bpb(mixed, tail_bytes)
                print(f"{order:5d} {lam:7.2f}  {bpb(mixed, tail_bytes):9.4f}  {gain:+.4f}")
        args = tg.Hyperparameters()

    val = load_split(data, "val")
    val_bytes = tg.target_bytes(val, luts)
    t0 = time.perf_counter()
    net = tg.network_nll(model, val[None, :], args, device)[0]
    t_net = time.perf_counter() - t0
    t0 = time.perf_counter()
    mixed = tg.ppm_mix(val, net, args, None)
    t_ppm = time.perf_counter() - t0
    print(
        f"val: {val.size} tokens, {int(val_bytes.sum())} bytes; PPM_ORDER={args.ppm_order} "
        f"PPM_LAMBDA_MAX={args.ppm_lambda_max} PPM_CONFIDENCE_BETA={args.ppm_confidence_beta}"
    )
    print(f"network alone  val_bpb {bpb(net, val_bytes):.4f}  ({t_net:.1f} s)")
    print(f"network + PPM  val_bpb {bpb(mixed, val_bytes):.4f}  (PPM pass {t_ppm:.1f} s)")
    print(f"PPM gain {bpb(net, val_bytes) - bpb(mixed, val_bytes):+.4f} bpb")


if __name__ == "__main__":
    os.environ.setdefault("DEVICE", "cpu")
    main()

"""Training MFU of the bundled trainer, and its speed against a plain fp32 GPT + AdamW.

    .venv/bin/python benchmarks/trainer_mfu.py [--rounds 4] [--steps 3]

Everything is measured side by side in one process, interleaved in rounds so that other
load on the machine hits all three measurements alike:
- peak: a 2048x2048 matmul in fp32, the dtype the trainer's CPU path computes in (a bf16
  peak is printed too: on CPUs with AVX512-BF16/AMX it is several times higher, and
  MFU would have to be taken against it if the model ran in bf16);
- trainer: one full training step of pgolf/train_gpt.py at its default configuration
  (forward, backward, Muon + Adam), on random tokens of the default batch shape;
- reference: the same step of a plain nanoGPT-style fp32 GPT of the same shape (learned
  positions, LayerNorm with affine, full multi-head attention, GELU MLP) with AdamW.
Achieved FLOP/s = (6 x params + 6 x layers x seq_len x dim (causal attention)) x tokens/s,
params counting every matmul weight (the tied embedding once, as the output head).
Prints `MFU 0.NN` (target >= 0.7) and the trainer/reference tokens/s ratio (target >= 1.0),
each the median over rounds of a per-round value.
Environment variables of the trainer (MODEL_DIM, NUM_LAYERS, ...) change the shape.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pgolf import train_gpt as tg


class PlainBlock(nn.Module):
    def __init__(self, d: int, heads: int, mlp_mult: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.fc = nn.Linear(d, mlp_mult * d, bias=False)
        self.proj = nn.Linear(mlp_mult * d, d, bias=False)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, d // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        x = x + self.out(y.transpose(1, 2).reshape(B, T, d))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class PlainGPT(nn.Module):
    def __init__(self, args: tg.Hyperparameters) -> None:
        super().__init__()
        d = args.model_dim
        self.wte = nn.Embedding(args.vocab_size, d)
        self.wpe = nn.Embedding(args.train_seq_len, d)
        self.blocks = nn.ModuleList(
            PlainBlock(d, args.num_heads, args.mlp_mult) for _ in range(args.num_layers)
        )
        self.ln_f = nn.LayerNorm(d)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def flops_per_token(args: tg.Hyperparameters, matmul_params: int) -> float:
    return 6.0 * matmul_params + 6.0 * args.num_layers * args.train_seq_len * args.model_dim


def matmul_params(model: nn.Module) -> int:
    # Parameters that take part in a matmul: every 2-D weight except position tables.
    return sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2 and "wpe" not in n)


def timed(fn: Callable[[], object], steps: int) -> float:
    fn()  # warm this round's caches
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="interleaved measurement rounds")
    parser.add_argument("--steps", type=int, default=3, help="training steps per round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    opts = parser.parse_args()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    tg.tune_cpu_process()  # the trainer's process settings, for both models alike

    args = tg.Hyperparameters()
    device = torch.device("cpu")
    torch.manual_seed(0)
    rows = args.train_batch_tokens // args.train_seq_len
    x = torch.randint(0, args.vocab_size, (rows, args.train_seq_len))
    y = torch.randint(0, args.vocab_size, (rows, args.train_seq_len))

    ours = tg.GPT(args)
    ours_opts = tg.make_optimizers(ours, args, device)
    ref = PlainGPT(args)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-4, foreach=True)

    def step_ours() -> None:
        for opt in ours_opts:
            opt.zero_grad(set_to_none=True)
        ours(x, y).backward()
        for opt in ours_opts:
            opt.step()

    def step_ref() -> None:
        ref_opt.zero_grad(set_to_none=True)
        ref(x, y).backward()
        ref_opt.step()

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a16, b16 = a.bfloat16(), b.bfloat16()
    tokens = rows * args.train_seq_len
    f_ours = flops_per_token(args, matmul_params(ours)) * tokens
    f_ref = flops_per_token(args, matmul_params(ref)) * tokens
    # Each round measures peak, trainer, reference, peak back to back; a round's MFU uses
    # that round's peak (the better of its two), so load that comes and goes hits the
    # numerator and the denominator alike. The headline is the median over rounds.
    rounds, bf16_peaks = [], []
    for _ in range(opts.rounds):
        p0 = 2 * 2048**3 / timed(lambda: a @ b, 8)
        s_ours = timed(step_ours, opts.steps)
        s_ref = timed(step_ref, opts.steps)
        p1 = 2 * 2048**3 / timed(lambda: a @ b, 8)
        bf16_peaks.append(2 * 2048**3 / timed(lambda: a16 @ b16, 8))
        rounds.append((max(p0, p1), s_ours, s_ref))
    print(
        f"config: layers={args.num_layers} dim={args.model_dim} heads={args.num_heads}/"
        f"{args.num_kv_heads}kv seq={args.train_seq_len} batch_tokens={tokens} "
        f"threads={torch.get_num_threads()} rounds={opts.rounds}x{opts.steps}"
    )
    print(f"matmul params: trainer {matmul_params(ours)}, reference {matmul_params(ref)}")
    print("round  fp32 peak GFLOP/s  (bf16 peak)  trainer ms  reference ms  MFU  ref MFU  ratio")
    for i, ((peak, s_ours, s_ref), p16) in enumerate(zip(rounds, bf16_peaks, strict=True)):
        print(
            f"{i:5d}  {peak / 1e9:17.1f}  {p16 / 1e9:11.1f}  {s_ours * 1000:10.0f}  "
            f"{s_ref * 1000:12.0f}  {f_ours / s_ours / peak:.2f}  {f_ref / s_ref / peak:7.2f}  "
            f"{s_ref / s_ours:5.2f}"
        )
    print(
        "MFU is taken against the fp32 peak: the trainer's CPU model computes in fp32 "
        "(Muon's Newton-Schulz runs in bf16 where that is fast, but it is optimizer work, "
        "not model FLOPs)"
    )
    mfu = statistics.median(f_ours / s / p for p, s, _ in rounds)
    ref_mfu = statistics.median(f_ref / s / p for p, _, s in rounds)
    ratio = statistics.median(r / o for _, o, r in rounds)
    best = min(s for _, s, _ in rounds)
    print(f"trainer best round: {tokens / best:.0f} tokens/s, {f_ours / best / 1e9:.1f} GFLOP/s")
    print(f"reference MFU {ref_mfu:.2f}")
    print(f"tokens/s ratio trainer/reference {ratio:.2f}")
    print(f"MFU {mfu:.2f}")


if __name__ == "__main__":
    main()

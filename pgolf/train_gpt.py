"""
pgolf bundled trainer and evaluator for the Parameter Golf challenge.

One self-contained file (it never imports pgolf): it is copied verbatim into record
folders, and its own source is printed at the top of every log (RULES.md R8).

    python train_gpt.py                               # embedded default data, after `pgolf data`
    SEED=314 MAX_WALLCLOCK_SECONDS=60 python train_gpt.py
    torchrun --nproc_per_node 2 train_gpt.py          # DDP: gloo on CPU, nccl on CUDA
    PPM_ENABLED=1 EVAL_STRIDE=64 python train_gpt.py  # legal PPM mixture, sliding-window eval

Phases, as the rules define them:
- TRAINING (R2, R4) reads only fineweb_train_*.bin shards and the tokenizer, and ends when
  final_model.int8.ptz has been written to the working directory. Everything before that
  counts as train time, which is capped by MAX_WALLCLOCK_SECONDS.
- EVALUATION (R3) reads the artifact bytes back from disk, dequantizes them into a fresh
  model, and only then opens the validation shards. It scores every validation token once,
  causally, with a normalized distribution (C1, C2, C4); the optional PPM mixture adapts
  only on tokens after they were scored (C3).
"""

from __future__ import annotations

import time

# R2 counts everything before the artifact is written, so the clock starts before torch loads.
SCRIPT_START = time.perf_counter()

import copy
import ctypes
import glob
import io
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import torch.distributed as dist
import torch.nn.functional as F
import zstandard
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

# -----------------------------
# HYPERPARAMETERS
# -----------------------------
# Every knob is an environment variable named as the attribute in upper case. The defaults
# are tuned for the embedded default corpus on a 2-core CPU: three seeds plus evaluation
# finish in well under ten minutes. On 8xH100 with FineWeb, raise the model size, batch and
# MAX_WALLCLOCK_SECONDS=600 through the environment.


def default_data_dir(vocab_size: int) -> str:
    # Mirrors pgolf.data.default_cache_dir() without importing pgolf.
    cache = os.environ.get("PGOLF_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "pgolf"
    )
    return os.path.join(cache, f"default_sp{vocab_size}")


class Hyperparameters:
    """The effective configuration. `env` defaults to os.environ (pgolf_scorer passes overrides)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self._names: list[str] = []
        # data
        self.vocab_size = self._get("VOCAB_SIZE", 1024)
        self.data_path = self._get("DATA_PATH", default_data_dir(self.vocab_size))
        self.tokenizer_path = self._get(
            "TOKENIZER_PATH", os.path.join(self.data_path, "tokenizer.model")
        )
        self.run_id = self._get("RUN_ID", "")
        self.seed = self._get("SEED", 1337)
        # training length and batch
        self.iterations = self._get("ITERATIONS", 150)
        self.max_wallclock_seconds = self._get("MAX_WALLCLOCK_SECONDS", 130.0)
        self.serialize_reserve_seconds = self._get("SERIALIZE_RESERVE_SECONDS", 5.0)
        self.train_seq_len = self._get("TRAIN_SEQ_LEN", 128)
        self.train_batch_tokens = self._get("TRAIN_BATCH_TOKENS", 8192)
        self.grad_accum_steps = self._get("GRAD_ACCUM_STEPS", 1)
        self.warmup_steps = self._get("WARMUP_STEPS", 0)
        self.lr_warmup_steps = self._get("LR_WARMUP_STEPS", 10)
        self.warmdown_frac = self._get("WARMDOWN_FRAC", 0.35)
        self.train_log_every = self._get("TRAIN_LOG_EVERY", 20)
        self.val_loss_every = self._get("VAL_LOSS_EVERY", 0)
        self.val_batch_size = self._get("VAL_BATCH_SIZE", 32768)
        # model shape
        self.num_layers = self._get("NUM_LAYERS", 3)
        self.model_dim = self._get("MODEL_DIM", 256)
        self.num_heads = self._get("NUM_HEADS", 4)
        self.num_kv_heads = self._get("NUM_KV_HEADS", 2)
        self.mlp_mult = self._get("MLP_MULT", 2)
        self.rope_base = self._get("ROPE_BASE", 10000.0)
        self.tied_embed_init_std = self._get("TIED_EMBED_INIT_STD", 0.005)
        # optimizers: Muon for 2-D block matrices, Adam for the embedding and vectors
        self.matrix_lr = self._get("MATRIX_LR", 0.04)
        self.tied_embed_lr = self._get("TIED_EMBED_LR", 0.03)
        self.scalar_lr = self._get("SCALAR_LR", 0.04)
        self.muon_momentum = self._get("MUON_MOMENTUM", 0.95)
        self.muon_momentum_warmup_start = self._get("MUON_MOMENTUM_WARMUP_START", 0.85)
        self.muon_momentum_warmup_steps = self._get("MUON_MOMENTUM_WARMUP_STEPS", 100)
        self.muon_backend_steps = self._get("MUON_BACKEND_STEPS", 5)
        self.beta1 = self._get("BETA1", 0.9)
        self.beta2 = self._get("BETA2", 0.95)
        self.adam_eps = self._get("ADAM_EPS", 1e-8)
        self.grad_clip_norm = self._get("GRAD_CLIP_NORM", 0.0)
        # artifact
        self.zstd_level = self._get("ZSTD_LEVEL", 19)
        # evaluation
        self.eval_stride = self._get("EVAL_STRIDE", 0)
        self.ppm_enabled = self._get("PPM_ENABLED", 0)
        self.ppm_order = self._get("PPM_ORDER", 6)
        self.ppm_lambda_max = self._get("PPM_LAMBDA_MAX", 0.9)
        self.ppm_confidence_beta = self._get("PPM_CONFIDENCE_BETA", 2.0)
        # runtime
        self.device = self._get("DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
        self.compile = self._get("COMPILE", 0)
        self.num_threads = self._get("NUM_THREADS", 0)
        self.train_files = os.path.join(self.data_path, "fineweb_train_*.bin")
        self.val_files = os.path.join(self.data_path, "fineweb_val_*.bin")

    def _get(self, name: str, default):  # the default's type is the value's type
        self._names.append(name)
        raw = self._env.get(name)
        if raw is None or raw == "":
            return default
        try:
            return type(default)(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a valid {type(default).__name__}") from None

    def items(self) -> list[tuple[str, object]]:
        # RUN_ID is a label, not configuration: seeds of one claim must dump identically (R6).
        return [(n.lower(), getattr(self, n.lower())) for n in self._names if n != "RUN_ID"]


# -----------------------------
# MUON OPTIMIZER
# -----------------------------
# Muon (Keller Jordan, modded-nanogpt) replaces each 2-D update with the nearest
# semi-orthogonal matrix of its momentum, found by a quintic Newton-Schulz iteration.
# Matrices of one shape are orthogonalized together in batched matmuls (on a CPU, many
# small matmul calls cost more in thread synchronization than in arithmetic). Under DDP,
# each shape's matrices are handed out round-robin: each rank orthogonalizes its share
# and one all-reduce of a flat buffer gives every rank every update.


def fast_bf16_matmul(device: torch.device) -> bool:
    # GPUs and CPUs with AVX512-BF16 (or AMX) multiply bf16 matrices several times faster
    # than fp32; other CPUs emulate bf16 and are 3-50x slower (benchmarks/RESULTS.md).
    if device.type != "cpu":
        return True
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe is not None and probe())


def newton_schulz(G: Tensor, steps: int, dtype: torch.dtype, eps: float = 1e-7) -> Tensor:
    # G: (..., rows, cols); batched so that same-shape matrices share each matmul call.
    # bf16 is plenty for an orthogonalization where it is fast (fast_bf16_matmul).
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G.to(dtype)
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + eps)
    tall = X.size(-2) > X.size(-1)
    if tall:
        X = X.mT
    for _ in range(steps):
        A = X @ X.mT  # (..., rows, rows) with rows <= cols
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)  # b A + c A^2
        X = torch.baddbmm(X, B, X, beta=a)  # a X + B X
    return X.mT if tall else X


class Muon(torch.optim.Optimizer):
    def __init__(
        self, params, lr: float, momentum: float, backend_steps: int, ns_dtype: torch.dtype
    ) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps))
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self) -> None:  # type: ignore[override]
        distributed = dist.is_available() and dist.is_initialized()
        world = dist.get_world_size() if distributed else 1
        rank = dist.get_rank() if distributed else 0
        for group in self.param_groups:
            params: list[Tensor] = group["params"]
            momentum, lr = group["momentum"], group["lr"]
            offsets = np.cumsum([0] + [p.numel() for p in params]).tolist()
            flat = torch.zeros(offsets[-1], device=params[0].device) if world > 1 else None
            buckets: dict[tuple[int, ...], list[int]] = {}
            for i, p in enumerate(params):
                buckets.setdefault(tuple(p.shape), []).append(i)
            for shape, members in buckets.items():
                mine = [i for j, i in enumerate(members) if j % world == rank]
                mine = [i for i in mine if params[i].grad is not None]
                if not mine:
                    continue
                grads = [params[i].grad for i in mine]
                bufs = [
                    self.state[params[i]].setdefault("momentum_buffer", torch.zeros_like(g))
                    for i, g in zip(mine, grads)
                ]
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, grads)
                nesterov = torch._foreach_add(grads, bufs, alpha=momentum)
                updates = newton_schulz(
                    torch.stack(nesterov), group["backend_steps"], self.ns_dtype
                ).float()
                scale = max(1.0, shape[0] / shape[1]) ** 0.5
                if flat is None:
                    torch._foreach_add_(
                        [params[i] for i in mine], updates.unbind(0), alpha=-lr * scale
                    )
                    continue
                for i, u in zip(mine, updates):
                    flat[offsets[i] : offsets[i + 1]] = u.reshape(-1) * scale
            if flat is not None:
                # Each rank filled its share of the updates; the sum gives every rank all of them.
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
                for i, p in enumerate(params):
                    p.add_(flat[offsets[i] : offsets[i + 1]].view_as(p).to(p.dtype), alpha=-lr)


# -----------------------------
# DATA LOADING
# -----------------------------
# Shards (R9): 256 little-endian int32 header (magic 20240520, version 1, token count),
# then uint16 tokens. Only the trainer's loader and the unigram counter below run before
# the artifact is written, and both take the train glob only.

SHARD_MAGIC = 20240520
SHARD_VERSION = 1


def load_shard(path: str, mmap: bool = False) -> np.ndarray:
    header = np.fromfile(path, dtype="<i4", count=256)
    if header.size != 256 or int(header[0]) != SHARD_MAGIC or int(header[1]) != SHARD_VERSION:
        raise ValueError(f"{path}: not a shard (bad header magic or version)")
    n = int(header[2])
    expected = 256 * 4 + 2 * n
    if os.path.getsize(path) != expected:
        raise ValueError(f"{path}: size {os.path.getsize(path)} != {expected} for {n} tokens")
    if mmap:
        return np.memmap(path, dtype="<u2", mode="r", offset=256 * 4, shape=(n,))
    return np.fromfile(path, dtype="<u2", count=n, offset=256 * 4)


def shard_files(pattern: str) -> list[str]:
    # Byte sidecars (fineweb_val_bytes_*) also match fineweb_val_*.bin; they are not tokens.
    files = [f for f in sorted(glob.glob(pattern)) if "_bytes_" not in os.path.basename(f)]
    if not files:
        raise FileNotFoundError(f"no shards match {pattern} (run `pgolf data` or set DATA_PATH)")
    return files


class TrainLoader:
    # nanoGPT-style: every row of a batch starts at a random offset of a random train shard
    # (memory-mapped, chosen in proportion to its size). All ranks draw the same seeded
    # global batch and keep their own rows, so N processes train on what one process would.
    def __init__(
        self, pattern: str, rank: int, world: int, device: torch.device, seed: int
    ) -> None:
        self.files = shard_files(pattern)
        self.shards = [load_shard(f, mmap=True) for f in self.files]
        sizes = np.array([s.size for s in self.shards], dtype=np.float64)
        self.weights = sizes / sizes.sum()
        self.rank, self.world, self.device = rank, world, device
        self.rng = np.random.default_rng(seed)

    def next_batch(self, batch_tokens: int, seq_len: int) -> tuple[Tensor, Tensor]:
        rows = batch_tokens // seq_len
        which = self.rng.choice(len(self.shards), size=rows, p=self.weights)
        highs = np.array([self.shards[i].size - seq_len for i in which])
        if highs.min() < 1:
            raise ValueError(f"a train shard is shorter than TRAIN_SEQ_LEN+1={seq_len + 1} tokens")
        starts = self.rng.integers(0, highs)
        # One extra token per row lets the targets be the inputs shifted by one.
        chunk = np.stack([self.shards[i][o : o + seq_len + 1] for i, o in zip(which, starts)])
        mine = torch.from_numpy(chunk.astype(np.int64)).chunk(self.world)[self.rank]
        return mine[:, :-1].to(self.device), mine[:, 1:].to(self.device)


def train_unigram_counts(pattern: str, vocab_size: int, max_tokens: int = 50_000_000) -> np.ndarray:
    # Train-only token frequencies for the unigram reference line printed at evaluation.
    counts = np.zeros(vocab_size, dtype=np.int64)
    seen = 0
    for f in shard_files(pattern):
        toks = load_shard(f)[: max_tokens - seen]
        counts += np.bincount(toks, minlength=vocab_size)[:vocab_size]
        seen += toks.size
        if seen >= max_tokens:
            break
    return counts


# -----------------------------
# TRANSFORMER MODULES
# -----------------------------
# A small modern GPT: token embedding tied to the output head, pre-norm blocks with rotary
# position embeddings (RoPE) and grouped-query attention (fewer key/value heads than query
# heads), and a relu^2 MLP. It is deliberately lean: on a CPU the step time is dominated
# by elementwise kernels, not matmuls, so the norms are parameter-free LayerNorms (one
# fused kernel each way), RoPE is one complex multiply, and there are no per-channel
# gains, QK-norms or logit soft-caps whose backward passes each cost a matmul's worth.


def norm(x: Tensor) -> Tensor:
    return F.layer_norm(x, (x.size(-1),))


class Rotary(nn.Module):
    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cache: tuple[int, torch.device, Tensor] | None = None

    def forward(self, T: int, device: torch.device) -> Tensor:
        if self._cache is None or self._cache[0] != T or self._cache[1] != device:
            angles = torch.outer(torch.arange(T, device=device, dtype=torch.float32), self.inv_freq)
            self._cache = (T, device, torch.polar(torch.ones_like(angles), angles))
        return self._cache[2]  # (T, head_dim / 2) complex rotations


def apply_rotary(x: Tensor, rot: Tensor) -> Tensor:
    # Rotate consecutive pairs (x[2i], x[2i+1]) by the position's angle.
    xc = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(xc * rot).flatten(-2).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, args: Hyperparameters) -> None:
        super().__init__()
        d, nh, nkv = args.model_dim, args.num_heads, args.num_kv_heads
        if d % nh or nh % nkv or (d // nh) % 2:
            raise ValueError(
                f"MODEL_DIM={d}, NUM_HEADS={nh}, NUM_KV_HEADS={nkv}: need heads | dim, "
                "kv heads | heads and an even head size"
            )
        self.nh, self.nkv, self.hd = nh, nkv, d // nh
        self.c_q = nn.Linear(d, d, bias=False)
        self.c_kv = nn.Linear(d, 2 * nkv * self.hd, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        nn.init.zeros_(self.proj.weight)
        self.rotary = Rotary(self.hd, args.rope_base)

    def forward(self, x: Tensor, res: Tensor) -> Tensor:  # res + attention(x)
        B, T, d = x.shape
        # Activations stay in the (B, T, heads, head_dim) layout of the matmuls: RoPE runs on
        # contiguous rows, the attention kernel takes the transposed views as they are, and
        # the backward pass has no activation-sized transposes (the split's backward is one
        # concatenation straight into c_kv's output layout).
        rot = self.rotary(T, x.device)[:, None]  # (T, 1, head_dim / 2): same for every head
        q = apply_rotary(self.c_q(x).view(B, T, self.nh, self.hd), rot).transpose(1, 2)
        k, v = self.c_kv(x).view(B, T, 2 * self.nkv, self.hd).split(self.nkv, dim=2)
        k, v = apply_rotary(k, rot).transpose(1, 2), v.transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        y = y.transpose(1, 2).reshape(B, T, d)
        if x.is_cuda:
            return res + self.proj(y)
        # On a CPU the residual add rides on the projection's matmul (one pass fewer).
        return torch.addmm(res.view(B * T, d), y.view(B * T, d), self.proj.weight.T).view(B, T, d)


class ReluSquareMLP(torch.autograd.Function):
    """res + relu(x @ w_fc.T)^2 @ w_proj.T: the CPU path's MLP with its residual add.

    Autograd's relu, square and add make seven passes over activations, forward and
    backward, the widest ones among them; here the relu runs in place on the matmul's
    output, the residual rides on the projection's addmm, and the square's factor 2 on
    the backward matmuls' alpha. The same loss and gradients (tests/test_trainer_unit.py).
    """

    @staticmethod
    def forward(ctx, res: Tensor, x: Tensor, w_fc: Tensor, w_proj: Tensor) -> Tensor:
        x2 = x.flatten(0, -2)
        r = torch.mm(x2, w_fc.T).relu_()
        a = r * r
        ctx.save_for_backward(x2, w_fc, w_proj, r, a)
        ctx.x_shape = x.shape
        return torch.addmm(res.flatten(0, -2), a, w_proj.T).view_as(res)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x2, w_fc, w_proj, r, a = ctx.saved_tensors
        g = grad.flatten(0, -2)
        half = torch.mm(g, w_proj).mul_(r)  # half the gradient of the fc output
        g_x = torch.addmm(x2, half, w_fc, beta=0.0, alpha=2.0)  # x2 only gives the shape
        g_fc = torch.addmm(w_fc, half.T, x2, beta=0.0, alpha=2.0)
        return grad, g_x.view(ctx.x_shape), g_fc, g.T @ a


class MLP(nn.Module):
    def __init__(self, args: Hyperparameters) -> None:
        super().__init__()
        self.fc = nn.Linear(args.model_dim, args.mlp_mult * args.model_dim, bias=False)
        self.proj = nn.Linear(args.mlp_mult * args.model_dim, args.model_dim, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, x: Tensor, res: Tensor) -> Tensor:
        if x.is_cuda:
            return res + self.proj(F.relu(self.fc(x)).square())
        return ReluSquareMLP.apply(res, x, self.fc.weight, self.proj.weight)


class Block(nn.Module):
    def __init__(self, args: Hyperparameters) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(args)
        self.mlp = MLP(args)

    def forward(self, x: Tensor) -> Tensor:
        x = self.attn(norm(x), x)
        return self.mlp(norm(x), x)


class GPT(nn.Module):
    def __init__(self, args: Hyperparameters) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(args.vocab_size, args.model_dim)
        nn.init.normal_(self.tok_emb.weight, std=args.tied_embed_init_std)
        self.blocks = nn.ModuleList(Block(args) for _ in range(args.num_layers))

    def hidden(self, idx: Tensor) -> Tensor:
        x = norm(self.tok_emb(idx))
        for block in self.blocks:
            x = block(x)
        return norm(x)

    def logits(self, idx: Tensor) -> Tensor:
        x = self.hidden(idx)
        return F.linear(x, self.tok_emb.weight.to(x.dtype)).float()  # tied head, (B, T, V)

    def forward(self, idx: Tensor, targets: Tensor) -> Tensor:
        if idx.device.type != "cpu" or not torch.is_grad_enabled():
            logits = self.logits(idx)
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        x = self.hidden(idx)
        return LinearCrossEntropy.apply(x.flatten(0, 1), self.tok_emb.weight, targets.reshape(-1))


CE_BLOCK_LOGITS = 2**18  # logits per block: 1 MiB of fp32, well inside a core's L2 cache


class LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of the logits x @ w.T against y; the gradient is made in forward.

    On a CPU the (tokens, vocab) logits do not fit in cache, and the plain path writes them,
    reads them for the softmax, and again for its backward. Here blocks of rows are
    scored and differentiated while in cache, with one exp pass: the same three matmuls,
    the same gradient. For training only (the gradient work is wasted without backward).
    """

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, y: Tensor) -> Tensor:
        grad_x, grad_w = torch.empty_like(x), torch.zeros_like(w)
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        rows = max(16, CE_BLOCK_LOGITS // w.size(0))
        inv = 1.0 / x.size(0)  # the mean's factor rides on the gradient matmuls' alpha
        for i in range(0, x.size(0), rows):
            xb, yb = x[i : i + rows], y[i : i + rows]
            z = xb @ w.T
            target_z = z.gather(1, yb[:, None])
            top = z.amax(dim=1, keepdim=True)
            p = z.sub_(top).exp_()
            sums = p.sum(dim=1, keepdim=True)
            total += (top + sums.log() - target_z).sum().double()
            p.div_(sums)  # softmax; minus one-hot is d(loss_row)/d(logits)
            p[torch.arange(yb.numel()), yb] -= 1.0
            gx = grad_x[i : i + rows]
            torch.addmm(gx, p, w, beta=0.0, alpha=inv, out=gx)
            grad_w.addmm_(p.T, xb, alpha=inv)
        ctx.save_for_backward(grad_x, grad_w)
        return (total * inv).float()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        grad_x, grad_w = ctx.saved_tensors
        if grad.item() == 1.0:  # loss.backward(): no pass over the gradients
            return grad_x, grad_w, None
        return grad_x * grad, grad_w * grad, None


MODEL_SHAPE_KEYS = (
    "vocab_size", "num_layers", "model_dim", "num_heads", "num_kv_heads", "mlp_mult", "rope_base",
)  # fmt: skip


# -----------------------------
# QUANTIZATION AND THE ARTIFACT
# -----------------------------
# The artifact is what R1 counts: every large float matrix becomes int8 with one fp16
# scale per row (absmax / 127), small tensors (gains, mixes) are stored as fp16, and the
# model shape travels along so evaluation needs nothing but these bytes. torch.save of
# that dict is then compressed with zstandard.

ARTIFACT_NAME = "final_model.int8.ptz"
QUANT_FORMAT = "pgolf_int8_per_row_v1"
KEEP_FLOAT_MAX_NUMEL = 4096


def quantize_state_dict(state: dict[str, Tensor], shape: dict[str, object]) -> dict[str, object]:
    quant: dict[str, Tensor] = {}
    scales: dict[str, Tensor] = {}
    floats: dict[str, Tensor] = {}
    for name, t in state.items():
        t = t.detach().float().cpu()
        if t.ndim == 2 and t.numel() > KEEP_FLOAT_MAX_NUMEL:
            # Quantize on the fp16-rounded scale so that dequantization lands on the same grid.
            scale = (t.abs().amax(dim=1) / 127.0).clamp_min(2.0**-14).half()
            quant[name] = torch.round(t / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
            scales[name] = scale
        else:
            floats[name] = t.half()
    return {
        "format": QUANT_FORMAT,
        "shape": shape,
        "quant": quant,
        "scales": scales,
        "floats": floats,
    }


def dequantize_state_dict(obj: dict) -> dict[str, Tensor]:
    if obj.get("format") != QUANT_FORMAT:
        raise ValueError(f"unknown artifact format {obj.get('format')!r}")
    out = {n: q.float() * obj["scales"][n].float()[:, None] for n, q in obj["quant"].items()}
    out.update({n: t.float() for n, t in obj["floats"].items()})
    return out


def serialize_artifact(obj: dict, level: int) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return zstandard.ZstdCompressor(level=level).compress(buf.getvalue())


def load_artifact(path: str, args: Hyperparameters, device: torch.device) -> GPT:
    # The evaluation model is rebuilt from the artifact bytes alone (read back from disk).
    with open(path, "rb") as f:
        blob = f.read()
    obj = torch.load(io.BytesIO(zstandard.ZstdDecompressor().decompress(blob)), weights_only=True)
    shape_args = copy.copy(args)
    for key, value in obj["shape"].items():
        setattr(shape_args, key, value)
    model = GPT(shape_args).to(device)
    model.load_state_dict(dequantize_state_dict(obj), strict=True)
    return model.eval()


# -----------------------------
# TOKENIZER BYTE ACCOUNTING
# -----------------------------
# val_bpb divides by UTF-8 bytes of the text (RULES.md): each piece's bytes; a leading
# "▁" is one space byte unless the previous token is a boundary (BOS/control); control,
# unknown and unused ids have no bytes; byte-fallback pieces are one byte.


def build_byte_luts(sp: spm.SentencePieceProcessor, vocab_size: int) -> tuple[np.ndarray, ...]:
    n = max(int(sp.vocab_size()), vocab_size)
    base = np.zeros(n, dtype=np.int64)
    leading_space = np.zeros(n, dtype=bool)
    boundary = np.ones(n, dtype=bool)
    for i in range(int(sp.vocab_size())):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith("▁"):
            leading_space[i] = True
            piece = piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return base, leading_space, boundary


def target_bytes(tokens: np.ndarray, luts: tuple[np.ndarray, ...]) -> np.ndarray:
    """Bytes of tokens[1:] given their predecessors, shape (T-1,)."""
    base, leading_space, boundary = luts
    prev, tgt = tokens[:-1], tokens[1:]
    return base[tgt] + (leading_space[tgt] & ~boundary[prev])


# -----------------------------
# LEGAL PPM MIXTURE
# -----------------------------
# A token-level PPM model over the full vocabulary, built only from validation tokens that
# were already scored (C3). Each order k = 0..PPM_ORDER estimates from the counts of the
# last k tokens, with PPM-C / Witten-Bell escapes interpolated down to the uniform
# distribution:   p_k(v) = (c_k(v) + u_k * p_{k-1}(v)) / (n_k + u_k)
# (n_k: count of the context, u_k: distinct followers), so every p_k sums to 1 over the
# vocabulary. The committed distribution is (1 - lam) * p_net + lam * p_ppm where lam
# depends only on the context (the count of the longest seen context and its order),
# never on the realized token: it sums to 1 (C2). `prob` is the fast realized-token path
# of exactly the same formula that `distribution` evaluates for every symbol.


class PPM:
    def __init__(self, vocab_size: int, order: int, lam_max: float, beta: float) -> None:
        self.V, self.K, self.lam_max, self.beta = vocab_size, order, lam_max, beta
        # tables[k]: context key -> [n, u, {token: count}]
        self.tables: list[dict[int, list]] = [{} for _ in range(order + 1)]

    def _keys(self, hist: list[int], t: int) -> list[int]:
        # Exact integer keys of the contexts hist[t-k:t] for k = 0..K (those that exist).
        keys, key = [0], 0
        for k in range(1, min(self.K, t) + 1):
            key = key * self.V + hist[t - k] + 1
            keys.append(key)
        return keys

    def _weight(self, entries: list) -> float:
        for k in range(len(entries) - 1, 0, -1):
            if entries[k] is not None:
                n = entries[k][0]
                return self.lam_max * (k / self.K) * n / (n + self.beta)
        return 0.0

    def _entries(self, hist: list[int], t: int) -> list:
        return [self.tables[k].get(key) for k, key in enumerate(self._keys(hist, t))]

    def prob(self, hist: list[int], t: int, v: int) -> tuple[float, float]:
        """(p_ppm(v | hist[:t]), lam) for one symbol v."""
        entries = self._entries(hist, t)
        p = 1.0 / self.V
        for e in entries:
            if e is not None:
                p = (e[2].get(v, 0) + e[1] * p) / (e[0] + e[1])
        return p, self._weight(entries)

    def distribution(self, hist: list[int], t: int) -> tuple[np.ndarray, float]:
        """(p_ppm(. | hist[:t]) over the whole vocabulary, lam)."""
        entries = self._entries(hist, t)
        p = np.full(self.V, 1.0 / self.V)
        for e in entries:
            if e is not None:
                c = np.zeros(self.V)
                c[list(e[2].keys())] = list(e[2].values())
                p = (c + e[1] * p) / (e[0] + e[1])
        return p, self._weight(entries)

    def update(self, hist: list[int], t: int) -> None:
        """Count hist[t] after its context hist[:t]; call only once hist[t] was scored."""
        v = hist[t]
        for k, key in enumerate(self._keys(hist, t)):
            e = self.tables[k].get(key)
            if e is None:
                self.tables[k][key] = [1, 1, {v: 1}]
                continue
            c = e[2].get(v, 0)
            e[2][v] = c + 1
            e[0] += 1
            e[1] += c == 0


def ppm_mix(
    tokens: np.ndarray, net_nll: np.ndarray, args: Hyperparameters, adapt_mask: np.ndarray | None
) -> np.ndarray:
    """Sequential score-then-update pass: mixed nll for positions 1..T-1 (out[0] = nan)."""
    ppm = PPM(args.vocab_size, args.ppm_order, args.ppm_lambda_max, args.ppm_confidence_beta)
    hist = tokens.tolist()
    p_net = np.exp(-net_nll)
    out = np.full(len(hist), np.nan)
    for t in range(1, len(hist)):
        p, lam = ppm.prob(hist, t, hist[t])
        out[t] = -math.log((1.0 - lam) * p_net[t] + lam * p)
        if adapt_mask is None or adapt_mask[t]:
            ppm.update(hist, t)
    return out


# -----------------------------
# EVALUATION
# -----------------------------
# Every target position 1..T-1 is scored exactly once. Without EVAL_STRIDE the sequence is
# cut into consecutive windows of TRAIN_SEQ_LEN tokens; with EVAL_STRIDE=S each window
# slides by S and scores only its last S positions, so every token but the first window's
# sees at least TRAIN_SEQ_LEN - S tokens of context. A window depends only on positions,
# never on later tokens (C1). Windows of equal length are batched; under DDP the windows
# are split across ranks and the per-position losses summed back.


def plan_windows(T: int, seq_len: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, end, first): inputs tokens[start:end], scored target positions first..end."""
    windows, p = [], 1
    while p <= T - 1:
        n_new = seq_len if stride <= 0 or p == 1 else min(stride, seq_len)
        end = min(p + n_new - 1, T - 1)
        windows.append((max(0, p + n_new - 1 - seq_len), end, p))
        p = end + 1
    return windows


@torch.no_grad()
def network_nll(
    model: nn.Module, rows: np.ndarray, args: Hyperparameters, device: torch.device,
    rank: int = 0, world: int = 1,
) -> np.ndarray:  # fmt: skip
    """-ln p_net(rows[b, t] | rows[b, :t]) for every row b and position t >= 1; (B, T) float64."""
    B, T = rows.shape
    out = np.zeros((B, T), dtype=np.float64)
    jobs = [(b, w) for w in plan_windows(T, args.train_seq_len, args.eval_stride) for b in range(B)]
    jobs = jobs[rank::world]
    by_len: dict[int, list] = {}
    for b, (s, e, p) in jobs:
        by_len.setdefault(e - s, []).append((b, s, e, p))
    src = torch.from_numpy(rows.astype(np.int64))
    for L, group in by_len.items():
        per_batch = max(1, args.val_batch_size // L)
        for i in range(0, len(group), per_batch):
            part = group[i : i + per_batch]
            x = torch.stack([src[b, s:e] for b, s, e, _ in part]).to(device)
            y = torch.stack([src[b, s + 1 : e + 1] for b, s, e, _ in part]).to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model.logits(x)
            nll = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")
            nll = nll.double().cpu().numpy()
            for j, (b, s, e, p) in enumerate(part):
                out[b, p : e + 1] = nll[j, p - s - 1 :]
    if world > 1:
        t_out = torch.from_numpy(out).to(device)
        dist.all_reduce(t_out, op=dist.ReduceOp.SUM)
        out = t_out.cpu().numpy()
    out[:, 0] = np.nan
    return out


def score_tokens(
    model: nn.Module, tokens: np.ndarray, args: Hyperparameters, device: torch.device,
    adapt_mask: np.ndarray | None = None, rank: int = 0, world: int = 1,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(committed nll, network-only nll) per position of one sequence; index 0 is nan."""
    net = network_nll(model, tokens[None, :], args, device, rank, world)[0]
    if not args.ppm_enabled:
        return net, net
    return ppm_mix(tokens, net, args, adapt_mask), net


def bpb_of(nll: np.ndarray, n_bytes: np.ndarray) -> tuple[float, float]:
    """(val_loss in nats per token, val_bpb) over positions 1..T-1."""
    total = float(np.sum(nll[1:]))
    return total / (len(nll) - 1), total / math.log(2.0) / float(np.sum(n_bytes))


def unigram_bpb(counts: np.ndarray, val: np.ndarray, n_bytes: np.ndarray) -> float:
    # Add-one smoothed unigram of the TRAIN tokens, scored on val: the floor to beat.
    logp = np.log((counts + 1.0) / (counts.sum() + counts.size))
    return float(-np.sum(logp[val[1:]]) / math.log(2.0) / np.sum(n_bytes))


# -----------------------------
# SCORER PROTOCOL
# -----------------------------
# pgolf's dynamic probes (C1 causal, C2 normalized, C3 score-before-update) call
# pgolf_scorer(artifact_path, **overrides).score(tokens) and compare the per-position
# scores on perturbed inputs. It uses exactly the evaluation code above, with a fresh
# PPM state per call. Importing this file has no side effects.


class Scorer:
    level = "token"

    def __init__(self, model: nn.Module, args: Hyperparameters, device: torch.device) -> None:
        self.model, self.args, self.device = model, args, device
        self.vocab_size = args.vocab_size

    def _check(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size})")
        return tokens

    def score(self, tokens: np.ndarray, adapt_mask: np.ndarray | None = None) -> np.ndarray:
        tokens = self._check(tokens)
        mask = None if adapt_mask is None else np.asarray(adapt_mask, dtype=bool)
        return score_tokens(self.model, tokens, self.args, self.device, mask)[0]

    def score_batch(self, batch: np.ndarray) -> np.ndarray:
        batch = self._check(batch)
        net = network_nll(self.model, batch, self.args, self.device)
        if not self.args.ppm_enabled:
            return net
        return np.stack([ppm_mix(row, n, self.args, None) for row, n in zip(batch, net)])


def pgolf_scorer(artifact_path: str | None = None, **overrides: object) -> Scorer:
    """Scorer over the artifact (or a freshly seeded model when artifact_path is None)."""
    env = {**os.environ, **{k.upper(): str(v) for k, v in overrides.items()}}
    args = Hyperparameters(env)
    unknown = sorted(k.upper() for k in overrides if k.upper() not in args._names)
    if unknown:
        raise ValueError(f"unknown hyperparameter override(s): {', '.join(unknown)}")
    device = torch.device(args.device)
    if artifact_path is None:
        torch.manual_seed(args.seed)
        model = GPT(args).to(device).eval()
    else:
        model = load_artifact(str(artifact_path), args, device)
        args.vocab_size = model.tok_emb.num_embeddings
    return Scorer(model, args, device)


# -----------------------------
# TRAINING
# -----------------------------


def slowed_by_other_load(step_seconds: list[float]) -> bool:
    # Two OpenMP threads on a CPU that other jobs begin to share wait at every barrier for a
    # descheduled partner and run 3-5x slower than alone, one thread only ~2x slower
    # (benchmarks/RESULTS.md). Two consecutive steps over twice the median of steps 2-6
    # mean such load (the first step warms caches and allocator).
    if len(step_seconds) <= 6:
        return False
    return min(step_seconds[-2:]) > 2.0 * float(np.median(step_seconds[1:6]))


def tune_cpu_process() -> None:
    """Process settings for training on a CPU (benchmarks/trainer_mfu.py applies them too)."""
    torch.set_flush_denormal(True)  # denormal floats are ~100x slower on x86 CPUs
    # glibc gives freed blocks above an adaptive size back to the kernel, and every step then
    # page-faults its activations in again (30-60k faults per default step, ~5% of its time).
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            return  # not glibc
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: blocks up to 32 MiB come from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap
        # 32 MiB is glibc's largest threshold: bigger blocks (a d=512 model's MLP activations,
        # 19k faults per step) would still be mmapped and faulted in on every use.
        libc.mallopt(-4, 0)  # M_MMAP_MAX: no mmapped blocks (glibc falls back to mmap if brk fails)


def make_optimizers(
    model: GPT, args: Hyperparameters, device: torch.device
) -> list[torch.optim.Optimizer]:
    """[Adam for the tied embedding, Muon for the block matrices, Adam for any vectors]."""
    matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
    vectors = [p for p in model.blocks.parameters() if p.ndim != 2]
    fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
    adam_kw = dict(betas=(args.beta1, args.beta2), eps=args.adam_eps, **fused)
    optimizers: list[torch.optim.Optimizer] = [
        torch.optim.Adam([model.tok_emb.weight], lr=args.tied_embed_lr, **adam_kw),
        Muon(
            matrices,
            lr=args.matrix_lr,
            momentum=args.muon_momentum,
            backend_steps=args.muon_backend_steps,
            ns_dtype=torch.bfloat16 if fast_bf16_matmul(device) else torch.float32,
        ),
    ]
    if vectors:  # none in the default model; kept for variants that add gains
        optimizers.append(torch.optim.Adam(vectors, lr=args.scalar_lr, **adam_kw))
    for opt in optimizers:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers


def main() -> None:
    t_start = SCRIPT_START
    code = Path(__file__).read_text(encoding="utf-8")
    args = Hyperparameters()

    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = (
        torch.device(args.device, local_rank)
        if args.device == "cuda"
        else torch.device(args.device)
    )
    if device.type == "cpu":
        tune_cpu_process()
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    elif device.type == "cpu" and os.getloadavg()[0] >= (os.cpu_count() or 1):
        # On a CPU other jobs already fill, every OpenMP barrier waits for a descheduled
        # thread: one thread is 2-3x faster than two there (benchmarks/RESULTS.md).
        torch.set_num_threads(1)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
    if distributed:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    master = rank == 0

    def log0(msg: str) -> None:
        if master:
            print(msg, flush=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    log0(code)
    log0("=" * 100)
    log0(f"Running Python {sys.version}")
    log0(f"Running PyTorch {torch.__version__}")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    log0(f"Running on {device.type} {gpu} threads {torch.get_num_threads()}")
    log0("=" * 100)
    for key, value in args.items():
        log0(f"{key}:{value}")

    rows_per_step = args.train_batch_tokens // args.train_seq_len
    if args.train_batch_tokens % args.train_seq_len or rows_per_step % (
        world * args.grad_accum_steps
    ):
        raise ValueError(
            f"TRAIN_BATCH_TOKENS={args.train_batch_tokens} must be a multiple of TRAIN_SEQ_LEN="
            f"{args.train_seq_len} times WORLD_SIZE={world} times GRAD_ACCUM_STEPS={args.grad_accum_steps}"
        )
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    # -----------------------------
    # TRAINING PHASE: train shards and tokenizer only
    # -----------------------------

    sp = spm.SentencePieceProcessor(model_file=args.tokenizer_path)
    if int(sp.vocab_size()) != args.vocab_size:
        raise ValueError(f"VOCAB_SIZE={args.vocab_size} but the tokenizer has {sp.vocab_size()}")
    train_loader = TrainLoader(args.train_files, rank, world, device, args.seed)
    unigram_counts = train_unigram_counts(args.train_files, args.vocab_size)
    log0(f"train_loader:shards:{len(train_loader.files)} pattern:{args.train_files}")

    base_model = GPT(args).to(device)
    model: nn.Module = torch.compile(base_model) if args.compile else base_model
    if distributed:
        model = DDP(model, device_ids=[local_rank] if device.type == "cuda" else None)
    optimizers = make_optimizers(base_model, args, device)
    muon = optimizers[1]
    n_params = sum(p.numel() for p in base_model.parameters())
    log0(f"model_params:{n_params}")
    log0(f"world_size:{world} grad_accum_steps:{args.grad_accum_steps}")

    train_budget = args.max_wallclock_seconds - args.serialize_reserve_seconds

    def lr_scale(step: int) -> float:
        # Linear warmup, then linear warmdown over the last WARMDOWN_FRAC of whichever of
        # ITERATIONS and the wallclock budget runs out first.
        if step < args.lr_warmup_steps:
            return (step + 1) / args.lr_warmup_steps
        progress = step / max(args.iterations, 1)
        if args.max_wallclock_seconds > 0:
            progress = max(progress, (time.perf_counter() - t_start) / max(train_budget, 1e-9))
        if args.warmdown_frac <= 0 or progress < 1.0 - args.warmdown_frac:
            return 1.0
        return max(0.0, (1.0 - progress) / args.warmdown_frac)

    def train_step(step: int, scale: float) -> Tensor:
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        total = torch.zeros((), device=device)
        for micro in range(args.grad_accum_steps):
            x, y = train_loader.next_batch(
                args.train_batch_tokens // args.grad_accum_steps, args.train_seq_len
            )
            if distributed:
                model.require_backward_grad_sync = micro == args.grad_accum_steps - 1
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = model(x, y)
            (loss / args.grad_accum_steps).backward()
            total += loss.detach() / args.grad_accum_steps
        frac = min(step / max(args.muon_momentum_warmup_steps, 1), 1.0)
        momentum = (1 - frac) * args.muon_momentum_warmup_start + frac * args.muon_momentum
        for group in muon.param_groups:
            group["momentum"] = momentum
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * scale
        if args.grad_clip_norm > 0:
            nn.utils.clip_grad_norm_(base_model.parameters(), args.grad_clip_norm)
        for opt in optimizers:
            opt.step()
        return total

    # Warmup steps prime kernels (and torch.compile), then the initial state is restored.
    if args.warmup_steps > 0:
        init_model = copy.deepcopy(base_model.state_dict())
        init_opts = [copy.deepcopy(opt.state_dict()) for opt in optimizers]
        for i in range(args.warmup_steps):
            train_step(0, 1.0)
            log0(f"warmup_step:{i + 1}/{args.warmup_steps}")
        base_model.load_state_dict(init_model)
        for opt, state in zip(optimizers, init_opts):
            opt.load_state_dict(state)
        train_loader = TrainLoader(args.train_files, rank, world, device, args.seed)

    # The thread choice above cannot see load that starts later: with automatic threads,
    # the loop drops to one thread when steps slow down (slowed_by_other_load).
    watch_threads = device.type == "cpu" and args.num_threads <= 0 and torch.get_num_threads() > 1
    step_seconds: list[float] = []
    monitor_tokens: np.ndarray | None = None
    training_ms, step = 0.0, 0
    sync()
    t0 = t_last = time.perf_counter()
    while step < args.iterations:
        if args.val_loss_every > 0 and step > 0 and step % args.val_loss_every == 0:
            # Monitoring only (tolerated by R4): printed, never used for any choice.
            sync()
            training_ms += 1000.0 * (time.perf_counter() - t0)
            if monitor_tokens is None:
                monitor_tokens = np.concatenate(
                    [load_shard(f) for f in shard_files(args.val_files)]
                )
            base_model.eval()
            nll = network_nll(base_model, monitor_tokens[None, :], args, device, rank, world)[0]
            base_model.train()
            luts = build_byte_luts(sp, args.vocab_size)
            vl, vb = bpb_of(nll, target_bytes(monitor_tokens, luts))
            log0(
                f"step:{step}/{args.iterations} val_loss:{vl:.4f} val_bpb:{vb:.4f} train_time:{training_ms:.0f}ms"
            )
            t0 = time.perf_counter()
        t_step = time.perf_counter()
        loss = train_step(step, lr_scale(step))
        step += 1
        now = time.perf_counter()
        if watch_threads:
            step_seconds.append(now - t_step)
            if slowed_by_other_load(step_seconds):
                torch.set_num_threads(1)
                watch_threads = False
                log0(
                    f"threads:1 from step {step + 1} (step {step} took {step_seconds[-1]:.2f}s, "
                    f"steps 2-6 {np.median(step_seconds[1:6]):.2f}s: other load)"
                )
        elapsed_ms = training_ms + 1000.0 * (now - t0)
        # Stop when one more step of the last step's length would cross the budget.
        last_step_s, t_last = now - t_last, now
        capped = args.max_wallclock_seconds > 0 and now - t_start + last_step_s >= train_budget
        if distributed:
            flag = torch.tensor(int(capped), device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            capped = bool(flag.item())
        cadence = step <= 5 or step % max(args.train_log_every, 1) == 0 or step == args.iterations
        if args.train_log_every > 0 and (cadence or capped):
            if distributed:  # log the global batch's loss, not rank 0's share
                dist.all_reduce(loss, op=dist.ReduceOp.SUM)
                loss /= world
            log0(
                f"step:{step}/{args.iterations} train_loss:{loss.item():.4f} "
                f"train_time:{elapsed_ms:.0f}ms step_avg:{elapsed_ms / step:.2f}ms"
            )
        if capped and step < args.iterations:
            log0(
                f"stopping_early: wallclock_cap train_time:{elapsed_ms:.0f}ms step:{step}/{args.iterations}"
            )
            break
    sync()
    training_ms += 1000.0 * (time.perf_counter() - t0)
    log0(
        f"train_loop_time:{training_ms:.0f}ms steps:{step} tokens_per_s:{step * args.train_batch_tokens / max(training_ms / 1000.0, 1e-9):.0f}"
    )

    # -----------------------------
    # SERIALIZATION: the end of the training phase
    # -----------------------------

    shape = {k: getattr(args, k) for k in MODEL_SHAPE_KEYS}
    blob = serialize_artifact(quantize_state_dict(base_model.state_dict(), shape), args.zstd_level)
    if master:
        with open(ARTIFACT_NAME, "wb") as f:
            f.write(blob)
    sync()
    train_time_total_ms = 1000.0 * (time.perf_counter() - t_start)
    code_bytes = os.path.getsize(__file__)
    log0(f"Serialized model int8+zstd: {len(blob)} bytes")
    log0(f"Code size: {code_bytes} bytes")
    log0(f"Total submission size int8+zstd: {len(blob) + code_bytes} bytes")
    log0(f"train_time_total:{train_time_total_ms:.0f}ms")
    if distributed:
        dist.barrier()

    # -----------------------------
    # EVALUATION PHASE: artifact bytes from disk, then the validation split
    # -----------------------------

    sync()
    t_eval = time.perf_counter()
    eval_model = load_artifact(ARTIFACT_NAME, args, device)
    val_tokens = np.concatenate([load_shard(f) for f in shard_files(args.val_files)])
    n_bytes = target_bytes(val_tokens, build_byte_luts(sp, args.vocab_size))
    log0(
        f"val_loader:shards pattern:{args.val_files} tokens:{val_tokens.size} bytes:{int(n_bytes.sum())}"
    )
    nll, net_nll = score_tokens(eval_model, val_tokens, args, device, None, rank, world)
    val_loss, val_bpb = bpb_of(nll, n_bytes)
    sync()
    eval_ms = 1000.0 * (time.perf_counter() - t_eval)
    log0(f"unigram_val_bpb:{unigram_bpb(unigram_counts, val_tokens, n_bytes):.8f}")
    if args.ppm_enabled:
        net_bpb = bpb_of(net_nll, n_bytes)[1]
        log0(
            f"ppm_diagnostic network_only_bpb:{net_bpb:.8f} mixed_bpb:{val_bpb:.8f} gain_bpb:{net_bpb - val_bpb:.8f}"
        )
    log0(
        f"final_int8_zstd_roundtrip val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f} eval_time:{eval_ms:.0f}ms"
    )
    log0(f"final_int8_zstd_roundtrip_exact val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f}")
    log0(f"eval_time_total:{eval_ms:.0f}ms")
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""Unit tests of the bundled trainer's pieces: windows, quantization, PPM, scorer protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf import train_gpt as tg

TINY = {
    "VOCAB_SIZE": 48,
    "NUM_LAYERS": 1,
    "MODEL_DIM": 32,
    "NUM_HEADS": 2,
    "NUM_KV_HEADS": 1,
    "TRAIN_SEQ_LEN": 16,
    "DEVICE": "cpu",
    "SEED": 3,
}


def repetitive_tokens(n: int, vocab: int, seed: int = 0) -> np.ndarray:
    """Tokens with repeated phrases, so that a PPM has something to learn."""
    rng = np.random.default_rng(seed)
    phrases = [rng.integers(2, vocab, size=rng.integers(3, 7)) for _ in range(4)]
    out = [1]
    while len(out) < n:
        out.extend(phrases[int(rng.integers(0, 4))].tolist())
        if rng.random() < 0.3:
            out.append(int(rng.integers(0, vocab)))
    return np.array(out[:n], dtype=np.int64)


# -----------------------------
# evaluation windows
# -----------------------------


@settings(max_examples=200, deadline=None)
@given(
    T=st.integers(2, 400), seq_len=st.integers(1, 40), stride=st.integers(0, 50)
)  # fmt: skip
def test_every_position_is_scored_once_with_causal_context(
    T: int, seq_len: int, stride: int
) -> None:
    windows = tg.plan_windows(T, seq_len, stride)
    scored = [p for _s, e, first in windows for p in range(first, e + 1)]
    assert scored == list(range(1, T))  # each target once, in order (C4)
    for start, end, first in windows:
        assert 0 <= start < first <= end + 1 and end - start <= seq_len and end <= T - 1
    # A window depends on positions only: a longer sequence plans the same contexts (C1).
    longer = {first: start for start, _e, first in tg.plan_windows(T + 37, seq_len, stride)}
    assert all(longer[first] == start for start, _e, first in windows)


def test_sliding_windows_give_each_later_token_long_context() -> None:
    for start, _end, first in tg.plan_windows(1000, 64, 16)[1:]:
        assert first - start >= 64 - 16


# -----------------------------
# quantization
# -----------------------------


def test_int8_roundtrip_error_is_within_half_a_step_per_row() -> None:
    torch.manual_seed(0)
    state = {"w": torch.randn(96, 80) * torch.rand(96, 1), "g": torch.randn(7)}
    obj = tg.quantize_state_dict(state, {"vocab_size": 1})
    back = tg.dequantize_state_dict(obj)
    step = obj["scales"]["w"].float()[:, None]
    assert obj["quant"]["w"].dtype == torch.int8
    assert torch.all((back["w"] - state["w"]).abs() <= step * 0.5 + 1e-6)
    assert torch.allclose(back["g"], state["g"], atol=1e-2)


def test_unknown_artifact_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown artifact format"):
        tg.dequantize_state_dict({"format": "something_else"})


# -----------------------------
# CPU training kernels: the same loss and gradients as the plain autograd path
# -----------------------------


def test_relu_square_mlp_matches_autograd() -> None:
    torch.manual_seed(0)
    res, x = torch.randn(2, 5, 4), torch.randn(2, 5, 6)
    w_fc, w_proj = torch.randn(7, 6), torch.randn(4, 7)
    inputs = [t.double().requires_grad_() for t in (res, x, w_fc, w_proj)]
    assert torch.autograd.gradcheck(tg.ReluSquareMLP.apply, inputs)
    out = tg.ReluSquareMLP.apply(*inputs)
    torch.testing.assert_close(
        out, inputs[0] + F.relu(inputs[1] @ w_fc.double().T).square() @ w_proj.double().T
    )


def plain_block(block: tg.Block, x: torch.Tensor) -> torch.Tensor:
    """The block as plain autograd ops (the CUDA path's formulas, the layout before the CPU work)."""
    a, B, T, d = block.attn, *x.shape
    h = tg.norm(x)
    q = a.c_q(h).view(B, T, a.nh, a.hd).transpose(1, 2)
    k, v = a.c_kv(h).view(B, T, 2, a.nkv, a.hd).permute(2, 0, 3, 1, 4)
    rot = a.rotary(T, x.device)
    q, k = tg.apply_rotary(q, rot), tg.apply_rotary(k, rot)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    x = x + a.proj(y.transpose(1, 2).reshape(B, T, d))
    return x + block.mlp.proj(F.relu(block.mlp.fc(tg.norm(x))).square())


def test_cpu_block_equals_the_plain_block() -> None:
    args = tg.Hyperparameters({**{k: str(v) for k, v in TINY.items()}, "NUM_HEADS": "4"})
    torch.manual_seed(0)
    block = tg.Block(args)
    for p in block.parameters():  # the default init zeroes output projections
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(3, 16, 32, requires_grad=True)
    grad_out = torch.randn(3, 16, 32)
    out = block(x)
    out.backward(grad_out)
    grads = [x.grad] + [p.grad for p in block.parameters()]
    x.grad = None
    block.zero_grad()
    plain = plain_block(block, x)
    plain.backward(grad_out)
    torch.testing.assert_close(out, plain)
    for g, p in zip(grads, [x, *block.parameters()], strict=True):
        torch.testing.assert_close(g, p.grad)


@pytest.mark.parametrize("rows", [1, 16, 40])  # one partial block, one full, several
def test_linear_cross_entropy_equals_plain_cross_entropy(rows: int) -> None:
    torch.manual_seed(0)
    vocab = 2**14  # blocks of 16 rows at this vocabulary size
    x = torch.randn(rows, 8, requires_grad=True)
    w = (torch.randn(vocab, 8) * 2).requires_grad_()
    y = torch.randint(0, vocab, (rows,))
    loss = tg.LinearCrossEntropy.apply(x, w, y)
    (3.0 * loss).backward()  # a non-unit upstream gradient is scaled through
    gx, gw = x.grad, w.grad
    x.grad = w.grad = None
    plain = F.cross_entropy(F.linear(x, w), y)
    (3.0 * plain).backward()
    torch.testing.assert_close(loss, plain)
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 64, 32), (2, 32, 64), (1, 48, 48)])
def test_newton_schulz_orthogonalizes(dtype: torch.dtype, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    out = tg.newton_schulz(torch.randn(shape) * 5.0, 5, dtype).float()
    assert out.shape == shape
    # The tuned quintic iteration maps every singular value into roughly [0.7, 1.2].
    s = torch.linalg.svdvals(out)
    assert s.min() > 0.5 and s.max() < 1.5


def test_cpu_training_loss_and_gradients_equal_the_logits_path() -> None:
    args = tg.Hyperparameters({k: str(v) for k, v in TINY.items()})
    torch.manual_seed(0)
    model = tg.GPT(args)
    for p in model.parameters():  # the default init zeroes output projections
        torch.nn.init.normal_(p, std=0.2)
    x, y = torch.randint(0, 48, (3, 16)), torch.randint(0, 48, (3, 16))
    loss = model(x, y)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    plain = F.cross_entropy(model.logits(x).flatten(0, 1), y.flatten())
    plain.backward()
    torch.testing.assert_close(loss, plain)
    for g, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)
    with torch.no_grad():
        torch.testing.assert_close(model(x, y), plain.detach())


def test_threads_drop_only_after_two_consecutive_slow_steps() -> None:
    quiet = [3.0, 1.0, 1.1, 0.9, 1.0, 1.0]  # the first step is warm-up and not counted
    assert not tg.slowed_by_other_load(quiet)
    assert not tg.slowed_by_other_load([*quiet, 1.2, 1.1])
    assert not tg.slowed_by_other_load([*quiet, 2.5, 1.0])  # one slow step: a hiccup
    assert tg.slowed_by_other_load([*quiet, 2.5, 2.2])
    assert not tg.slowed_by_other_load([5.0, 5.0, 5.0])  # too early to tell


# -----------------------------
# PPM
# -----------------------------


@settings(max_examples=60, deadline=None)
@given(
    vocab=st.integers(2, 40),
    order=st.integers(0, 4),
    data=st.lists(st.integers(0, 39), min_size=1, max_size=120),
)
def test_ppm_distribution_sums_to_one_and_matches_the_fast_path(
    vocab: int, order: int, data: list[int]
) -> None:
    hist = [v % vocab for v in data]
    ppm = tg.PPM(vocab, order, lam_max=0.7, beta=2.0)
    for t in range(len(hist)):
        dist, lam = ppm.distribution(hist, t)
        assert dist.shape == (vocab,) and np.all(dist > 0)
        assert math.isclose(dist.sum(), 1.0, rel_tol=0, abs_tol=1e-12)
        assert 0.0 <= lam < 1.0
        for v in range(vocab):
            p, lam_v = ppm.prob(hist, t, v)
            assert lam_v == lam  # the weight does not depend on the candidate symbol
            assert math.isclose(p, dist[v], rel_tol=1e-12)
        ppm.update(hist, t)


def test_ppm_learns_repeats_from_scored_tokens() -> None:
    hist = [5, 6, 7, 8] * 30
    ppm = tg.PPM(16, 3, lam_max=0.7, beta=2.0)
    for t in range(len(hist) - 1):
        ppm.update(hist, t)
    p, lam = ppm.prob(hist, len(hist) - 1, hist[-1])
    assert p > 0.9 and lam > 0.5


# -----------------------------
# scorer protocol
# -----------------------------


@pytest.fixture(scope="module")
def scorer() -> tg.Scorer:
    return tg.pgolf_scorer(None, **TINY)


@pytest.fixture(scope="module")
def ppm_scorer() -> tg.Scorer:
    return tg.pgolf_scorer(None, PPM_ENABLED=1, PPM_ORDER=3, **TINY)


def test_scorer_protocol_shape_and_units(scorer: tg.Scorer) -> None:
    tokens = repetitive_tokens(50, 48)
    out = scorer.score(tokens)
    assert scorer.vocab_size == 48 and scorer.level == "token"
    assert out.shape == (50,) and out.dtype == np.float64
    assert np.isnan(out[0]) and np.all(np.isfinite(out[1:])) and np.all(out[1:] > 0)
    # A fresh, untrained model is close to uniform: about ln(V) nats per token.
    assert abs(np.mean(out[1:]) - math.log(48)) < 0.5


def test_fresh_scorer_is_seeded(scorer: tg.Scorer) -> None:
    tokens = repetitive_tokens(40, 48)
    again = tg.pgolf_scorer(None, **TINY).score(tokens)
    other = tg.pgolf_scorer(None, **{**TINY, "SEED": 4}).score(tokens)
    np.testing.assert_array_equal(again, scorer.score(tokens))
    assert not np.allclose(other[1:], again[1:])


@pytest.mark.parametrize("which", ["scorer", "ppm_scorer"])
def test_changing_a_later_token_leaves_earlier_scores_unchanged(
    which: str, request: pytest.FixtureRequest
) -> None:
    s: tg.Scorer = request.getfixturevalue(which)
    tokens = repetitive_tokens(70, 48)
    base = s.score(tokens)
    for t in (5, 16, 33, 69):
        changed = tokens.copy()
        changed[t:] = (changed[t:] + 7) % 48
        out = s.score(changed)
        np.testing.assert_allclose(out[1:t], base[1:t], rtol=0, atol=1e-9)
        assert not np.allclose(out[t:], base[t:])


@pytest.mark.parametrize("t", [1, 9, 37, 63])
def test_ppm_mixture_sums_to_one_over_every_vocabulary_symbol(
    ppm_scorer: tg.Scorer, t: int
) -> None:
    tokens = repetitive_tokens(64, 48, seed=1)
    batch = np.repeat(tokens[None, :], 48, axis=0)
    batch[:, t] = np.arange(48)
    out = ppm_scorer.score_batch(batch)
    mass = np.exp(-out[:, t])
    assert abs(mass.sum() - 1.0) < 1e-5  # C2: one committed distribution over the vocabulary
    # The realized token's row scores exactly what a plain call scores.
    assert math.isclose(
        out[tokens[t], t], ppm_scorer.score(tokens)[t], rel_tol=1e-12, abs_tol=1e-12
    )


def test_ppm_helps_on_repeats_and_scores_before_updating(ppm_scorer: tg.Scorer) -> None:
    tokens = repetitive_tokens(300, 48, seed=2)
    mixed = ppm_scorer.score(tokens)
    plain = tg.pgolf_scorer(None, **TINY).score(tokens)
    assert np.nanmean(mixed[150:]) < np.nanmean(plain[150:]) - 0.3
    # C3: the score of x_t never depends on adapting on x_t or later: masking adaptation
    # from position m on leaves every score up to and including m unchanged...
    for m in (1, 100, 222):
        mask = np.ones(300, dtype=bool)
        mask[m:] = False
        masked = ppm_scorer.score(tokens, adapt_mask=mask)
        np.testing.assert_array_equal(masked[: m + 1], mixed[: m + 1])
        # ...and changes later scores, so the mask is honoured.
        assert not np.allclose(masked[m + 1 :], mixed[m + 1 :])


def test_score_batch_rows_are_independent(ppm_scorer: tg.Scorer) -> None:
    rows = np.stack([repetitive_tokens(40, 48, seed=s) for s in range(3)])
    out = ppm_scorer.score_batch(rows)
    for row, scores in zip(rows, out, strict=True):
        np.testing.assert_allclose(scores, ppm_scorer.score(row), rtol=1e-6, equal_nan=True)


def test_scorer_rejects_unknown_overrides_and_bad_tokens(scorer: tg.Scorer) -> None:
    with pytest.raises(ValueError, match="NOT_A_KNOB"):
        tg.pgolf_scorer(None, not_a_knob=1)
    with pytest.raises(ValueError, match="token ids"):
        scorer.score(np.array([1, 2, 48]))


def test_bad_hyperparameter_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"SEED='abc' is not a valid int"):
        tg.Hyperparameters({"SEED": "abc"})
    with pytest.raises(ValueError, match="NUM_KV_HEADS=3"):
        tg.GPT(tg.Hyperparameters({**{k: str(v) for k, v in TINY.items()}, "NUM_KV_HEADS": "3"}))

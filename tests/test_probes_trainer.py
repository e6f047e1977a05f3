"""The bundled trainer's pgolf_scorer passes C1, C2 and C3, with and without the PPM mixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audit.probes import run_probes

TRAINER = Path(__file__).resolve().parents[1] / "pgolf" / "train_gpt.py"
TINY = {
    "VOCAB_SIZE": "96",
    "NUM_LAYERS": "1",
    "MODEL_DIM": "32",
    "NUM_HEADS": "2",
    "NUM_KV_HEADS": "1",
    "MLP_MULT": "2",
    "TRAIN_SEQ_LEN": "64",
    "DEVICE": "cpu",
}

# Small on purpose: the sandbox start (torch import, model build) dominates the time anyway.
SLICE = 128
POSITIONS = 4

pytestmark = pytest.mark.skipif(
    not TRAINER.is_file() or "def pgolf_scorer" not in TRAINER.read_text(),
    reason="the bundled trainer has no pgolf_scorer yet",
)


def _shards(directory: Path) -> Path:
    """A tiny val shard with repeated phrases, so that the PPM mixture really adapts."""
    rng = np.random.default_rng(0)
    phrases = [rng.integers(1, 96, size=rng.integers(3, 9)) for _ in range(12)]
    tokens = np.concatenate([phrases[i] for i in rng.integers(0, 12, size=200)])[:600]
    tokens[0] = 0
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(tokens))
    directory.mkdir(exist_ok=True)
    (directory / "fineweb_val_000000.bin").write_bytes(
        header.tobytes() + tokens.astype("<u2").tobytes()
    )
    return directory


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra", [{"PPM_ENABLED": "0"}, {"PPM_ENABLED": "1", "EVAL_STRIDE": "16"}], ids=["net", "ppm"]
)
def test_bundled_scorer_passes_every_probe(tmp_path: Path, extra: dict[str, str]) -> None:
    report = run_probes(
        TRAINER,
        env={**TINY, **extra},
        data_dir=_shards(tmp_path / "data"),
        slice_len=SLICE,
        positions=POSITIONS,
        timeout_s=300,
    )
    statuses = {r.condition: (r.status, r.detail) for r in report.results}
    assert all(s == "pass" for s, _ in statuses.values()), statuses
    assert report.info["vocab_size"] == 96 and report.info["slice"]["real"]
    c2 = next(r for r in report.results if r.condition == "C2")
    assert c2.measured["batched"] is True
    assert c2.measured["batch_vs_score_max_rel_deviation"] <= 1e-4
    c3 = next(r for r in report.results if r.condition == "C3")
    # With PPM the mixture adapts, so switching adaptation off must change later scores.
    assert c3.measured["adapt_mask_changes_later_scores"] is (extra["PPM_ENABLED"] == "1")


# The bundled PPM mixture broken on purpose, two ways seen in real submissions.
REALIZED_GATE = (
    "        p, lam = ppm.prob(hist, t, hist[t])\n",
    "        p, lam = ppm.prob(hist, t, hist[t])\n        lam = 0.5 if p > p_net[t] else 0.0\n",
)
UPDATE_FIRST = (
    "        p, lam = ppm.prob(hist, t, hist[t])\n",
    "        if adapt_mask is None or adapt_mask[t]:\n"
    "            ppm.update(hist, t)\n"
    "        p, lam = ppm.prob(hist, t, hist[t])\n",
)
# Counting x_t before scoring it while ignoring adapt_mask: neither C1 (no later token is
# involved) nor C3 (the mask changes nothing) can see it, but every candidate is inflated.
UPDATE_FIRST_NO_MASK = (
    "        p, lam = ppm.prob(hist, t, hist[t])\n",
    "        ppm.update(hist, t)\n        p, lam = ppm.prob(hist, t, hist[t])\n",
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("patch", "failing"),
    [(REALIZED_GATE, {"C2"}), (UPDATE_FIRST, {"C2", "C3"}), (UPDATE_FIRST_NO_MASK, {"C2"})],
    ids=["realized-gate", "update-before-score", "update-before-score-ignoring-mask"],
)
def test_broken_ppm_variants_of_the_bundled_scorer_are_caught(
    tmp_path: Path, patch: tuple[str, str], failing: set[str]
) -> None:
    source = TRAINER.read_text()
    if source.count(patch[0]) != 1:
        pytest.skip("the bundled PPM loop changed; update the patch anchors")
    script = tmp_path / "train_gpt.py"
    script.write_text(source.replace(patch[0], patch[1]))
    report = run_probes(
        script,
        env={**TINY, "PPM_ENABLED": "1"},
        data_dir=_shards(tmp_path / "data"),
        slice_len=SLICE,
        positions=POSITIONS,
        timeout_s=300,
    )
    statuses = {r.condition: r.status for r in report.results}
    assert {c for c, s in statuses.items() if s == "fail"} == failing, report.results

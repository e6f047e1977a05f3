"""Rule ids of the dynamic probes (PG49x C1, PG59x C2, PG69x C3), registered for --explain.

These rules are never checked statically: `check()` yields nothing, and their findings come
from `audit.probes.run_probes`, which measures a scorer in a sandbox. They are registered so
that ids stay stable, `pgolf audit --explain PG591` prints their doc, and reports can resolve
them. `probe = True` tells the static fixture machinery they have no source fixtures.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from audit.model import Finding, Rule, Severity, register

if TYPE_CHECKING:
    from audit.context import AuditContext


class ProbeRule(Rule):
    """Base of the probe rules: findings come from run_probes, not from a static check."""

    probe: ClassVar[bool] = True

    def check(self, ctx: AuditContext) -> Iterable[Finding]:
        return ()


@register
class ProbeC1NotMeasured(ProbeRule):
    """PG490: the C1 probe could not measure the scorer.

    ## What it does
    Reports that `pgolf audit --probe` / `pgolf probe` could not run the causality probe:
    the scorer raised, broke the scorer protocol, ran past the time limit or its process died.

    ## Why is this bad?
    Nothing was proven about C1. The message carries the scorer's error; fix the scorer (see
    docs/scorer-protocol.md) or raise `--timeout`.

    ## Illegal example
    ```python
    def pgolf_scorer(artifact_path=None, **overrides):
        raise RuntimeError("needs CUDA")
    ```

    ## Legal example
    ```python
    def pgolf_scorer(artifact_path=None, **overrides):
        return Scorer(load(artifact_path), device="cpu")
    ```

    ## References
    RULES C1; docs/probes.md.
    """

    id = "PG490"
    name = "probe-c1-not-measured"
    condition = "C1"
    severity = Severity.WARNING
    message = "C1 probe could not run: {reason}"


@register
class ProbeFutureDependence(ProbeRule):
    """PG491: a score changed when a later token changed (measured).

    ## What it does
    Scores a validation slice, changes later tokens (single tokens at several positions and
    a whole suffix) and compares every earlier score. Any deviation beyond float noise
    (abs(delta) <= 1e-6 x max(1, abs(score))) is reported with the position and the size.

    ## Why is this bad?
    C1: the distribution that scores x_t may depend only on the artifact and x_<t. A
    non-causal window, a bidirectional layer, or adapting on tokens not yet scored leaks the
    future into the score.

    ## Illegal example
    ```python
    def score(self, tokens, adapt_mask=None):
        ctx = tokens[max(0, i - 4) : i + 2]  # looks one token ahead
    ```

    ## Legal example
    ```python
    def score(self, tokens, adapt_mask=None):
        ctx = tokens[max(0, i - 4) : i]  # only the past
    ```

    ## References
    RULES C1; docs/probes.md.
    """

    id = "PG491"
    name = "probe-future-dependence"
    condition = "C1"
    message = "C1 probe: {detail}"


@register
class ProbeNetworkAttempt(ProbeRule):
    """PG499: the scorer tried to reach the network (or start a process) in the probe sandbox.

    ## What it does
    The probe sandbox blocks sockets, DNS lookups and subprocesses and records every attempt;
    this finding lists them.

    ## Why is this bad?
    R1: no downloads, network access or external data at evaluation. The attempt was blocked,
    so the measured scores are those of the scorer without the network.

    ## Illegal example
    ```python
    urllib.request.urlopen("https://example.com/extra_weights.bin")
    ```

    ## Legal example
    ```python
    weights = load(artifact_path)  # everything the evaluation needs is in the artifact
    ```

    ## References
    RULES R1; docs/probes.md.
    """

    id = "PG499"
    name = "probe-network-attempt"
    condition = "R1"
    severity = Severity.WARNING
    message = "the scorer tried {attempts} (blocked by the probe sandbox)"


@register
class ProbeC2NotMeasured(ProbeRule):
    """PG590: the C2 probe could not measure the scorer.

    ## What it does
    Reports that the normalization probe could not run or could not be trusted: the scorer
    raised, timed out, or its `score_batch` disagreed with `score()`.

    ## Why is this bad?
    Nothing was proven about C2.

    ## Illegal example
    ```python
    def score_batch(self, batch):
        return np.zeros(batch.shape)  # not what score() returns
    ```

    ## Legal example
    ```python
    def score_batch(self, batch):
        return np.stack([self.score(row) for row in batch])
    ```

    ## References
    RULES C2; docs/probes.md.
    """

    id = "PG590"
    name = "probe-c2-not-measured"
    condition = "C2"
    severity = Severity.WARNING
    message = "C2 probe could not run: {reason}"


@register
class ProbeUnnormalized(ProbeRule):
    """PG591: the implied probabilities over the alphabet do not sum to 1 (measured).

    ## What it does
    At sampled positions, substitutes every vocabulary token (every byte for byte-level
    scorers) and sums exp(-score). The sum must be 1 within 1e-3; the report gives the mass
    per position and its range.

    ## Why is this bad?
    C2: the evaluator must commit to one full distribution before the symbol is revealed. A
    gate or mixing weight that depends on the realized token, a hash(context, target) boost,
    spreading a token probability over its bytes as p^(1/n) or renormalising over a subset
    all give a mass away from 1, and an unearned score.

    ## Illegal example
    ```python
    p = lam * p_nn[target] + (1 - lam) * p_ppm[target] if p_ppm[target] > 0 else p_nn[target]
    ```

    ## Legal example
    ```python
    lam = weight(context)  # known before the target
    p = lam * p_nn + (1 - lam) * p_ppm  # two normalized distributions
    score = -log(p[target])
    ```

    ## References
    RULES C2; docs/probes.md; docs/scorer-protocol.md.
    """

    id = "PG591"
    name = "probe-unnormalized"
    condition = "C2"
    message = "C2 probe: {detail}"


@register
class ProbeAdaptBeforeScore(ProbeRule):
    """PG691: a score depends on adaptation on its own or later tokens (measured).

    ## What it does
    Compares a normal run with runs that may not adapt on the tokens from a cut point m on
    (`adapt_mask` False) and runs where those tokens are replaced. Scores at positions up to
    m (m included for the mask run) must not move.

    ## Why is this bad?
    C3: adaptation (TTT steps, cache or count updates, SLOT deltas) may use a token only
    after it was scored. Fine-tuning on a chunk and then scoring it credits the model with
    what it just memorised.

    ## Illegal example
    ```python
    for chunk in chunks:
        train_on(chunk)
        scores.append(score(chunk))
    ```

    ## Legal example
    ```python
    for chunk in chunks:
        scores.append(score(chunk))
        train_on(chunk)
    ```

    ## References
    RULES C3; docs/probes.md.
    """

    id = "PG691"
    name = "probe-adapt-before-score"
    condition = "C3"
    message = "C3 probe: {detail}"


@register
class ProbeC3NotMeasured(ProbeRule):
    """PG690: the C3 probe could not measure the scorer.

    ## What it does
    Reports that the score-before-update probe could not run: the scorer raised, timed out
    or its process died.

    ## Why is this bad?
    Nothing was proven about C3.

    ## Illegal example
    ```python
    def score(self, tokens, adapt_mask=None):
        time.sleep(10**6)
    ```

    ## Legal example
    ```python
    def score(self, tokens, adapt_mask=None):
        return self._score_first_then_adapt(tokens, adapt_mask)
    ```

    ## References
    RULES C3; docs/probes.md.
    """

    id = "PG690"
    name = "probe-c3-not-measured"
    condition = "C3"
    severity = Severity.WARNING
    message = "C3 probe could not run: {reason}"


FAILURE_RULES: dict[str, type[ProbeRule]] = {
    "C1": ProbeFutureDependence,
    "C2": ProbeUnnormalized,
    "C3": ProbeAdaptBeforeScore,
}
NOT_MEASURED_RULES: dict[str, type[ProbeRule]] = {
    "C1": ProbeC1NotMeasured,
    "C2": ProbeC2NotMeasured,
    "C3": ProbeC3NotMeasured,
}

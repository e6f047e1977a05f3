"""C3 rules (PG601-PG603): the score-first shape passes, adapt-then-score fails, with evidence."""

from __future__ import annotations

import textwrap

from audit.engine import audit_source
from audit.model import Severity

HEAD = """
import glob, os
import torch
import torch.nn.functional as F

class Hyperparameters:
    val_files = os.path.join(os.environ.get("DATA_PATH", "./data"), "fineweb_val_*.bin")
    ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "0")))

def load_val(args):
    return torch.cat([torch.load(f) for f in sorted(glob.glob(args.val_files))])
"""

MAIN = """
def main():
    args = Hyperparameters()
    model = torch.nn.Embedding(1024, 1024)
    torch.save(model.state_dict(), "final_model.int8.ptz")
    model.load_state_dict(torch.load("final_model.int8.ptz"))
    tokens = load_val(args)
    if args.ttt_enabled:
        print(run_eval(model, tokens))

if __name__ == "__main__":
    main()
"""


def _audit(body: str, config: dict[str, str] | None = None):
    src = textwrap.dedent(HEAD) + textwrap.dedent(body) + textwrap.dedent(MAIN)
    cfg = {"TTT_ENABLED": "1"} if config is None else config
    findings = audit_source(src, config=cfg, select=["PG6"])
    return src, [f for f in findings if f.rule.startswith("PG6")]


def _line(src: str, text: str) -> int:
    return next(i for i, line in enumerate(src.splitlines(), 1) if text in line)


SCORE_FIRST = """
def run_eval(model, tokens):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    nll_total = 0.0
    for c in range(0, tokens.numel() - 1, 512):
        x, y = tokens[c:c + 512], tokens[c + 1:c + 513]
        with torch.inference_mode():
            nll_total += F.cross_entropy(model(x), y, reduction="sum").item()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return nll_total
"""


def test_score_first_ttt_passes():
    _, findings = _audit(SCORE_FIRST)
    assert findings == []


def test_same_loop_with_scoring_after_training_fails_with_evidence():
    body = SCORE_FIRST.replace(
        """        with torch.inference_mode():
            nll_total += F.cross_entropy(model(x), y, reduction="sum").item()
""",
        "",
    ).replace(
        "        opt.step()\n",
        "        opt.step()\n        with torch.no_grad():\n"
        '            nll_total += F.cross_entropy(model(x), y, reduction="sum").item()\n',
    )
    src, findings = _audit(body)
    assert [(f.rule, f.line) for f in findings] == [("PG601", _line(src, "loss.backward()"))]
    f = findings[0]
    assert f.condition == "C3" and f.severity is Severity.ERROR
    assert f.function == "run_eval" and "loss.backward()" in (f.evidence or "")


def test_epochs_around_score_then_train_fail():
    body = """
def run_eval(model, tokens):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    nll_total = 0.0
    for epoch in range(3):
        for c in range(0, tokens.numel() - 1, 512):
            x, y = tokens[c:c + 512], tokens[c + 1:c + 513]
            with torch.no_grad():
                nll_total += F.cross_entropy(model(x), y).item()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
    return nll_total
"""
    _, findings = _audit(body)
    assert [f.rule for f in findings] == ["PG601"]
    assert "epochs" in findings[0].message


def test_switched_off_path_is_a_warning_that_says_so():
    body = """
def adapt(model, tokens):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss = F.cross_entropy(model(tokens[:-1]), tokens[1:])
    loss.backward()
    opt.step()

def run_eval(model, tokens):
    adapt(model, tokens)
    with torch.no_grad():
        return F.cross_entropy(model(tokens[:-1]), tokens[1:]).item()
"""
    _, on = _audit(body)
    assert [(f.rule, f.severity) for f in on] == [("PG601", Severity.ERROR)]
    _, off = _audit(body, config={"TTT_ENABLED": "0"})
    assert [(f.rule, f.severity) for f in off] == [("PG601", Severity.WARNING)]
    assert "switched off" in off[0].message


def test_unknown_config_uses_code_default_and_the_message_says_it():
    body = """
def run_eval(model, tokens):
    if int(os.environ.get("EVAL_ADAPT", "1")):
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        F.cross_entropy(model(tokens[:-1]), tokens[1:]).backward()
        opt.step()
    with torch.no_grad():
        return F.cross_entropy(model(tokens[:-1]), tokens[1:]).item()
"""
    _, findings = _audit(body)
    assert [f.rule for f in findings] == ["PG601"]
    assert "EVAL_ADAPT" in findings[0].message and "default" in findings[0].message


def test_slot_delta_fitted_on_scored_batch_is_pg603_not_pg601():
    body = """
def run_eval(model, tokens):
    loss_sum = 0.0
    for c in range(0, tokens.numel() - 1, 512):
        x, y = tokens[c:c + 512], tokens[c + 1:c + 513]
        h = model(x).detach()
        delta = torch.zeros(1, h.shape[-1], requires_grad=True)
        opt = torch.optim.AdamW([delta], lr=1e-2)
        for _ in range(4):
            F.cross_entropy(h + delta, y).backward()
            opt.step()
        with torch.no_grad():
            loss_sum += F.cross_entropy(h + delta, y).item()
    return loss_sum
"""
    src, findings = _audit(body)
    assert [(f.rule, f.line) for f in findings] == [("PG603", _line(src, "y).backward()"))]


def test_adaptation_on_already_scored_prefix_called_from_scoring_loop_passes():
    body = """
def global_phase(model, tokens):
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    for _ in range(2):
        F.cross_entropy(model(tokens[:-1]), tokens[1:]).backward()
        opt.step()

def run_eval(model, tokens):
    loss_sum, done = 0.0, []
    for c in range(0, tokens.numel() - 1, 512):
        with torch.no_grad():
            loss_sum += F.cross_entropy(model(tokens[c:c + 512]), tokens[c + 1:c + 513]).item()
        done.append(tokens[c:c + 513])
        if len(done) == 4:
            global_phase(model, torch.cat(done))
    return loss_sum
"""
    _, findings = _audit(body)
    assert findings == []


def test_pre_quant_adaptation_on_val_is_pg602_at_the_update():
    src = textwrap.dedent(HEAD) + textwrap.dedent(
        """
        def prequant(model, tokens):
            opt = torch.optim.AdamW(model.parameters())
            for ep in range(6):
                F.cross_entropy(model(tokens[:-1]), tokens[1:]).backward()
                opt.step()

        def main():
            args = Hyperparameters()
            model = torch.nn.Embedding(1024, 1024)
            prequant(model, load_val(args))
            torch.save(model.state_dict(), "final_model.int6.ptz")

        if __name__ == "__main__":
            main()
        """
    )
    findings = [f for f in audit_source(src, select=["PG6", "PG3"])]
    got = sorted((f.rule, f.line) for f in findings)
    line = _line(src, "tokens[1:]).backward()")
    assert got == [("PG301", line), ("PG602", line)]


def test_module_level_script_is_analysed():
    src = textwrap.dedent(
        """
        import torch
        v = torch.load("data/fineweb_val_000000.bin")
        w = torch.zeros(4, requires_grad=True)
        loss = (v.float() @ w).sum()
        loss.backward()
        torch.save(w, "final_model.ptz")
        """
    )
    got = {(f.rule, f.line) for f in audit_source(src, select=["PG3", "PG6"])}
    assert {("PG301", 6), ("PG602", 6)} <= got


def test_very_long_expression_chain_gives_findings_not_internal_errors():
    chain = "+".join(["torch.load('fineweb_val_0.bin')"] * 900)
    src = (
        "import torch\ndef main():\n    x = " + chain + "\n    x.backward()\n"
        "    torch.save(x, 'final_model.ptz')\nif __name__ == '__main__':\n    main()\n"
    )
    findings = audit_source(src, select=["PG3", "PG6"])
    assert not [f for f in findings if "internal error" in f.message]
    assert ("PG602", 4) in {(f.rule, f.line) for f in findings}


def test_names_rebound_to_val_after_serialization_do_not_taint_training():
    src = textwrap.dedent(
        """
        import torch
        import torch.nn.functional as F

        def main():
            val_tokens = torch.load("data/fineweb_val_000000.bin")
            train_loader = Loader("data/fineweb_train_*.bin")
            model = torch.nn.Linear(4, 4)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for step in range(10):
                x, y = train_loader.next_batch()
                loss = model(x, y)
                loss.backward()
                opt.step()
            torch.save(model.state_dict(), "final_model.pt")
            model.load_state_dict(torch.load("final_model.pt"))
            loss_sum = 0.0
            for i in range(0, val_tokens.numel() - 1, 1024):
                chunk = val_tokens[i:i + 1025]
                x = chunk[:-1]
                y = chunk[1:]
                with torch.no_grad():
                    loss_sum += F.cross_entropy(model(x), y, reduction="sum")
                loss = model(x, y)
                loss.backward()
                opt.step()

        if __name__ == "__main__":
            main()
        """
    )
    found = audit_source(src, select=["PG3", "PG6"])
    assert [f for f in found if f.severity is Severity.ERROR] == []


def test_a_name_bound_to_val_later_in_a_loop_still_reaches_earlier_uses():
    src = textwrap.dedent(
        """
        import torch

        def main():
            v = torch.load("data/fineweb_val_000000.bin")
            model = torch.nn.Linear(4, 4)
            batch = torch.zeros(4)
            for step in range(10):
                model(batch).sum().backward()
                batch = v[step:step + 4]
            torch.save(model.state_dict(), "final_model.ptz")

        if __name__ == "__main__":
            main()
        """
    )
    assert ("PG301", 9) in {(f.rule, f.line) for f in audit_source(src, select=["PG3"])}


def test_bias_fitted_on_already_scored_context_of_a_sliding_window_passes():
    body = """
def run_eval(model, tokens):
    loss_sum, bias, stride, seq_len = 0.0, torch.zeros(1024), 64, 256
    for ws in range(0, tokens.numel() - seq_len, stride):
        chunk = tokens[ws:ws + seq_len + 1]
        x, y = chunk[:-1], chunk[1:]
        with torch.no_grad():
            logits = model(x)
        s = 0 if ws == 0 else seq_len - stride
        if s > 0:
            b = bias.clone().requires_grad_(True)
            opt = torch.optim.SGD([b], lr=0.05)
            for _ in range(5):
                opt.zero_grad()
                F.cross_entropy(logits[:s] + b, y[:s]).backward()
                opt.step()
            bias = b.detach()
        loss_sum += F.cross_entropy(logits[s:] + bias, y[s:], reduction="sum").item()
    return loss_sum
"""
    _, findings = _audit(body)
    assert findings == []
    # the same bias fitted on the positions it then scores is PG601/PG603 material
    _, bad = _audit(body.replace("logits[:s] + b, y[:s]", "logits[s:] + b, y[s:]"))
    assert [f.rule for f in bad] == ["PG601"]

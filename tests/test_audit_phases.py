"""Phase model: statement phases, config reachability and val-data taint across functions."""

from __future__ import annotations

import ast
import textwrap

from hypothesis import given
from hypothesis import strategies as st

from audit.flow.config import ConfigEvaluator, parse_value
from audit.phases import EVAL, TRAIN, UNKNOWN, PhaseModel, build

PROGRAM = """
import glob, io, os
import torch

class Hyperparameters:
    data_path = os.environ.get("DATA_PATH", "./data")
    train_files = os.path.join(data_path, "fineweb_train_*.bin")
    val_files = os.path.join(data_path, "fineweb_val_*.bin")
    quantized_model_path = "final_model.int6.ptz"
    ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "0")))

def load(pattern):
    return torch.cat([torch.load(f) for f in sorted(glob.glob(pattern))])

def evaluate(model, tokens):
    with torch.no_grad():
        return model(tokens).sum()

def ttt(model, tokens):
    log0("ttt:start adapting")
    return tokens

def main():
    h = Hyperparameters()
    val_tokens = load(h.val_files)
    train_tokens = load(h.train_files)
    model = torch.nn.Linear(4, 4)
    step_loss = model(train_tokens).sum()
    evaluate(model, val_tokens)
    with open(h.quantized_model_path, "wb") as f:
        f.write(io.BytesIO().getvalue())
    model.load_state_dict(torch.load(h.quantized_model_path))
    if h.ttt_enabled:
        ttt(model, val_tokens)
    final = evaluate(model, val_tokens)

if __name__ == "__main__":
    main()
"""


def _build(src: str, config: dict[str, str] | None = None, log_text: str = "") -> PhaseModel:
    src = textwrap.dedent(src)
    files = {"train_gpt.py": src}
    return build({k: ast.parse(v) for k, v in files.items()}, config or {}, files, log_text)


def _node(pm: PhaseModel, text: str, file: str = "train_gpt.py") -> ast.AST:
    """The first statement whose source line contains `text`."""
    tree = pm.index.trees[file]
    for n in ast.walk(tree):
        if (
            isinstance(n, ast.stmt)
            and text in ast.get_source_segment(pm.files[file], n).split("\n")[0]
        ):
            return n
    raise AssertionError(f"no statement containing {text!r}")


def test_serialization_point_is_the_compressed_artifact_write_via_attribute_default():
    pm = _build(PROGRAM)
    assert pm.serialize_site == ("train_gpt.py", _node(pm, "with open(h.quantized").lineno)
    assert pm.load_site is not None and pm.load_site[1] > pm.serialize_site[1]


def test_statements_before_the_write_are_training_and_after_are_evaluation():
    pm = _build(PROGRAM)
    assert pm.phase_of(_node(pm, "step_loss = ")) == TRAIN
    assert pm.phase_of(_node(pm, "final = evaluate")) == EVAL
    # the write itself (and its body) is part of training
    assert pm.phase_of(_node(pm, "f.write(")) == TRAIN


def test_function_called_in_both_phases_is_unknown_with_both_phases_listed():
    pm = _build(PROGRAM)
    stmt = _node(pm, "return model(tokens)")
    assert pm.phases_of(stmt) == frozenset({TRAIN, EVAL})
    assert pm.phase_of(stmt) == UNKNOWN


def test_optional_path_is_off_by_default_and_the_finding_note_says_so():
    pm = _build(PROGRAM)
    reach = pm.reach("ttt")
    assert not reach.reached
    assert not pm.is_reached(_node(pm, 'log0("ttt:start'))
    on = _build(PROGRAM, {"TTT_ENABLED": "1"})
    assert on.reach("ttt").reached and on.reach("ttt").certain


def test_logged_dump_value_of_the_attribute_switches_the_path_on():
    # the hyperparameter dump logs `ttt_enabled:True`; the context upper-cases keys
    pm = _build(PROGRAM, {"TTT_ENABLED": "True"})
    assert pm.reach("ttt").reached


def test_default_assumed_is_reported_when_config_is_unknown():
    src = PROGRAM.replace('"TTT_ENABLED", "0"', '"TTT_ENABLED", "1"')
    pm = _build(src)
    reach = pm.reach("ttt")
    assert reach.reached and reach.assumed == ("TTT_ENABLED",)
    assert "TTT_ENABLED" in reach.note and "default" in reach.note


def test_log_output_unique_to_a_branch_proves_it_ran():
    pm = _build(PROGRAM, log_text="step:1/10\nttt:start adapting lr=0.1\n")
    assert pm.reach("ttt").reached


def test_getattr_guard_with_default_is_evaluated():
    src = """
    import os
    class H:
        slot_enabled = bool(int(os.environ.get("SLOT_ENABLED", "0")))
    def run(args):
        use_slot = getattr(args, "slot_enabled", False)
        if use_slot:
            slot(args)
    def slot(args):
        pass
    if __name__ == "__main__":
        run(H())
    """
    assert not _build(src).reach("slot").reached
    assert _build(src, {"SLOT_ENABLED": "1"}).reach("slot").reached


def test_val_taint_follows_arguments_returns_and_attributes_not_names():
    src = """
    import glob, os
    import torch

    class Hyperparameters:
        val_files = os.path.join("./data", "fineweb_val_*.bin")
        train_files = os.path.join("./data", "fineweb_train_*.bin")

    class Loader:
        def __init__(self, pattern):
            self.tokens = torch.load(sorted(glob.glob(pattern))[0])
        def next_batch(self):
            return self.tokens[:64]

    def train_batches(tokens):
        return tokens[:128]

    def main():
        args = Hyperparameters()
        calib = Loader(args.val_files)
        train_loader = Loader(args.train_files)
        innocent = train_batches(calib.next_batch())
        clean = train_loader.next_batch()
        ids = [f for f in glob.glob(args.val_files)]
        other = [f for f in glob.glob(args.train_files)]

    if __name__ == "__main__":
        main()
    """
    pm = _build(src)

    def expr(line_text: str) -> ast.expr:
        stmt = _node(pm, line_text)
        assert isinstance(stmt, ast.Assign)
        return stmt.value

    assert pm.is_val(expr("innocent = "))  # val through a `train_*` function's return
    assert not pm.is_val(expr("clean = "))  # loader object built from train files
    assert pm.is_val(expr("ids = "))
    assert not pm.is_val(expr("other = "))  # comprehension variables do not leak


def test_val_taint_crosses_files():
    helper = "import torch\ndef fit(x):\n    return x * 2\n"
    main = textwrap.dedent(
        """
        import torch
        from helper import fit
        def main():
            v = torch.load("data/fineweb_val_000000.bin")
            w = fit(v)
            u = fit(torch.zeros(3))
        if __name__ == "__main__":
            main()
        """
    )
    files = {"train_gpt.py": main, "helper.py": helper}
    pm = build({k: ast.parse(v) for k, v in files.items()}, {}, files)
    assert pm.is_val(_node(pm, "w = fit").value)  # type: ignore[attr-defined]
    assert not pm.is_val(_node(pm, "u = fit").value)  # type: ignore[attr-defined]


def test_train_data_taint_is_paths_not_values_derived_from_training():
    src = """
    import glob
    import torch
    def main():
        files = sorted(glob.glob("data/fineweb_train_*.bin"))
        weights = torch.load(files[0]).float().mean()
    if __name__ == "__main__":
        main()
    """
    pm = _build(src)
    assert pm.is_train_data(_node(pm, "files = ").value)  # type: ignore[attr-defined]
    assert not pm.is_train_data(_node(pm, "weights = ").value)  # type: ignore[attr-defined]


def test_unreachable_code_has_unknown_phase():
    src = "def unused():\n    x = 1\n\nif __name__ == '__main__':\n    print(2)\n"
    pm = _build(src)
    assert pm.phase_of(_node(pm, "x = 1")) == UNKNOWN
    assert not pm.reach("unused").reached


def test_analyze_caches_the_model_in_the_context(tmp_path):
    from audit.context import build_context
    from audit.phases import analyze

    (tmp_path / "train_gpt.py").write_text(textwrap.dedent(PROGRAM))
    ctx = build_context(tmp_path)
    first = analyze(ctx)
    assert analyze(ctx) is first
    assert first.serialize_site is not None


@given(st.integers(min_value=-1000, max_value=1000))
def test_env_guard_uses_the_logged_value(n):
    tree = ast.parse('x = 1\nif int(os.environ.get("K", "0")) > 0:\n    pass\n')
    test = tree.body[1].test  # type: ignore[attr-defined]
    result = ConfigEvaluator({"f": tree}, {"K": str(n)}).guard(test)
    assert result.value is (n > 0)
    assert result.used == ("K",) and result.assumed == ()


@given(st.one_of(st.integers(), st.booleans(), st.sampled_from(["sgd", "adamw", "none"])))
def test_parse_value_reads_back_logged_scalars(v):
    text = str(v)
    got = parse_value(f" {text} ")
    if isinstance(v, bool):
        assert got is v
    elif text == "none":
        assert got is None
    else:
        assert got == v

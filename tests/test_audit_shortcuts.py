"""The audit's speed shortcuts give the answers of the full computation they skip."""

from __future__ import annotations

import ast

import pytest

from audit import astcache
from audit.flow.index import ProgramIndex
from audit.flow.taint import VAL_SOURCE, TaintAnalysis
from audit.pyast import Program, Taint, call_name

_SCORING = """
VAL = "data/fineweb_val_*.bin"

class Evaluator:
    def __init__(self, path):
        self.tokens = load(VAL)
        self.scale = (1).real
        self.cache = {}
        self.cache["t"] = self.tokens

    def chunk(self, i):
        return self.tokens[i : i + 8]

def score(ev, model):
    total = 0.0
    for i in range(4):
        x = ev.chunk(i)
        loss = cross_entropy(model(x), x[1:])
        total = total + loss
    best = min(total, 3)
    return best

def main():
    ev = Evaluator("data/fineweb_val_000000.bin")
    model = build()
    print(score(ev, model), [t * 2 for t in range(3)], {"k": ev.scale}.get("k"))
"""


def test_cached_unparse_is_the_stdlib_text_of_every_node() -> None:
    tree = ast.parse(_SCORING)
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.expr | ast.stmt)]
    assert len(nodes) > 80
    for n in nodes:
        assert astcache.unparse(n) == ast.unparse(n)
        assert astcache.unparse(n) == ast.unparse(n)  # and again, from the node's cache


def test_taint_with_seed_kinds_matches_the_taint_without() -> None:
    def seed(e: ast.AST, t: Taint, f: object) -> bool:
        return isinstance(e, ast.Call) and call_name(e) == "cross_entropy"

    program = Program({"m.py": ast.parse(_SCORING)})
    full = Taint(program, seed)
    fast = Taint(Program({"m.py": ast.parse(_SCORING)}), seed, kinds=(ast.Call,))
    assert full.returns == fast.returns == {"score"}
    assert [sorted(full.names[id(f.node)]) for f in full.program.funcs] == [
        sorted(fast.names[id(f.node)]) for f in fast.program.funcs
    ]
    assert not fast.inert


def test_an_inert_taint_taints_nothing() -> None:
    program = Program({"m.py": ast.parse(_SCORING)})
    taint = Taint(program, lambda e, t, f: call_name(e) == "nll_loss", kinds=(ast.Call,))
    assert taint.inert
    for f in program.funcs:
        for n in ast.walk(f.node):
            if isinstance(n, ast.expr):
                assert not taint.is_tainted(n, f)


def _state(t: TaintAnalysis) -> tuple[object, ...]:
    s = t.state
    return (
        sorted(s.global_attrs),
        {k: sorted(v) for k, v in s.global_names.items()},
        {
            k: (sorted(v), {n: len(x) for n, x in v.sites.items()})
            for k, v in s.names_by_func.items()
        },
        [(c.caller.qualname if c.caller else None, c.callee.qualname) for c in s.tainted_calls],
        {k: list(v) for k, v in s.analysed.items()},
        [(k, sorted(v.names), v.returns) for k, v in t._cache.items()],
    )


@pytest.mark.parametrize("writes_val", [False, True])
def test_val_taint_restoring_the_writers_pass_equals_running_it_again(
    monkeypatch: pytest.MonkeyPatch, writes_val: bool
) -> None:
    # with writes_val the constructor's attribute write is itself a global fact (learnt in
    # the first writers' pass); without, the first pass learns nothing and is restored
    src = _SCORING if writes_val else _SCORING.replace("load(VAL)", "load(path)")
    runs: list[int] = []
    analyse = TaintAnalysis._analyse

    def counted(self: TaintAnalysis, *args: object) -> object:
        runs[-1] += 1
        return analyse(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(TaintAnalysis, "_analyse", counted)
    runs.append(0)
    restored = TaintAnalysis(ProgramIndex({"m.py": ast.parse(src)}), VAL_SOURCE)
    assert ("tokens" in restored.state.global_attrs) is writes_val
    # global facts that never compare equal: every writers' pass is run again, as before
    monkeypatch.setattr(TaintAnalysis, "_facts", lambda self: (object(),))
    runs.append(0)
    rerun = TaintAnalysis(ProgramIndex({"m.py": ast.parse(src)}), VAL_SOURCE)
    assert _state(restored) == _state(rerun)
    assert (runs[0] < runs[1]) is not writes_val


def test_node_file_is_found_through_the_parents() -> None:
    a, b = ast.parse("x = f(1)\n"), ast.parse("def g():\n    return h(y)\n")
    index = ProgramIndex({"a.py": a, "b.py": b})
    call_a = next(n for n in ast.walk(a) if isinstance(n, ast.Call))
    name_b = next(n for n in ast.walk(b) if isinstance(n, ast.Name) and n.id == "y")
    assert index.node_file.get(id(call_a)) == "a.py"
    assert index.node_file.get(id(name_b)) == "b.py"
    assert index.node_file.get(id(b)) == "b.py"
    assert index.node_file.get(id(object()), "none") == "none"

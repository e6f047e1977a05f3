"""Shared AST helpers: tolerant parsing and the taint engine the code rules build on."""

from __future__ import annotations

import ast

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.pyast import Program, Taint, call_name, tolerant_parse


def _program(src: str) -> Program:
    return Program({"m.py": ast.parse(src)})


def _seeded_by(name: str):
    return lambda expr, taint, f: isinstance(expr, ast.Call) and call_name(expr) == name


def test_taint_follows_calls_returns_and_containers() -> None:
    src = """
def source():
    return secret()

def helper(a, b):
    return a + 1

def main():
    x = source()
    acc = []
    acc.append(x)
    y = helper(acc, 2)
    z = helper(3, 4)
    for i, v in enumerate(acc):
        w = v
    for p, q in zip(acc, [1, 2]):
        pass
"""
    prog = _program(src)
    taint = Taint(prog, _seeded_by("secret"))
    main = next(f for f in prog.funcs if f.name == "main")
    names = taint.tainted_names(main)
    assert {"x", "acc", "y", "w", "p"} <= names
    # helper returns tainted values for some call sites, so z is (conservatively) tainted too,
    # but enumerate's index and the untainted side of zip are not
    assert "i" not in names and "q" not in names


def test_comprehension_variables_do_not_leak() -> None:
    src = """
def main():
    x = secret()
    ys = [x for x in range(3)]
    zs = [v * 2 for v in [1, 2]]
"""
    prog = _program(src)
    taint = Taint(prog, _seeded_by("secret"))
    main = next(f for f in prog.funcs if f.name == "main")
    names = taint.tainted_names(main)
    assert "x" in names and "zs" not in names and "ys" not in names


def test_tolerant_parse_keeps_line_numbers() -> None:
    src = "a = 1\nb = f'{x['k']}' if False else )\nc = 3\n"
    tree = tolerant_parse(src)
    assert tree is not None
    assigned = {n.targets[0].id: n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assign)}
    assert assigned == {"a": 1, "c": 3}


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=200))
def test_tolerant_parse_never_raises(text: str) -> None:
    tree = tolerant_parse(text)
    assert tree is None or isinstance(tree, ast.Module)

"""Lenient parsing: sources written for a newer Python (PEP 701 f-strings) still get a tree.

The auditor runs on Python 3.11, whose parser rejects 3.12 f-strings such as
`f"{", ".join(xs)}"` (the same quote nested inside a replacement field). Rather than leaving
the whole file unaudited, the f-string literals spanning the reported line are replaced by an
empty string literal covering the same lines, and the parse is retried (bounded). Line numbers
of everything else are unchanged, so findings still point at the original text.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

_PREFIX_CHARS = set("rRbBuUfF")


@dataclass
class LenientParse:
    """Result of `lenient_parse`: the tree (or None) and the lines whose f-strings were blanked."""

    tree: ast.Module | None
    repaired_lines: list[int] = field(default_factory=list)
    error: str | None = None
    error_line: int | None = None


@dataclass(frozen=True)
class _Lit:
    start: int  # offset of the prefix
    end: int  # offset just past the closing quote
    is_f: bool


def _scan_string(text: str, i: int, quote: str, raw: bool, is_f: bool) -> int:
    """Offset just past the literal whose opening quote(s) start at `i` (PEP 701 aware)."""
    n = len(text)
    q = quote
    j = i + len(q)
    depth = 0
    while j < n:
        c = text[j]
        if depth == 0:
            if c == "\\" and not raw:
                j += 2
                continue
            if text.startswith(q, j):
                return j + len(q)
            if len(q) == 1 and c == "\n":
                return j  # unterminated single-quoted literal: stop at the line end
            if is_f and c == "{":
                if text.startswith("{{", j):
                    j += 2
                    continue
                depth = 1
            j += 1
            continue
        # inside a replacement field: nested strings may reuse any quote (3.12)
        if c in "\"'":
            k = j
            triple = text[k : k + 3]
            nq = triple if triple in ('"""', "'''") else c
            # a nested literal may carry a prefix, already consumed as a name char below
            pre = k
            while pre > 0 and text[pre - 1] in _PREFIX_CHARS:
                pre -= 1
            prefix = text[pre:k].lower()
            j = _scan_string(text, k, nq, "r" in prefix, "f" in prefix)
            continue
        if c == "#":
            nl = text.find("\n", j)
            j = n if nl < 0 else nl
            continue
        if c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
        j += 1
    return n


def _literals(text: str) -> list[_Lit]:
    """Every string literal of `text`, in order (comments skipped)."""
    out: list[_Lit] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "#":
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        if c in "\"'":
            pre = i
            while pre > 0 and text[pre - 1] in _PREFIX_CHARS and i - pre < 2:
                pre -= 1
            if pre > 0 and (text[pre - 1].isalnum() or text[pre - 1] == "_"):
                pre = i  # the letters belong to a name, not a prefix
            prefix = text[pre:i].lower()
            triple = text[i : i + 3]
            q = triple if triple in ('"""', "'''") else c
            end = _scan_string(text, i, q, "r" in prefix, "f" in prefix)
            out.append(_Lit(pre, end, "f" in prefix))
            i = end
            continue
        i += 1
    return out


def _line_of(starts: list[int], offset: int) -> int:
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid - 1
    return lo + 1


def neutralize_fstrings(text: str, line: int) -> tuple[str, list[int]]:
    """Replace the f-strings spanning `line` by empty literals of the same line span.

    Returns the new text and the (1-based) lines touched; the text is unchanged when no
    f-string spans that line (then the nearest f-string starting up to 3 lines above is used).
    """
    starts = [0] + [k + 1 for k, ch in enumerate(text) if ch == "\n"]
    lits = [lit for lit in _literals(text) if lit.is_f]
    spans = [
        (lit, _line_of(starts, lit.start), _line_of(starts, max(lit.end - 1, lit.start)))
        for lit in lits
    ]
    hit = [s for s in spans if s[1] <= line <= s[2]]
    if not hit:
        near = [s for s in spans if line - 3 <= s[1] < line]
        hit = near[-1:]
    if not hit:
        return text, []
    pieces: list[str] = []
    pos = 0
    touched: list[int] = []
    for lit, first, last in hit:
        body = text[lit.start : lit.end]
        newlines = body.count("\n")
        repl = '""' if newlines == 0 else '"""' + "\n" * newlines + '"""'
        pieces.append(text[pos : lit.start])
        pieces.append(repl.ljust(len(body)) if newlines == 0 else repl)
        pos = lit.end
        touched.extend(range(first, last + 1))
    pieces.append(text[pos:])
    return "".join(pieces), touched


def lenient_parse(text: str, filename: str = "<unknown>", max_repairs: int = 40) -> LenientParse:
    """Parse `text`; on a syntax error blank the f-strings of the reported line and retry."""
    repaired: list[int] = []
    first_error: tuple[str, int | None] | None = None
    current = text
    for _ in range(max_repairs + 1):
        try:
            tree = ast.parse(current, filename=filename)
        except SyntaxError as exc:
            if first_error is None:
                first_error = (f"line {exc.lineno}: {exc.msg}", exc.lineno)
            if not exc.lineno:
                break
            current, touched = neutralize_fstrings(current, exc.lineno)
            if not touched:
                break
            repaired.extend(touched)
            continue
        except (ValueError, RecursionError, MemoryError) as exc:
            msg = f"cannot parse: {type(exc).__name__}: {exc}"[:300]
            return LenientParse(None, [], msg, None)
        return LenientParse(tree, sorted(set(repaired)), None, None)
    error, line = first_error or ("cannot parse", None)
    return LenientParse(None, [], error, line)

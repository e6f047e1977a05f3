"""Run configuration written in the README as a shell block of assignments.

A fenced shell block (```` ```bash ````, ```` ```sh ````, an unlabelled fence, ...) whose every
line is an upper-case `KEY=VALUE` assignment (or `export KEY=VALUE`, a comment, a blank) is
how a folder lists the environment of its run ("Configuration"). Its keys count as the
folder's described settings, below a README run command and the logs. A key given different
values in two such blocks is ambiguous (variants, ablations) and left out.
"""

from __future__ import annotations

import re
import shlex

_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([A-Za-z0-9_+-]*)")
_SHELL = frozenset({"", "bash", "sh", "shell", "zsh", "console", "env", "dotenv"})
_ASSIGN = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$", re.S)


def _blocks(text: str) -> list[list[str]]:
    """Lines of the fenced blocks labelled as shell (or not labelled)."""
    out: list[list[str]] = []
    fence: str | None = None
    keep = False
    for line in text.splitlines():
        m = _FENCE.match(line)
        if fence is None:
            if m:
                fence, keep = m.group(1), m.group(2).lower() in _SHELL
                out.append([])
            continue
        if m and m.group(1).startswith(fence) and not m.group(2):
            fence = None
            if not keep:
                out.pop()
            continue
        if keep:
            out[-1].append(line)
    if fence is not None and not keep:
        out.pop()
    return out


def _assignments(lines: list[str]) -> dict[str, str] | None:
    """The block's assignments when it holds nothing else; None for any other line."""
    found: dict[str, str] = {}
    for raw in lines:
        line = raw.strip().lstrip("$>").strip()
        if not line or line.startswith("#"):
            continue
        try:
            tokens = shlex.split(line, comments=True, posix=True)
        except ValueError:
            return None
        if tokens and tokens[0] == "export":
            tokens = tokens[1:]
        if not tokens:
            return None
        for tok in tokens:
            m = _ASSIGN.match(tok)
            if not m:
                return None
            found[m.group(1)] = m.group(2)
    return found


def readme_block_settings(text: str) -> dict[str, str]:
    """Keys set by README shell blocks made only of assignments (ambiguous keys dropped)."""
    values: dict[str, set[str]] = {}
    for block in _blocks(text):
        found = _assignments(block)
        for key, value in (found or {}).items():
            values.setdefault(key, set()).add(value)
    return {k: next(iter(v)) for k, v in values.items() if len(v) == 1}

"""Collect documents: the embedded default corpus (English text shipped with CPython) and
a user's own text files.

The default corpus reads the standard library *source files* (never importing them) so it
does not depend on installed third-party packages or on import side effects: every
`pydoc_data.topics` entry is one document, and each top-level section of a standard-library
module (its docstrings and comments, in source order) is another; small neighbouring sections
of one file are merged. Everything is sorted, so the same CPython release gives the same
documents on every machine.
"""

from __future__ import annotations

import ast
import io
import platform
import sys
import sysconfig
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pgolf.errors import InputError

# Parts of the standard library that Linux distributions split into optional packages or
# patch (Debian: python3-tk, python3-distutils, python3-lib2to3, python3-venv, idle...); leaving
# them out keeps the corpus the same on every install of one CPython release.
EXCLUDED_PARTS = frozenset(
    {
        "test",
        "tests",
        "idle_test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "lib2to3",
        "distutils",
        "ensurepip",
        "venv",
        "site-packages",
        "dist-packages",
        "lib-dynload",
        "__pycache__",
        "__phello__",
    }
)
EXCLUDED_FILES = frozenset({"turtle.py", "site.py", "sysconfig.py", "__hello__.py", "this.py"})
MIN_SECTION_CHARS = 1500
MIN_DOCUMENT_CHARS = 64
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text", "")


@dataclass(frozen=True)
class Document:
    """One document: `source` says where it came from (for humans), `text` is its content."""

    source: str
    text: str


def python_release() -> str:
    """The CPython release the default corpus depends on, e.g. 'CPython 3.11.7'."""
    return f"{platform.python_implementation()} {platform.python_version()}"


def default_corpus_description() -> str:
    return (
        f"embedded default corpus: pydoc_data.topics and the docstrings and comments of the "
        f"{python_release()} standard library sources (Python {sys.version_info.major}."
        f"{sys.version_info.minor}); tests, idlelib, tkinter, turtle, lib2to3, distutils, "
        f"ensurepip, venv, site.py and sysconfig.py left out"
    )


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_files(root: Path) -> list[Path]:
    files = []
    for p in root.rglob("*.py"):
        rel = p.relative_to(root)
        if any(part in EXCLUDED_PARTS or part.startswith("config-") for part in rel.parts):
            continue
        if rel.name in EXCLUDED_FILES or rel.name.startswith("_sysconfigdata"):
            continue
        files.append(p)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _file_pieces(src: str, tree: ast.Module) -> list[tuple[int, str]]:
    """(line, text) of every docstring and comment block of a module, in source order."""
    pieces: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=True)
            if doc and doc.strip():
                line = node.body[0].lineno if node.body else getattr(node, "lineno", 0)
                pieces.append((line, doc.strip()))
    block: list[str] = []
    block_line = 0
    last_line = -2
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type != tokenize.COMMENT:
            continue
        line = tok.start[0]
        text = tok.string.lstrip("#").strip()
        if line != last_line + 1 and block:
            pieces.append((block_line, " ".join(block)))
            block = []
        if not block:
            block_line = line
        if text and not text.startswith("!"):
            block.append(text)
        last_line = line
    if block:
        pieces.append((block_line, " ".join(block)))
    pieces.sort(key=lambda x: x[0])
    return pieces


def _sections(src: str) -> list[str]:
    """Split a module's documentation at its top-level definitions, merging small sections."""
    tree = ast.parse(src)
    starts = sorted(
        {1}
        | {
            n.lineno
            for n in tree.body
            if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        }
    )
    pieces = _file_pieces(src, tree)
    groups: list[list[str]] = [[] for _ in starts]
    gi = 0
    for line, text in pieces:
        while gi + 1 < len(starts) and line >= starts[gi + 1]:
            gi += 1
        groups[gi].append(text)
    sections: list[str] = []
    current: list[str] = []
    for group in groups:
        current.extend(group)
        if sum(len(t) for t in current) >= MIN_SECTION_CHARS:
            sections.append("\n".join(current))
            current = []
    if current:
        if sections and sum(len(t) for t in current) < MIN_SECTION_CHARS // 3:
            sections[-1] += "\n" + "\n".join(current)
        else:
            sections.append("\n".join(current))
    return [s for s in sections if s.strip()]


def default_documents(progress: Callable[[int, int], None] | None = None) -> Iterator[Document]:
    """Yield the documents of the embedded default corpus, in a fixed order.

    `progress(files_done, files_total)` is called after each standard-library file.
    """
    from pydoc_data.topics import topics

    for name in sorted(topics):
        text = topics[name].replace("\r\n", "\n").strip()
        if len(text) >= MIN_DOCUMENT_CHARS:
            yield Document(f"pydoc_data.topics[{name!r}]", text)
    root = _stdlib_dir()
    files = _stdlib_files(root)
    for done, path in enumerate(files, 1):
        if progress is not None:
            progress(done, len(files))
        rel = path.relative_to(root).as_posix()
        try:
            src = path.read_bytes().decode("utf-8").replace("\r\n", "\n")
            sections = _sections(src)
        except (SyntaxError, UnicodeDecodeError, tokenize.TokenError, ValueError):
            continue
        for i, text in enumerate(sections):
            if len(text) >= MIN_DOCUMENT_CHARS:
                yield Document(f"Lib/{rel}#{i}", text)


def _split_paragraphs(text: str) -> list[str]:
    paragraphs, current = [], []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append("\n".join(current))
            current = []
    if current:
        paragraphs.append("\n".join(current))
    return paragraphs


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as f:
            # A NUL byte means binary data (or a sparse file): refuse it before reading it all.
            head = f.read(1 << 16)
            data = head + f.read() if b"\0" not in head else head
        if b"\0" in data:
            raise InputError(f"{path}: binary data (NUL byte at offset {data.index(0)}), not text")
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None


def text_documents(paths: list[Path]) -> tuple[list[Document], str]:
    """Documents of a user's corpus and how they were cut.

    One file: its blank-line-separated paragraphs are the documents. Several files or a
    directory (searched recursively for .txt, .md, .rst, .text and extension-less files):
    each file is one document.
    """
    if not paths:
        raise InputError("--from-text: no files given")
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in TEXT_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                raise InputError(f"{p}: directory holds no text files (.txt, .md, .rst, .text)")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif p.exists():
            raise InputError(f"{p}: not a regular file (a FIFO, socket or device)")
        else:
            raise InputError(f"{p}: no such file or directory")
    files = sorted(set(files), key=lambda f: f.as_posix())
    if len(files) == 1:
        docs = [
            Document(f"{files[0].name}#{i}", t.strip())
            for i, t in enumerate(_split_paragraphs(_read_text(files[0])))
            if t.strip()
        ]
        how = f"paragraphs of {files[0]}"
    else:
        docs = [Document(f.as_posix(), _read_text(f).strip()) for f in files]
        docs = [d for d in docs if d.text]
        how = f"{len(files)} files, one document each"
    if not docs:
        raise InputError(f"{', '.join(str(p) for p in paths)}: no non-empty documents")
    return docs, how

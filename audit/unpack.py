"""Turn packed submission code into plain source without ever executing it.

Record scripts are often shipped as `exec(lzma.decompress(base64.b85decode("...")))`
wrappers (sometimes nested, sometimes zlib/gzip/bz2/raw-lzma, sometimes wrapped in
`exec(compile(...))`). `unpack_source` finds such `exec`/`eval` calls in the AST,
evaluates the decode chain itself with a small interpreter of known, pure decoders
(base64/b85/a85/b32/hex, lzma/zlib/gzip/bz2 with an output cap), and splices the
recovered text in place of the wrapper, layer after layer. C/CUDA sources held in
strings (plain or packed) are reported as blobs. Bad payloads and decompression
bombs become problems, never exceptions.
"""

from __future__ import annotations

import ast
import base64
import binascii
import bz2
import contextlib
import lzma
import re
import zlib
from dataclasses import dataclass, field

DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH = 8
_MIN_BLOB_CHARS = 200


@dataclass(frozen=True)
class EmbeddedBlob:
    """Non-Python source found inside a string (e.g. a CUDA kernel compiled at run time)."""

    kind: str  # "string" (a literal) or "packed" (a decoded payload that is not exec'd)
    lang: str  # "c", "cuda", "cpp" or "unknown"
    start_line: int  # line of the string in the unpacked text
    size: int  # characters of the blob
    preview: str  # first non-empty line, shortened


@dataclass
class Unpacked:
    text: str
    layers: list[str] = field(default_factory=list)
    blobs: list[EmbeddedBlob] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _PayloadError(Exception):
    """A decode step failed; the message becomes a problem."""


class _NotStatic(Exception):
    """The expression cannot be evaluated statically (not an error)."""


# Canonical decoder name -> layer label. Resolution maps aliases (`import lzma as L`,
# `from base64 import b85decode as d`) to these names.
_DECODERS = {
    "base64.b85decode": "b85",
    "base64.b64decode": "base64",
    "base64.standard_b64decode": "base64",
    "base64.urlsafe_b64decode": "base64",
    "base64.decodebytes": "base64",
    "base64.a85decode": "a85",
    "base64.b32decode": "b32",
    "base64.b16decode": "hex",
    "binascii.unhexlify": "hex",
    "binascii.a2b_hex": "hex",
    "binascii.a2b_base64": "base64",
    "bytes.fromhex": "hex",
    "lzma.decompress": "lzma",
    "zlib.decompress": "zlib",
    "gzip.decompress": "gzip",
    "bz2.decompress": "bz2",
    "codecs.decode": "codecs",
}
_LZMA_CONSTS = {
    "FORMAT_AUTO": lzma.FORMAT_AUTO,
    "FORMAT_XZ": lzma.FORMAT_XZ,
    "FORMAT_ALONE": lzma.FORMAT_ALONE,
    "FORMAT_RAW": lzma.FORMAT_RAW,
    "FILTER_LZMA1": lzma.FILTER_LZMA1,
    "FILTER_LZMA2": lzma.FILTER_LZMA2,
    "FILTER_DELTA": lzma.FILTER_DELTA,
    "FILTER_X86": lzma.FILTER_X86,
    "CHECK_NONE": lzma.CHECK_NONE,
    "PRESET_EXTREME": lzma.PRESET_EXTREME,
}

_C_MARKERS = re.compile(
    r"#include\s*[<\"]|__global__|__device__|extern\s+\"C\"|\bint\s+main\s*\(|"
    r"\bstatic\s+inline\b|\btypedef\s+struct\b|#define\s+\w+|\bvoid\s+\w+\s*\([^)]*\)\s*\{"
)
_CUDA_MARKERS = re.compile(r"__global__|__device__|__shared__|threadIdx|blockIdx|cuda\w*\(")
_CPP_MARKERS = re.compile(r"#include\s*<torch/|std::|template\s*<|namespace\s+\w+|pybind11")


def classify_lang(text: str) -> str | None:
    """Return "cuda", "cpp", "c" for text that looks like C-family source, else None."""
    if len(_C_MARKERS.findall(text)) < 2 and not _CUDA_MARKERS.search(text):
        return None
    if "{" not in text or ";" not in text:
        return None
    if _CUDA_MARKERS.search(text):
        return "cuda"
    if _CPP_MARKERS.search(text):
        return "cpp"
    return "c"


def _preview(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= 80 else line[:77] + "..."
    return ""


class _Evaluator:
    """Statically evaluates decode chains over literals, with an output budget."""

    def __init__(self, tree: ast.Module, max_output_bytes: int) -> None:
        self.budget = max_output_bytes
        self.aliases: dict[str, str] = {}
        self.assigned: dict[str, ast.expr] = {}
        self.assign_count: dict[str, int] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        self.aliases.setdefault(a.name.split(".")[0], a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                tgt = node.targets[0]
                if isinstance(tgt, ast.Name):
                    self.assigned[tgt.id] = node.value
                    self.assign_count[tgt.id] = self.assign_count.get(tgt.id, 0) + 1
        self.layers: list[str] = []
        self._depth = 0

    def qualname(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def eval(self, node: ast.expr) -> object:
        self._depth += 1
        try:
            if self._depth > 200:
                raise _NotStatic
            return self._eval(node)
        finally:
            self._depth -= 1

    def _eval(self, node: ast.expr) -> object:
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes | int | bool):
            return node.value
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        if isinstance(node, ast.Name):
            if self.assign_count.get(node.id) == 1:
                return self.eval(self.assigned[node.id])
            raise _NotStatic
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(left, str) and isinstance(right, str):
                return left + right
            if isinstance(left, bytes) and isinstance(right, bytes):
                return left + right
            raise _NotStatic
        if isinstance(node, ast.List | ast.Tuple):
            return [self.eval(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise _NotStatic
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
        if isinstance(node, ast.Attribute):
            name = self.qualname(node)
            if name and name.startswith("lzma.") and name[5:] in _LZMA_CONSTS:
                return _LZMA_CONSTS[name[5:]]
            raise _NotStatic
        if isinstance(node, ast.Call):
            return self._call(node)
        raise _NotStatic

    def _call(self, node: ast.Call) -> object:
        func = node.func
        # Method calls on a value: "...".join([...]), payload.decode(), text.encode()
        if isinstance(func, ast.Attribute) and func.attr in _METHODS:
            name = self.qualname(func)
            if not (name and name in _DECODERS):
                obj = self.eval(func.value)
                args = [self.eval(a) for a in node.args]
                return _method(obj, func.attr, args)
        if isinstance(func, ast.Name) and func.id in {"bytes", "str"} and len(node.args) >= 1:
            val = self.eval(node.args[0])
            rest = [self.eval(a) for a in node.args[1:]]
            if func.id == "bytes" and isinstance(val, str):
                return val.encode(*(r for r in rest if isinstance(r, str)))
            if func.id == "str" and isinstance(val, bytes) and rest:
                return _method(val, "decode", rest)
            raise _NotStatic
        name = self.qualname(func)
        if name is None or name not in _DECODERS:
            raise _NotStatic
        label = _DECODERS[name]
        args = [self.eval(a) for a in node.args]
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg}
        if not args:
            raise _NotStatic
        result = self._decode(label, args, kwargs, node.lineno)
        if label != "codecs":
            self.layers.append(label)
        return result

    def _decode(
        self, label: str, args: list[object], kwargs: dict[str, object], line: int
    ) -> bytes:
        data = args[0]
        if label == "codecs":
            encoding = args[1] if len(args) > 1 else kwargs.get("encoding", "utf-8")
            enc = str(encoding).lower().replace("-", "_")
            mapping = {
                "hex": "hex",
                "hex_codec": "hex",
                "base64": "base64",
                "base64_codec": "base64",
                "zlib": "zlib",
                "zlib_codec": "zlib",
                "bz2": "bz2",
                "bz2_codec": "bz2",
            }
            if enc not in mapping:
                raise _NotStatic
            self.layers.append(mapping[enc])
            return self._decode(mapping[enc], [data], {}, line)
        if isinstance(data, str):
            data = data.encode("ascii", "replace")
        if not isinstance(data, bytes):
            raise _NotStatic
        try:
            if label == "b85":
                return base64.b85decode(data)
            if label == "base64":
                return base64.b64decode(
                    data.replace(b"-", b"+").replace(b"_", b"/"), validate=False
                )
            if label == "a85":
                return base64.a85decode(data)
            if label == "b32":
                return base64.b32decode(data)
            if label == "hex":
                return binascii.unhexlify(b"".join(data.split()))
        except (ValueError, binascii.Error) as exc:
            raise _PayloadError(f"line {line}: invalid {label} payload ({exc})") from None
        return self._decompress(label, data, kwargs, line)

    def _decompress(self, label: str, data: bytes, kwargs: dict[str, object], line: int) -> bytes:
        cap = self.budget
        try:
            if label == "lzma":
                fmt = kwargs.get("format", lzma.FORMAT_AUTO)
                filters = kwargs.get("filters")
                if fmt == lzma.FORMAT_RAW and not filters:
                    filters = [{"id": lzma.FILTER_LZMA2}]
                dec = lzma.LZMADecompressor(format=fmt, filters=filters)  # type: ignore[arg-type]
                out = dec.decompress(data, max_length=cap + 1)
            elif label in {"zlib", "gzip"}:
                wbits = 31 if label == "gzip" else kwargs.get("wbits", 15)
                if not isinstance(wbits, int):
                    raise _NotStatic
                zdec = zlib.decompressobj(wbits)
                out = zdec.decompress(data, cap + 1)
            elif label == "bz2":
                out = bz2.BZ2Decompressor().decompress(data, max_length=cap + 1)
            else:
                raise _NotStatic
        except (lzma.LZMAError, zlib.error, OSError, ValueError, TypeError) as exc:
            raise _PayloadError(f"line {line}: corrupt {label} payload ({exc})") from None
        if len(out) > cap:
            raise _PayloadError(
                f"line {line}: {label} layer expands beyond {cap} bytes "
                "(decompression bomb?); left packed"
            )
        self.budget -= len(out)
        return out


_METHODS = frozenset({"decode", "encode", "join", "replace", "strip", "rstrip", "lstrip"})


def _method(obj: object, attr: str, args: list[object]) -> object:
    if attr == "decode" and isinstance(obj, bytes):
        enc = args[0] if args and isinstance(args[0], str) else "utf-8"
        try:
            return obj.decode(enc)
        except (UnicodeDecodeError, LookupError):
            raise _PayloadError("payload is not valid text") from None
    if attr == "replace" and isinstance(obj, str | bytes) and len(args) == 2:
        old, new = args
        if isinstance(old, type(obj)) and isinstance(new, type(obj)):
            return obj.replace(old, new)  # type: ignore[arg-type]
    if attr in {"strip", "rstrip", "lstrip"} and isinstance(obj, str | bytes) and not args:
        return getattr(obj, attr)()
    if attr == "encode" and isinstance(obj, str):
        return obj.encode("utf-8")
    if (
        attr == "join"
        and isinstance(obj, str | bytes)
        and len(args) == 1
        and isinstance(args[0], list)
    ):
        parts = args[0]
        if all(isinstance(p, type(obj)) for p in parts):
            return obj.join(parts)  # type: ignore[arg-type]
    raise _NotStatic


def _exec_payload(call: ast.Call, ev: _Evaluator) -> ast.expr | None:
    """The expression whose value an `exec`/`eval` call runs, unwrapping `compile(...)`."""
    if not (isinstance(call.func, ast.Name) and call.func.id in {"exec", "eval"}) or not call.args:
        return None
    arg = call.args[0]
    while isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "compile":
        if not arg.args:
            return None
        arg = arg.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg  # exec of a literal source string is also a layer
    return arg


def _to_text(value: object) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise _PayloadError("decoded payload is not UTF-8 text") from None
    if isinstance(value, str):
        return value
    raise _NotStatic


def _one_layer(
    text: str, max_output_bytes: int, problems: list[str], seen: set[str] | None = None
) -> tuple[str, list[str]] | None:
    """Unwrap every top-level packed exec of `text` once; None when nothing was unwrapped.

    `seen` holds payloads already unwrapped: an exec that stays in place (its code is
    appended after the file) is not a new layer the next time round."""
    seen = set() if seen is None else seen
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    ev = _Evaluator(tree, max_output_bytes)
    lines = text.splitlines(keepends=True)
    replacements: list[tuple[int, int, str, str]] = []
    appended: list[str] = []
    labels: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        payload = _exec_payload(node, ev)
        if payload is None:
            continue
        if isinstance(payload, ast.Constant) and len(str(payload.value)) < _MIN_BLOB_CHARS:
            continue
        ev.layers = []
        try:
            decoded = _to_text(ev.eval(payload))
        except _NotStatic:
            continue
        except _PayloadError as exc:
            msg = str(exc)
            problems.append(msg if msg.startswith("line") else f"line {node.lineno}: {msg}")
            continue
        if decoded in seen:
            continue
        seen.add(decoded)
        label = "+".join(ev.layers) or "exec-string"
        labels.append(f"{label}@{node.lineno}")
        if not decoded.endswith("\n"):
            decoded += "\n"
        stmt = _enclosing_top_stmt(tree, node)
        if stmt is not None and isinstance(stmt, ast.Expr) and stmt.value is node:
            # `import zlib,base64;exec(...)`: keep the other statements of the line
            shared = _line_neighbours(tree, stmt)
            end = stmt.end_lineno or stmt.lineno
            replacements.append((stmt.lineno, end, shared + decoded, decoded))
        else:
            appended.append(f"# pgolf-unpack: code exec'd at line {node.lineno}\n{decoded}")
    if not labels:
        return None
    if len(replacements) == 1 and not appended and _is_pure_wrapper(tree, replacements[0][0]):
        # The file is only a loader: its unpacked text is the payload itself, so line
        # numbers in findings match the code a reader would see after unpacking.
        return replacements[0][3], labels
    for start, end, new, _ in sorted(replacements, reverse=True):
        lines[start - 1 : end] = [new]
    out = "".join(lines)
    for block in appended:
        if not out.endswith("\n"):
            out += "\n"
        out += block
    return out, labels


def _mentions_decoder(node: ast.AST) -> bool:
    names = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
    names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return any(name.split(".")[-1] in names for name in _DECODERS)


def _is_pure_wrapper(tree: ast.Module, exec_line: int) -> bool:
    for stmt in tree.body:
        if stmt.lineno == exec_line:
            continue
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            continue
        if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
            if isinstance(stmt.value, ast.Constant | ast.BinOp):
                continue
            if isinstance(stmt.value, ast.Call) and _mentions_decoder(stmt.value):
                continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring
        return False
    return True


def _span(node: ast.AST) -> tuple[tuple[int, int], tuple[int, int]]:
    start = (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
    end = (getattr(node, "end_lineno", None) or start[0], getattr(node, "end_col_offset", 0) or 0)
    return start, end


def _enclosing_top_stmt(tree: ast.Module, node: ast.AST) -> ast.stmt | None:
    """The top-level statement holding `node` (by position: several share a line after `;`)."""
    (n0, n1) = _span(node)
    for stmt in tree.body:
        s0, s1 = _span(stmt)
        if s0 <= n0 and n1 <= s1:
            return stmt
    return None


def _line_neighbours(tree: ast.Module, stmt: ast.stmt) -> str:
    """Source of the other top-level statements on `stmt`'s lines, one per line."""
    first, last = stmt.lineno, stmt.end_lineno or stmt.lineno
    out = []
    for other in tree.body:
        if other is not stmt and first <= other.lineno and (other.end_lineno or 0) <= last:
            out.append(ast.unparse(other) + "\n")
    return "".join(out)


def _is_python(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def find_blobs(
    text: str, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
) -> tuple[list[EmbeddedBlob], list[str]]:
    """Locate C/CUDA sources in string literals and in decoded payloads that are not exec'd."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [], []
    return _blobs_in(tree, max_output_bytes)


def _blobs_in(tree: ast.Module, max_output_bytes: int) -> tuple[list[EmbeddedBlob], list[str]]:
    blobs: list[EmbeddedBlob] = []
    problems: list[str] = []
    ev = _Evaluator(tree, max_output_bytes)
    seen: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and len(node.value) >= _MIN_BLOB_CHARS
        ):
            lang = classify_lang(node.value)
            if lang:
                blobs.append(
                    EmbeddedBlob("string", lang, node.lineno, len(node.value), _preview(node.value))
                )
                seen.add(node.lineno)
        elif isinstance(node, ast.Call) and ev.qualname(node.func) in _DECODERS:
            if node.lineno in seen:
                continue
            try:
                value = ev.eval(node)
            except _NotStatic:
                continue
            except _PayloadError as exc:
                problems.append(str(exc))
                continue
            seen.add(node.lineno)
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    continue
            if isinstance(value, str) and not _is_python(value):
                lang = classify_lang(value)
                if lang:
                    blobs.append(
                        EmbeddedBlob("packed", lang, node.lineno, len(value), _preview(value))
                    )
    blobs.sort(key=lambda b: b.start_line)
    return blobs, problems


def unpack_source(
    text: str,
    *,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Unpacked:
    """Return the plain source behind every packing layer of `text` (never executes it).

    `layers` lists each unwrapped layer outermost first as "<decoders>@<line>", e.g.
    "b85+lzma@3". Line numbers of blobs refer to the final unpacked text.
    """
    return unpack_and_parse(text, max_output_bytes=max_output_bytes, max_depth=max_depth)[0]


def unpack_and_parse(
    text: str,
    *,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[Unpacked, ast.Module | None]:
    """`unpack_source`, plus the parse of the unpacked text it makes to find blobs (None when
    the text does not parse), for callers that need the tree too (the audit context)."""
    problems: list[str] = []
    layers: list[str] = []
    seen: set[str] = set()
    current = text
    for _ in range(max_depth):
        step = _one_layer(current, max_output_bytes, problems, seen)
        if step is None:
            break
        current, labels = step
        layers.extend(labels)
    else:
        if _one_layer(current, max_output_bytes, [], seen) is not None:
            problems.append(f"more than {max_depth} nested packing layers; the rest is left packed")
    tree: ast.Module | None = None
    blobs: list[EmbeddedBlob] = []
    blob_problems: list[str] = []
    with contextlib.suppress(SyntaxError, ValueError, RecursionError, MemoryError):
        tree = ast.parse(current)
    if tree is not None:
        blobs, blob_problems = _blobs_in(tree, max_output_bytes)
    for p in blob_problems:
        if p not in problems:
            problems.append(p)
    return Unpacked(text=current, layers=layers, blobs=blobs, problems=problems), tree

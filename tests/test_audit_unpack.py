"""Unpacking of packed submission code: layers, bombs, bad payloads, C blobs (never exec)."""

from __future__ import annotations

import base64
import bz2
import gzip
import lzma
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.unpack import unpack_source

INNER = "import math\n\n\ndef score(p):\n    return -math.log(p)\n"


def b85_lzma_wrapper(src: str, *, raw: bool = False) -> str:
    if raw:
        data = lzma.compress(
            src.encode(), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}]
        )
        fmt = ',format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]'
    else:
        data = lzma.compress(src.encode())
        fmt = ""
    enc = base64.b85encode(data).decode()
    # Split the payload over implicitly concatenated literals, as real wrappers do.
    parts = "\n".join(f'"{enc[i : i + 60]}"' for i in range(0, len(enc), 60))
    return f"import lzma as L,base64 as B\nexec(L.decompress(B.b85decode({parts}){fmt}))\n"


def test_b85_lzma_wrapper_is_unpacked() -> None:
    out = unpack_source(b85_lzma_wrapper(INNER))
    assert out.text == INNER
    assert out.layers == ["b85+lzma@2"]
    assert out.problems == []


def test_raw_lzma_format_with_filters() -> None:
    out = unpack_source(b85_lzma_wrapper(INNER, raw=True))
    assert out.text == INNER
    assert out.problems == []


def test_nested_layers_are_all_unwrapped() -> None:
    packed = b85_lzma_wrapper(b85_lzma_wrapper(INNER))
    out = unpack_source(packed)
    assert out.text == INNER
    assert len(out.layers) == 2


def test_other_codecs_and_exec_compile() -> None:
    z = base64.b64encode(zlib.compress(INNER.encode())).decode()
    g = base64.a85encode(gzip.compress(INNER.encode())).decode()
    b = bz2.compress(INNER.encode()).hex()
    for src in (
        f"import zlib, base64\nexec(zlib.decompress(base64.b64decode('{z}')).decode())\n",
        f"import gzip\nfrom base64 import a85decode as d\nexec(compile(gzip.decompress(d({g!r})), 'x', 'exec'))\n",
        f"import bz2\nPAY = '{b[:10]}' + '{b[10:]}'\nexec(bz2.decompress(bytes.fromhex(PAY)))\n",
    ):
        out = unpack_source(src)
        assert INNER in out.text, src
        assert out.layers and not out.problems


def test_wrapper_inside_larger_file_keeps_the_rest() -> None:
    src = "print(1)\n" + b85_lzma_wrapper(INNER) + "Y = 2\n"
    out = unpack_source(src)
    assert out.text.startswith("print(1)\nimport lzma")
    assert INNER in out.text and out.text.endswith("Y = 2\n")


def test_decompression_bomb_is_a_problem_not_a_crash() -> None:
    bomb = base64.b85encode(lzma.compress(b"#" * 5_000_000)).decode()
    src = f"import lzma, base64\nexec(lzma.decompress(base64.b85decode('{bomb}')))\n"
    out = unpack_source(src, max_output_bytes=1_000_000)
    assert out.text == src
    assert any("decompression bomb" in p for p in out.problems)


def test_invalid_payloads_are_problems() -> None:
    bad_b85 = "import lzma, base64\nexec(lzma.decompress(base64.b85decode('~~~~~~~~~~')))\n"
    out = unpack_source(bad_b85)
    assert out.text == bad_b85 and any("invalid b85" in p for p in out.problems)
    not_lzma = base64.b85encode(b"definitely not lzma data").decode()
    out = unpack_source(
        f"import lzma, base64\nexec(lzma.decompress(base64.b85decode('{not_lzma}')))\n"
    )
    assert any("corrupt lzma" in p for p in out.problems)


def test_dynamic_payload_is_left_alone() -> None:
    src = "import lzma, sys\nexec(lzma.decompress(open(sys.argv[1], 'rb').read()))\n"
    out = unpack_source(src)
    assert out.text == src and out.layers == [] and out.problems == []


CUDA = """
#include <cuda_runtime.h>
#include <torch/extension.h>
__global__ void add_kernel(const float* a, const float* b, float* c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}
"""


def test_c_blobs_in_strings_and_packed_strings() -> None:
    packed = base64.b64encode(zlib.compress(CUDA.encode())).decode()
    src = (
        "import zlib, base64\n"
        f"SRC = {CUDA!r}\n"
        f"SRC2 = zlib.decompress(base64.b64decode('{packed}')).decode()\n"
    )
    out = unpack_source(src)
    kinds = sorted((b.kind, b.lang, b.start_line) for b in out.blobs)
    assert kinds == [("packed", "cuda", 3), ("string", "cuda", 2)]
    assert all(b.size == len(CUDA) for b in out.blobs)


def test_python_payload_kept_as_a_variable_is_not_a_c_blob() -> None:
    payload = base64.b85encode(lzma.compress(INNER.encode())).decode()
    src = f"import lzma, base64\nS = lzma.decompress(base64.b85decode('{payload}'))\nexec(S)\n"
    out = unpack_source(src)
    assert INNER in out.text
    assert out.blobs == []


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=0, max_size=300), st.integers(min_value=1, max_value=3))
def test_roundtrip_any_text_any_depth(body: str, depth: int) -> None:
    inner = f"X = {body!r}\n"
    src = inner
    for _ in range(depth):
        src = b85_lzma_wrapper(src)
    assert unpack_source(src).text == inner


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    out = unpack_source(text)
    assert isinstance(out.text, str)


def test_multiline_payload_with_newlines_stripped() -> None:
    enc = base64.b85encode(lzma.compress(INNER.encode())).decode()
    lines = "\n".join(enc[i : i + 50] for i in range(0, len(enc), 50))
    src = f'import lzma,base64\n_b=b"""\n{lines}\n"""\nexec(lzma.decompress(base64.b85decode(_b.replace(b"\\n",b""))).decode("utf-8"))\n'
    out = unpack_source(src)
    assert out.text == INNER and out.problems == []


def test_wrapper_sharing_its_line_with_the_imports_is_one_layer() -> None:
    enc = base64.b85encode(zlib.compress(INNER.encode())).decode()
    out = unpack_source(f"import zlib,base64;exec(zlib.decompress(base64.b85decode({enc!r})))\n")
    assert out.text == INNER
    assert out.layers == ["b85+zlib@1"]
    assert out.problems == []


def test_exec_that_is_not_a_statement_of_its_own_is_unwrapped_once() -> None:
    enc = base64.b85encode(zlib.compress(INNER.encode())).decode()
    src = f"import zlib, base64\n\n\ndef load():\n    exec(zlib.decompress(base64.b85decode({enc!r})))\n"
    out = unpack_source(src)
    assert out.layers == ["b85+zlib@5"]
    assert out.problems == []
    assert out.text.count("def score(p):") == 1

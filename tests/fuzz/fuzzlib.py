"""Shared pieces of the fuzzers: settings, byte-level mutation of valid files, and the property.

The property every reader must hold: any input gives a result or a RankstackError (one clear line),
never another exception. Examples are bounded and derandomized so CI is fast and reproducible;
raise RANKSTACK_FUZZ_EXAMPLES locally for a longer hunt.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from rankstack.errors import RankstackError

EXAMPLES = int(os.environ.get("RANKSTACK_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Tokens that have broken text readers before: numbers at the edges, separators, encodings.
TOKENS = [
    "", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r", "\x00", "\ufeff", "\xe9", "\udcff", "é", "\u2028", "\x85",
    "nan", "NaN", "inf", "-inf", "Infinity", "1e20", "1e400", "-1e400", "1e39", "-1", "0", "1", "2", "2.5", "-0",
    "9" * 30, "9" * 5000, "1_000", "0x10", "+1", "١", "qid:", "qid:1", "qid:", ":", "1:", ":1", "1:1", "2:0.5",
    "1:1e39", "0:1", "#", "# docid = x", "docid = d1", "{", "}", "[", "]", "[[[[[[[[", '"', "'", "\\", "null",
    "true", "false", '"\\ud800"', "\\u0000", "Q0", "q1", "q2", "d1", "d2", "t", "query-id", "corpus-id", "score",
    '"_id"', '"text"', '"title"', '"qid"', '"docids"', '"clicks"', '"propensities"', "=", "[pipelines]", '"',
]


_ROOT = Path(tempfile.mkdtemp(prefix="rankstack-fuzz-"))
atexit.register(shutil.rmtree, _ROOT, True)


# Edge values for one field of an otherwise valid line.
EDGES = ["", "nan", "-nan", "inf", "-inf", "Infinity", "1e20", "-1e20", "1e39", "1e400", "-1e400", "1e-400",
         "9" * 25, "9" * 5000, "-1", "0.5", "1_0", "0x1", "١", "+", ".", "e5", "1e", "qid:", ":", "1:", ":1",
         "0:1", "1:inf", "1:nan", "1:1e39", "1:1e400", "99999999999:1", "\ufeff", "\udcff", "\x00", "#"]

# Whole inputs that have broken JSON and text parsers: deep nesting, huge literals, long lines.
PATHOLOGICAL = [b"[" * 50_000, b'{"a":' * 20_000, b"9" * 5000, b"-" + b"9" * 5000, b"1e99999", b'"\\ud800"',
                b'{"_id": ' + b"1" * 5000 + b', "text": "a"}', b"x" * 100_000, b"\n" * 1000, b"\x1f\x8b\x08\x00",
                b'{"qid": "q", "docids": ["a"], "clicks": [1], "propensities": [' + b"9" * 400 + b"]}"]


def write_temp(data: bytes, name: str = "input") -> Path:
    """Write ``data`` to a file in a fresh folder (hypothesis examples cannot use the function-scoped
    tmp_path); the previous example's folder is removed."""
    folder = _ROOT / "example"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    path = folder / name
    path.write_bytes(data)
    return path


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` (a valid file) with a few edits: insert/replace tokens or random bytes, cut, repeat."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["token", "replace", "bytes", "delete", "truncate", "duplicate", "swap"]))
        pos = draw(st.integers(0, len(data)))
        if op == "token":
            data[pos:pos] = draw(st.sampled_from(TOKENS)).encode("utf-8", "surrogatepass")
        elif op == "replace":
            end = min(len(data), pos + draw(st.integers(1, 12)))
            data[pos:end] = draw(st.sampled_from(TOKENS)).encode("utf-8", "surrogatepass")
        elif op == "bytes":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
        elif op == "duplicate":
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            data = bytearray(b"\n".join(lines))
        else:
            lines = bytes(data).split(b"\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def token_lines(n_fields: tuple[int, int] = (1, 8), sep: str = " ") -> st.SearchStrategy[bytes]:
    """Lines of whitespace-separated tokens: right shape, wrong contents."""
    field = st.one_of(st.sampled_from(TOKENS), st.text(max_size=6))
    line = st.lists(field, min_size=n_fields[0], max_size=n_fields[1]).map(sep.join)
    return st.lists(line, min_size=0, max_size=8).map(
        lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass") + b"\n")


def fielded(columns: list[list[str]], sep: str = " ") -> st.SearchStrategy[bytes]:
    """Lines of the right shape whose fields are mostly valid: each field is a valid value or, now
    and then, an edge token, so one bad field sits among good ones (where parsers really break)."""
    def field(good: list[str]) -> st.SearchStrategy[str]:
        return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(EDGES))

    line = st.tuples(*(field(c) for c in columns)).map(sep.join)
    return st.lists(line, min_size=1, max_size=5).map(
        lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass") + b"\n")


def inputs(seed: bytes, sep: str = " ", fields: tuple[int, int] = (1, 8),
           columns: list[list[str]] | None = None) -> st.SearchStrategy[bytes]:
    """Random bytes, mutations of a valid file, lines of tokens and (given ``columns``) lines of
    mostly-valid fields, mixed."""
    options = [st.binary(max_size=400), mutated(seed), token_lines(fields, sep), st.sampled_from(PATHOLOGICAL)]
    if columns:
        options.append(fielded(columns, sep))
    return st.one_of(*options)


def holds(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a RankstackError is an acceptable answer (None), anything else propagates."""
    try:
        return fn()
    except RankstackError as exc:
        text = str(exc)
        assert text.strip(), "an error must say something"
        return None

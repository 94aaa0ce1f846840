"""The fuzzing harness: hypothesis settings, byte and TOML mutations, and the check that a loader either
succeeds or raises one clean, one-line AalbertError within a time limit (the targets: tests/test_fuzz.py)."""

from __future__ import annotations

import contextlib
import io
import math
import os
import signal
import tomllib
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aalbert.errors import AalbertError

LONG = int(os.environ.get("AALBERT_FUZZ", "0") or 0)
FUZZ = settings(max_examples=LONG or 25, derandomize=not LONG, deadline=None, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True)
CASE_SECONDS = 60  # a loader taking longer than this on a small file is hanging


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that no loader's `except Exception` swallows it."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def loads_cleanly(load, *args) -> None:
    """Success, or one clean AalbertError; anything else propagates and fails the case."""
    try:
        with time_limit(CASE_SECONDS), contextlib.redirect_stdout(io.StringIO()):
            load(*args)
    except AalbertError as e:
        msg = str(e)
        assert msg.strip() and "\n" not in msg, f"error message is not one line: {msg!r}"


# ---------------------------------------------------------------- byte and text mutations

@st.composite
def mutated(draw, seed: bytes, tokens: tuple[bytes, ...]) -> bytes:
    """`seed` with 1-4 edits: bit flips, deletions, insertions of tokens or random bytes, repeats, truncation."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "delete", "token", "bytes", "repeat", "truncate", "swap"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif kind == "token":
            data[pos:pos] = draw(st.sampled_from(tokens))
        elif kind == "bytes":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "repeat":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 200))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "swap":
            # replace a number with another: the edits that make well-formed but wrong files
            digits = [i for i in range(pos, min(len(data), pos + 400)) if chr(data[i]).isdigit()]
            if digits:
                i = digits[0]
                j = i
                while j < len(data) and (chr(data[j]).isdigit() or data[j] in b".e-"):
                    j += 1
                data[i:j] = draw(st.sampled_from(NUMBERS))
    return bytes(data)


NUMBERS = (b"0", b"-1", b"1", b"3", b"1e400", b"-0.0", b"nan", b"inf", b"4294967297", b"99999999999999999999",
           b"0.5", b"17")
IR_TOKENS = NUMBERS + (b"%0", b"%99", b"@w", b"tensor<", b">", b"x", b"f32", b"i64", b"f16", b"{", b"}", b"(",
                       b")", b",", b":", b"=", b'"', b"\n", b"linear", b"weight", b"return", b"graph @t() -> () {}",
                       b"module {", b"hash", b"?", b"0x", b"\xff", b"\x00")
TOML_TOKENS = NUMBERS + (b"=", b"[", b"]", b"[[", b"]]", b"{", b"}", b'"', b"'''", b"\n", b"true", b"#", b",",
                         b"capacity_bytes", b"holds", b"[[memory]]", b"name = ", b".", b"\xff", b"\x00",
                         b"[" * 64, b"{a = " * 48, b".a" * 48)  # nested deeper than aalbert reads


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- typed value swaps in TOML documents

VALUES = st.one_of(
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, -(2**63), 3]),
    st.sampled_from([0.0, -0.5, 1e-300, 1e300, math.inf, -math.inf, math.nan]),
    st.booleans(), st.text(max_size=12),
    st.lists(st.sampled_from([0, -3, "sram", "weights", "activations", 1.5, "dram"]), max_size=3),
    st.builds(dict), st.builds(dict, x=st.just(1)))


def _paths(doc, prefix=()):
    """Every key path of a parsed TOML document (tables, arrays of tables and leaves)."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc)
    for k, v in items:
        yield prefix + (k,)
        if isinstance(v, dict) or (isinstance(v, list) and v and all(isinstance(x, dict) for x in v)):
            yield from _paths(v, prefix + (k,))


@st.composite
def toml_mutated(draw, seed: bytes) -> bytes:
    """`seed` parsed, with 1-3 keys deleted, retyped, renamed or added, written back; sometimes text-mutated."""
    doc = tomllib.loads(seed.decode())
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        action = draw(st.sampled_from(["delete", "value", "value", "unknown", "rename"]))
        if action == "delete":
            del parent[key]
        elif action == "value":
            parent[key] = draw(VALUES)
        elif action == "unknown" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["frobnicate", "capacity", "Name", "holds_"]))] = draw(VALUES)
        elif action == "rename" and isinstance(parent, dict):
            parent[str(key) + "_"] = parent.pop(key)
        if isinstance(parent, list) and not parent:
            parent.append({})
    text = tomli_w.dumps(doc).encode()
    if draw(st.booleans()):
        text = draw(mutated(text, TOML_TOKENS))
    return text


def fuzz_files(files: st.SearchStrategy[bytes], tmp_path_factory, name: str, load, *args,
               examples: int | None = None) -> None:
    """Every file `files` draws, written as `name` in a folder of its own and given to `load(path, *args)`
    (`examples` cases by default where each is slow, the long mode's count otherwise)."""
    @(settings(FUZZ, max_examples=LONG or examples) if examples else FUZZ)
    @given(files)
    def case(data):
        loads_cleanly(load, write(tmp_path_factory.mktemp(Path(name).stem), name, data), *args)
    case()

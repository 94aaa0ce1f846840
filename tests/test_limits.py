"""Bounded before it starts: memory asked for by small inputs is checked against the budget first."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest

from aalbert.errors import AalbertError, IRParseError
from aalbert.ir.fileio import read_npz
from aalbert.ir.parser import parse_module
from aalbert.limits import LimitError, budget, check_bytes, parse_size

SPLAT = """module {
  graph @t(%%x: tensor<%(n)dxf32>) -> ("y": tensor<%(n)dxf32>) {
    %%0 = constant {value = dense<1.5> : tensor<%(n)dxf32>} : tensor<%(n)dxf32>
    %%1 = add(%%x, %%0) : tensor<%(n)dxf32>
    return %%1
  }
}
"""


def test_a_splat_is_filled_not_listed():
    module = parse_module(SPLAT % {"n": 1 << 20})
    value = module.graphs["t"].nodes[0].attrs["value"]
    assert value.shape == (1 << 20,) and not value.flags.writeable
    assert np.array_equal(value, np.full(1 << 20, 1.5, dtype=np.float32))


def test_a_literal_beyond_the_budget_is_refused_before_it_is_made(monkeypatch):
    from aalbert import limits

    with pytest.raises(IRParseError, match=r"m.ir:3:.*dense literal tensor<67108864000xf32> needs 250 GiB, more "
                                           r"than the memory budget of [0-9.]+ GiB \(raise it with --max-memory\)"):
        parse_module(SPLAT % {"n": 67108864000}, "m.ir")
    monkeypatch.setattr(limits, "in_use", lambda: 0)  # the budget below is for the literal alone
    with budget(2 ** 20), pytest.raises(IRParseError, match="needs 4 MiB, more than the memory budget of 1 MiB"):
        parse_module(SPLAT % {"n": 1 << 20}, "m.ir")


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _patch_central(blob: bytes, field: str, value: int) -> bytes:
    """Change one field of the first central directory header (what zipfile's directory reports)."""
    at = blob.index(b"PK\x01\x02")
    offset, fmt = {"version": (6, "<H"), "flags": (8, "<H"), "method": (10, "<H")}[field]
    return blob[:at + offset] + struct.pack(fmt, value) + blob[at + offset + 2:]


@pytest.mark.parametrize("field, value, says", [
    ("flags", 0x1, "is encrypted"), ("flags", 0x20, "uses compressed patched data"),
    ("method", 99, "uses compression method 99"), ("version", 84, "zip file version 8.4"),
])
def test_zip_features_numpy_cannot_read_are_one_line(tmp_path, field, value, says):
    path = tmp_path / "in.npz"
    path.write_bytes(_patch_central(_npz(x=np.arange(4.0)), field, value))
    with pytest.raises(AalbertError, match=f"in.npz: .*{says}") as e:
        read_npz(path, "inputs")
    assert "\n" not in str(e.value)


def test_an_archive_that_inflates_beyond_the_budget_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.npz"
    path.write_bytes(_npz(x=np.zeros(1 << 23, dtype=np.float32)))  # 32 MiB of zeros in a few KB
    assert path.stat().st_size < 100_000
    with budget(8 * 2 ** 20), pytest.raises(LimitError, match=r"bomb.npz \(inputs, inflated\) needs 32 MiB"):
        read_npz(path, "inputs")
    assert read_npz(path, "inputs")["x"].shape == (1 << 23,)  # within the default budget it loads


def test_sizes_and_checks():
    assert parse_size("2G") == 2 ** 31 and parse_size("512MiB") == 2 ** 29 and parse_size("1.5g") == 3 * 2 ** 29
    for bad in ("lots", "-1G", "10"):
        with pytest.raises(AalbertError, match="--max-memory"):
            parse_size(bad)
    with budget(8 * 2 ** 30):
        check_bytes(1024, "a small thing")
        with pytest.raises(LimitError, match="a big thing needs 16 GiB, more than the memory budget of 8 GiB"):
            check_bytes(16 * 2 ** 30, "a big thing")
    assert zipfile.ZIP_DEFLATED  # the archives above are deflated, as numpy.savez_compressed writes them


def test_inputs_that_are_not_regular_files_are_refused_without_reading_them(tmp_path):
    import os

    from aalbert.limits import open_regular

    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)  # opening it for reading the usual way would block until a writer came
    with pytest.raises(AalbertError, match=r"model.onnx: is not a regular file \(a FIFO\); a model must be a file"):
        open_regular(fifo, "a model")
    with pytest.raises(AalbertError, match=r"/dev/zero: is not a regular file \(a character device\)"):
        open_regular("/dev/zero", "a model")
    with pytest.raises(AalbertError, match=r"is a directory, expected a file \(a model\)"):
        open_regular(tmp_path, "a model")
    with pytest.raises(AalbertError, match=r"nope.onnx: no such file"):
        open_regular(tmp_path / "nope.onnx", "a model")
    (tmp_path / "ok.bin").write_bytes(b"abc")
    with open_regular(tmp_path / "ok.bin") as f:
        assert f.read() == b"abc"


# --- one budget for the whole command --------------------------------------------------------------------------
MiB = 2 ** 20


def test_the_default_budget_is_a_share_of_the_memory_available_when_the_command_starts(monkeypatch):
    from aalbert import limits

    assert 0 < limits.available_bytes() and 0 < limits.in_use()
    monkeypatch.setattr(limits, "available_bytes", lambda: 1000 * MiB)
    monkeypatch.setattr(limits, "in_use", lambda: 300 * MiB)
    with budget():
        assert limits.max_bytes() == 300 * MiB + 900 * MiB  # fixed as the command starts
        monkeypatch.setattr(limits, "available_bytes", lambda: 10 * MiB)
        assert limits.max_bytes() == 1200 * MiB
        check_bytes(899 * MiB, "what fits")
        with pytest.raises(LimitError, match=r"what is left needs 901 MiB, more than the 900 MiB that the memory "
                                             r"budget of 1.17 GiB leaves beside the 300 MiB in use"):
            check_bytes(901 * MiB, "what is left")
    # outside a command, each check allows the share of what is available at the time
    with pytest.raises(LimitError, match="needs 10 MiB"):
        check_bytes(10 * MiB, "a library call")
    check_bytes(9 * MiB, "a library call")


def test_what_the_process_holds_counts_against_the_budget(monkeypatch):
    from aalbert import limits

    monkeypatch.setattr(limits, "in_use", lambda: 700 * MiB)
    with budget(1024 * MiB):
        check_bytes(300 * MiB, "a small step")
        with pytest.raises(LimitError, match="a second step needs 400 MiB, more than the 324 MiB that the memory "
                                             "budget of 1 GiB leaves beside the 700 MiB in use"):
            check_bytes(400 * MiB, "a second step")


def _splats(sizes: list[int]) -> str:
    lines = ["module {", f'  graph @t(%x: tensor<{sizes[0]}xf32>) -> ("y": tensor<{sizes[0]}xf32>) {{']
    for i, n in enumerate(sizes):
        lines.append(f"    %c{i} = constant {{value = dense<1.5> : tensor<{n}xf32>}} : tensor<{n}xf32>")
    lines += ["    return %x", "  }", "}"]
    return "\n".join(lines) + "\n"


def test_the_dense_literals_of_a_file_are_counted_together_before_any_is_made(monkeypatch):
    """Each 16 MiB splat fits a 40 MiB budget, three do not: the third is named, and none was made."""
    from aalbert import limits
    from aalbert.ir import parser

    made = []
    monkeypatch.setattr(parser._Builder, "dense", lambda self, item: made.append(item))
    monkeypatch.setattr(limits, "in_use", lambda: 0)
    with budget(40 * MiB), pytest.raises(IRParseError, match=r"m.ir:5:\d+: the dense literal tensor<4194304xf32>, "
                                                             r"with the 2 before it, needs 48 MiB"):
        parse_module(_splats([1 << 22] * 3), "m.ir")
    assert made == []
    with budget(40 * MiB):
        parse_module(_splats([1 << 22] * 2), "m.ir")


def test_parsing_is_checked_by_the_size_of_the_text_before_it_starts(monkeypatch):
    """A long dense list costs about a kilobyte of syntax tree per element: 100,000 elements in 200 KB of text."""
    from aalbert import limits
    from aalbert.ir.parser import parse_estimate

    n = 100_000
    text = (f'module {{ graph @t(%x: tensor<{n}xi32>) -> ("y": tensor<{n}xi32>) {{ %0 = constant {{value = '
            f'dense<[{",".join(["1"] * n)}]> : tensor<{n}xi32>}} : tensor<{n}xi32> return %0 }} }}\n')
    assert parse_estimate(text) > 100 * MiB
    monkeypatch.setattr(limits, "in_use", lambda: 0)
    with budget(64 * MiB), pytest.raises(IRParseError, match=r"m.ir:1:1: parsing m.ir \(200,[0-9]+ characters\) "
                                                             r"needs 1[0-9.]+ MiB, more than the memory budget of 64"):
        parse_module(text, "m.ir")


CHAIN = """module {
  graph @t(%x: tensor<1024x1024xf32>) -> ("y": tensor<1024x1024xf32>) {
    %0 = neg(%x) : tensor<1024x1024xf32>
    %1 = neg(%0) : tensor<1024x1024xf32>
    %2 = mul(%0, %1) : tensor<1024x1024xf32>
    %3 = neg(%2) : tensor<1024x1024xf32>
    return %3
  }
}
"""


def test_the_interpreter_checks_its_whole_schedule_before_running(monkeypatch):
    """4 MiB per value; at %2, %0 and %1 are live and %2 is made with two scratch arrays: 20 MiB, where no
    node alone makes more than 4 MiB."""
    from aalbert import limits
    from aalbert.ir import interpreter

    module = parse_module(CHAIN)
    assert interpreter.peak_bytes(module, module.graphs["t"]) == 20 * MiB
    assert interpreter.peak_bytes(module, module.graphs["t"], rounded=True) == 28 * MiB
    ran = []
    real_get_op = interpreter.get_op
    monkeypatch.setattr(interpreter, "get_op", lambda op: ran.append(op) or real_get_op(op))
    monkeypatch.setattr(limits, "in_use", lambda: 0)
    x = np.full((1024, 1024), 2.0, np.float32)
    with budget(16 * MiB), pytest.raises(LimitError, match="running task 't' .* needs 20 MiB"):
        interpreter.run(module, "t", {"x": x})
    assert ran == []
    with budget(20 * MiB):
        assert np.array_equal(interpreter.run(module, "t", {"x": x})["y"], x * x)


@pytest.mark.parametrize("text, deep", [
    ("x = " + "[" * 40 + "]" * 40, True), ("x = " + "[" * 5000 + "]" * 5000, True),
    ("x = " + "{a = " * 40 + "1" + "}" * 40, True), ("x = " + "{a = " * 3000 + "1" + "}" * 3000, True),
    (".".join(["a"] * 5000) + " = 1", True), ("[" + ".".join(["t"] * 40) + "]\nx = 1", True),
    ("x = " + "[" * 20 + "]" * 20, False), ("[a.b.c]\nx = {y = [1, [2]]}", False),
])
def test_toml_nested_too_deep_is_one_line(text, deep):
    from aalbert.ir.fileio import loads_toml

    if not deep:
        assert loads_toml(text, "t.toml", AalbertError)
        return
    with pytest.raises(AalbertError, match=r"^t.toml: not valid TOML \(nested deeper than 32 levels\)$"):
        loads_toml(text, "t.toml", AalbertError)

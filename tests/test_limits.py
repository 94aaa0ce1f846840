"""Bounded before it starts: memory asked for by small inputs is checked against the budget first."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest

from aalbert.ir.errors import AalbertError, IRParseError
from aalbert.ir.fileio import read_npz
from aalbert.ir.limits import LimitError, budget, check_bytes, parse_size
from aalbert.ir.parser import parse_module

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


def test_a_literal_beyond_the_budget_is_refused_before_it_is_made():
    with pytest.raises(IRParseError, match=r"m.ir:3:.*dense literal tensor<67108864000xf32> needs 250 GiB, more "
                                           r"than the memory budget of 8 GiB \(raise it with --max-memory\)"):
        parse_module(SPLAT % {"n": 67108864000}, "m.ir")
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
    check_bytes(1024, "a small thing")
    with pytest.raises(LimitError, match="a big thing needs 16 GiB"):
        check_bytes(16 * 2 ** 30, "a big thing")
    assert zipfile.ZIP_DEFLATED  # the archives above are deflated, as numpy.savez_compressed writes them


def test_inputs_that_are_not_regular_files_are_refused_without_reading_them(tmp_path):
    import os

    from aalbert.ir.limits import open_regular

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

"""Reading and writing modules: text `.ir` plus a sidecar `.npz` of weight data.

`save_module` writes `name.ir` and `name.npz` side by side; `load_module`
reads the text, verifies it and, when the sidecar exists, loads and checks
every array against the weight it belongs to (name, type and content hash).
Files are written atomically (a temporary file renamed into place) and the
`.npz` is byte-for-byte reproducible (fixed zip timestamps, pool order).
Every file is read only if it is a regular file (`limits.open_regular`: a
FIFO or a device is refused before it is read), and what reading it takes is
checked against the memory budget first.
"""

from __future__ import annotations

import io
import os
import tokenize
import tomllib
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from aalbert.errors import AalbertError
from aalbert.ir.module import Module
from aalbert.ir.parser import parse_module
from aalbert.ir.printer import print_module
from aalbert.ir.types import DType, TensorType
from aalbert.ir.verifier import verify
from aalbert.limits import check_bytes, open_regular
from aalbert.outputs import atomic_writer, note_read

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sidecar_path(ir_path: str | os.PathLike) -> Path:
    return Path(ir_path).with_suffix(".npz")


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A reproducible `.npz` (as numpy writes it, minus the timestamps), in dict order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            payload = io.BytesIO()
            np.lib.format.write_array(payload, np.asarray(array, order="C"), allow_pickle=False)  # keeps 0-d
            zf.writestr(info, payload.getvalue())
    return buf.getvalue()


SCALES = "@scales"  # suffix of the entry holding a weight's per-channel scales


def weights_npz_bytes(module: Module) -> bytes:
    """The sidecar's bytes: one `.npy` entry per weight (plus its scales), in pool order."""
    arrays = {}
    for w in module.weights.values():
        if w.data is None:
            continue
        arrays[w.name] = w.data
        if w.scales is not None:
            arrays[w.name + SCALES] = w.scales
    return npz_bytes(arrays)


# What numpy raises on a damaged archive: besides I/O and zip errors, a corrupt
# array header fails in numpy's header parser (SyntaxError, tokenize.TokenError),
# and zipfile refuses features it does not implement (NotImplementedError,
# RuntimeError for an encrypted entry).
NPZ_ERRORS = (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, SyntaxError, tokenize.TokenError,
              MemoryError, NotImplementedError, RuntimeError, zlib.error)
_READABLE = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def open_npz(path: str | os.PathLike, what: str):
    """`np.load` of an `.npz`, after checking what its zip directory promises: only stored or deflated
    entries numpy can read, no encryption, and no more inflated bytes than the memory budget."""
    note_read(path)
    f = open_regular(path, what)
    try:
        return _open_npz(f, path, what)
    except BaseException:
        f.close()
        raise


def _open_npz(f, path, what: str):
    try:
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
    except NPZ_ERRORS as e:
        raise AalbertError(f"{path}: not a readable .npz file of {what} ({e})") from None
    for info in infos:
        feature = ("is encrypted" if info.flag_bits & 0x1 else
                   "uses compressed patched data" if info.flag_bits & 0x20 else
                   f"uses compression method {info.compress_type}" if info.compress_type not in _READABLE else
                   f"needs zip version {info.extract_version / 10:g}"
                   if info.extract_version > zipfile.MAX_EXTRACT_VERSION else None)
        if feature:
            raise AalbertError(f"{path}: entry {info.filename!r} {feature}, which aalbert does not read "
                               "(write it with numpy.savez or numpy.savez_compressed)")
    check_bytes(sum(info.file_size for info in infos), f"{path} ({what}, inflated)")
    try:
        f.seek(0)
        archive = np.load(f, allow_pickle=False)
    except NPZ_ERRORS as e:
        raise AalbertError(f"{path}: not a readable .npz file of {what} ({e})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise AalbertError(f"{path}: not a readable .npz file of {what} (not an archive of arrays)")
    archive.fid = f  # the archive owns the file now: closing it closes f
    return archive


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], durable: bool = False) -> None:
    blob = npz_bytes(arrays)
    with atomic_writer(path, durable=durable) as f:
        f.write(blob)


def read_npz(path: str | os.PathLike, what: str = "arrays") -> dict[str, np.ndarray]:
    """All arrays of an `.npz`, or one clear error."""
    p = Path(path)
    if not p.exists():
        raise AalbertError(f"{path}: no such file")
    try:
        with open_npz(p, what) as archive:
            return {k: archive[k] for k in archive.files}
    except NPZ_ERRORS as e:
        raise AalbertError(f"{path}: not a readable .npz file of {what} ({e})") from None


def save_module(module: Module, ir_path: str | os.PathLike) -> list[Path]:
    """Write `x.ir` and, if the module has weight data, `x.npz`. Returns the paths."""
    ir_path = Path(ir_path)
    written = [ir_path]
    text = print_module(module)
    blob = weights_npz_bytes(module) if module.weights and module.has_data else None
    with atomic_writer(ir_path) as f:
        f.write(text.encode())
    if blob is not None:
        with atomic_writer(sidecar_path(ir_path)) as f:
            f.write(blob)
        written.append(sidecar_path(ir_path))
    return written


TOML_BYTES_PER_CHAR = 128  # what tomllib's tables hold per character, at most (many one-key tables, measured)
TOML_DEPTH = 32  # tables and arrays nested deeper are refused (aalbert's own files nest 4 deep)


def read_toml(path: str | os.PathLike, error: type[AalbertError], missing: str, invalid: str,
              what: str = "a TOML file") -> dict:
    """A TOML file's tables; `error(f"{path}: {missing}")` if it does not exist, `{invalid} (why)` if unreadable;
    `what` (a sweep, a policy) names it when it is not a regular file."""
    p = Path(path)
    if not p.exists():
        raise error(f"{path}: {missing}")
    note_read(p)
    try:
        text = read_regular(p, what, TOML_BYTES_PER_CHAR, "parsed").decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: {invalid} ({e})") from None
    return loads_toml(text, str(path), error, invalid)


def loads_toml(text: str, where: str, error: type[AalbertError], invalid: str = "not valid TOML") -> dict:
    """TOML text's tables, nested at most `TOML_DEPTH` deep; `error(f"{where}: {invalid} (why)")` if not."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{where}: {invalid} ({e})") from None
    except RecursionError:  # tomllib reads nested arrays and inline tables recursively
        raise error(f"{where}: {invalid} (nested deeper than {TOML_DEPTH} levels)") from None
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(data, 1)]
    while stack:  # dotted keys and [a.b.c] headers nest without recursion in tomllib, but not in what reads them
        value, depth = stack.pop()
        if depth > TOML_DEPTH:
            raise error(f"{where}: {invalid} (nested deeper than {TOML_DEPTH} levels)")
        children = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in children if isinstance(v, (dict, list)))
    return data


def read_regular(path: str | os.PathLike, what: str, per_byte: float = 1.0, how: str = "read") -> bytes:
    """The bytes of a regular file, after checking that `per_byte` times its size fits the memory budget."""
    with open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        check_bytes(max(per_byte, 1.0) * size, f"{path} ({size:,} bytes, {how})")
        try:
            return f.read()
        except OSError as e:
            raise AalbertError(f"{path}: cannot read ({e.strerror})") from None


def read_text(path: str | os.PathLike) -> str:
    note_read(path)
    try:
        return read_regular(path, "an IR module", 2).decode("utf-8")
    except UnicodeDecodeError:
        raise AalbertError(f"{path}: not a text file (expected aalbert IR)") from None


def load_module(path: str | os.PathLike, weights: str | os.PathLike | None = None,
                require_data: bool = False) -> Module:
    """Parse and verify `path`; attach weight data from the sidecar if present."""
    module = parse_module(read_text(path), str(path))
    verify(module)
    npz = Path(weights) if weights is not None else sidecar_path(path)
    note_read(npz)  # a missing sidecar too: an output may not appear in its place
    if npz.exists():
        load_weights(module, npz)
    elif weights is not None or (require_data and module.weights):
        raise AalbertError(f"{npz}: no such file (the weight data of {path})")
    return module


def _entry(archive, keys: set[str], npz_path, key: str, want: TensorType, what: str) -> np.ndarray:
    if key not in keys:
        raise AalbertError(f"{npz_path}: no array for {what}")
    try:
        array = archive[key]
    except NPZ_ERRORS as e:
        raise AalbertError(f"{npz_path}: array {key!r} is unreadable ({e})") from None
    try:
        got = TensorType.of(array)
    except ValueError:
        got = None
    if got != want:
        raise AalbertError(f"{npz_path}: array {key!r} is {got or array.dtype}, {what} needs {want}")
    return array


def load_weights(module: Module, npz_path: str | os.PathLike) -> None:
    """Attach arrays from an `.npz` to the module's weights, checking each one."""
    with open_npz(npz_path, "weights") as archive:
        keys = set(archive.files)
        expected = set()
        for w in module.weights.values():
            w.data = _entry(archive, keys, npz_path, w.name, w.code_type, f"weight @{w.name}")
            expected.add(w.name)
            if w.encoding.format == "int" and w.encoding.granularity == "channel":
                scales_type = TensorType((w.type.shape[-1],), DType.F32)
                w.scales = _entry(archive, keys, npz_path, w.name + SCALES, scales_type,
                                  f"the scales of @{w.name}")
                expected.add(w.name + SCALES)
            if w.expected_hash() != w.hash:
                raise AalbertError(f"{npz_path}: array {w.name!r} does not match the hash "
                                   f"{w.hash} of @{w.name} (data from another model?)")
        extra = sorted(keys - expected)
        if extra:
            raise AalbertError(f"{npz_path}: array {extra[0]!r} belongs to no weight of the IR")
